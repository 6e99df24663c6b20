"""A PostgreSQL server for the gradebook: Debian's ``postgresql`` binaries, a cluster in a folder of ours.

``course hub`` keeps the gradebook in PostgreSQL (nbgrader warns that SQLite on network file systems hangs:
jupyter/nbgrader #1854, #1646); one machine keeps SQLite. The cluster is created with ``initdb`` (as the
``postgres`` user when run as root), listens on 127.0.0.1 only, and has one password-protected role and
database per course. Nothing is installed as a system service: ``start`` and ``stop`` run ``pg_ctl``.

Args/Returns are in each function's docstring.
"""
from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
from pathlib import Path

__all__ = ["pg_bin", "start", "stop", "ensure_database", "is_running"]


def pg_bin(program: str) -> str:
    """Path of a PostgreSQL server program (initdb, pg_ctl, psql) of the newest installed version."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"), key=lambda p: int(p.split("/")[4]))
    if found:
        return found[-1]
    path = shutil.which(program)
    if path is None:
        raise SystemExit(f"course: PostgreSQL's {program} not found; install the server with "
                         "scripts/install-services.sh (Debian's postgresql package).")
    return path


def _as_owner(cmd: list[str]) -> list[str]:
    """Run as ``postgres`` when we are root (the server refuses to run as root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def _run(cmd: list[str], timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(_as_owner(cmd), capture_output=True, text=True, timeout=timeout, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])} failed (exit {proc.returncode}): {proc.stderr[-1500:]}")
    return proc


def is_running(data_dir) -> bool:
    """Whether a server runs on ``data_dir`` (pg_ctl status)."""
    if not (Path(data_dir) / "PG_VERSION").exists():
        return False
    return subprocess.run(_as_owner([pg_bin("pg_ctl"), "status", "-D", str(data_dir)]),
                          capture_output=True, timeout=30).returncode == 0


def start(data_dir, port: int) -> None:
    """Create the cluster in ``data_dir`` if needed and start it on 127.0.0.1:``port`` (socket in data_dir).

    Args:
        data_dir: the cluster folder (created; owned by ``postgres`` when run as root).
        port: TCP port on the loopback interface.
    """
    data = Path(data_dir).resolve()
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(data, pw.pw_uid, pw.pw_gid)
        os.chmod(data, 0o700)
        _run([pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth-local=peer",
              "--auth-host=scram-sha-256", "-E", "UTF8"], timeout=300)
    if is_running(data):
        return
    opts = f"-h 127.0.0.1 -p {int(port)} -k {data}"
    _run([pg_bin("pg_ctl"), "start", "-D", str(data), "-w", "-t", "60", "-l", str(data / "server.log"), "-o", opts],
         timeout=120)


def stop(data_dir) -> None:
    """Stop the server on ``data_dir`` (fast shutdown); nothing if none runs."""
    if is_running(data_dir):
        _run([pg_bin("pg_ctl"), "stop", "-D", str(data_dir), "-m", "fast", "-w", "-t", "60"], timeout=120)


def _psql(data_dir, port: int, sql: str, db: str = "postgres") -> str:
    return _run([pg_bin("psql"), "-h", str(Path(data_dir).resolve()), "-p", str(port), "-U", "postgres", "-d", db,
                 "-v", "ON_ERROR_STOP=1", "-tAc", sql]).stdout.strip()


def ensure_database(data_dir, port: int, name: str, password_file) -> str:
    """A role and database ``name`` (password kept in ``password_file``, mode 0600); returns the SQLAlchemy URL."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"database name must be letters, digits and _; got {name!r}")
    pw_path = Path(password_file)
    if pw_path.exists():
        password = pw_path.read_text().strip()
    else:
        password = secrets.token_hex(16)
        pw_path.write_text(password + "\n")
        os.chmod(pw_path, 0o600)
    if _psql(data_dir, port, f"SELECT 1 FROM pg_roles WHERE rolname = '{name}'") != "1":
        _psql(data_dir, port, f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    else:
        _psql(data_dir, port, f"ALTER ROLE {name} PASSWORD '{password}'")
    if _psql(data_dir, port, f"SELECT 1 FROM pg_database WHERE datname = '{name}'") != "1":
        _psql(data_dir, port, f"CREATE DATABASE {name} OWNER {name}")
    return f"postgresql+psycopg2://{name}:{password}@127.0.0.1:{int(port)}/{name}"
