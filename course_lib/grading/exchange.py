"""nbgrader's exchange for one machine or a shared server: publish, collect, return feedback, start JupyterLab.

How a submission travels (nbgrader's default file-system exchange, ``Exchange.root`` = ``<course>/exchange``
unless the configuration says otherwise)::

    course release HW       solutions/HW -> assignments/HW  -> exchange/<course_id>/outbound/HW   (release_assignment)
    student: Fetch          exchange/<course_id>/outbound/HW -> ~/HW          (Assignment List, fetch_assignment)
    student: Submit         ~/HW -> exchange/<course_id>/inbound/<student>+HW+<time>+<random>   (submit)
    course collect HW       inbound -> submitted/<student>/HW   (collect, latest submission wins)
    course autograde HW     trusted grading (the only source of scores)
    course feedback HW --release   feedback/<student>/HW/*.html -> exchange/<course_id>/feedback/<hash>.html
    student: Fetch Feedback exchange/<course_id>/feedback/<hash>.html -> ~/HW/feedback/<time>/  (fetch_feedback)

Permissions (jupyter/nbgrader #1225: nbgrader makes the exchange root world-writable, 0777, so any user can
rename or replace another course's folder in it, and a world-readable inbound lets students copy each other's
work). This module's exchange classes keep nbgrader's transfer code and change only the root's handling:

* the root is created ``0755`` by the instructor and never made world-writable; students need only to traverse
  it (``ensure_root`` checks execute permission, not write permission);
* ``<course_id>/inbound`` stays nbgrader's write-only drop box (``2733``: students create entries, cannot list
  them), each submission's name ends in 12 random bytes, and its files are readable only by the student and the
  graders' group (nbgrader makes them world-readable), so no student can find or read another's submission;
* ``<course_id>/feedback`` is ``0711`` and each feedback file is named by a hash of the submission's secret, which
  only the submitting student's cache holds;
* ``collect`` refuses (and reports) any submission whose Unix owner is not the student it claims to be from,
  where nbgrader only warns (``check_owner``).

Args/Returns of the public functions are in their docstrings.
"""
from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from nbgrader.exchange.default import (ExchangeCollect, ExchangeFetchAssignment, ExchangeFetchFeedback,
                                       ExchangeList, ExchangeReleaseAssignment, ExchangeReleaseFeedback,
                                       ExchangeSubmit)

from .gradebook_schema import alembic_head, write_version

__all__ = ["exchange_root", "publish", "collect", "release_feedback", "lab_command", "lab_env", "run_lab",
           "repair_gradebook",
           "CourseReleaseAssignment", "CourseReleaseFeedback", "CourseCollect", "CourseFetchAssignment", "CourseFetchFeedback", "CourseList",
           "CourseSubmit", "ROOT_MODE"]

ROOT_MODE = 0o755  # the exchange root: the instructor writes, everybody traverses, nobody else writes


def _traversable_root(self) -> None:
    """Students need only to enter the root (nbgrader's default check asks for write permission)."""
    if not os.path.isdir(self.root):
        self.fail(f"The course exchange {self.root} does not exist yet: ask your instructor to run "
                  "`course release HW` (it creates the exchange).")
    if not os.access(self.root, os.X_OK):
        self.fail(f"No permission to enter the course exchange {self.root}; ask your instructor.")


class CourseReleaseAssignment(ExchangeReleaseAssignment):
    """nbgrader's release_assignment with a root that is never world-writable (creates it 0755)."""

    def ensure_root(self):
        root = Path(self.root)
        if not root.exists():
            self.log.info("Creating exchange directory: %s", root)
            root.mkdir(parents=True)
        mode = stat.S_IMODE(root.stat().st_mode)
        if mode & (stat.S_IWGRP | stat.S_IWOTH) and not self.coursedir.groupshared:
            self.log.warning("Exchange %s was writable by others (%s); setting %s", root, oct(mode), oct(ROOT_MODE))
            os.chmod(root, ROOT_MODE)
        elif mode & 0o055 != 0o055:
            os.chmod(root, mode | 0o055)


class CourseCollect(ExchangeCollect):
    """nbgrader's collect that skips (and reports) submissions not owned by the student they name."""

    refused: list
    ensure_root = _traversable_root  # the grader owns <root>/<course_id>, not necessarily the shared root

    def init_src(self):
        super().init_src()
        kept, self.refused = [], []
        for rec in self.src_records:
            path = os.path.join(self.inbound_path, rec["filename"])
            try:
                owner = pwd.getpwuid(os.stat(path).st_uid).pw_name
            except KeyError:
                owner = "unknown id"
            if owner != rec["username"] and os.stat(path).st_uid != os.getuid():
                self.log.error("REFUSED %s: claims to be from %s but is owned by %s", rec["filename"],
                               rec["username"], owner)
                self.refused.append(rec["filename"])
            else:
                kept.append(rec)
        self.src_records = kept


class CourseReleaseFeedback(ExchangeReleaseFeedback):
    ensure_root = _traversable_root


class CourseFetchAssignment(ExchangeFetchAssignment):
    ensure_root = _traversable_root


class CourseFetchFeedback(ExchangeFetchFeedback):
    ensure_root = _traversable_root


class CourseList(ExchangeList):
    ensure_root = _traversable_root


class CourseSubmit(ExchangeSubmit):
    """nbgrader's submit, then the submission is readable only by its student and the graders' group.

    nbgrader leaves each submission world-readable (0644 files in a 0777 folder) and relies on its unguessable
    name. Here its files become 0640 and its folders 2770: the folder inherits the group of ``inbound`` (setgid,
    the grader account's group), so the graders can collect it and no other student can read it.
    """

    ensure_root = _traversable_root

    def do_copy(self, src, dest):
        """nbgrader's copy, staged so that the submission folder keeps the inbound's group and setgid bit.

        (copytree's final chmod drops setgid, and files nbgrader writes afterwards -- timestamp.txt,
        submission_secret.txt -- would get the student's group, unreadable to the graders.)
        """
        if os.path.dirname(os.path.abspath(dest)) != os.path.abspath(self.inbound_path):
            return super().do_copy(src, dest)  # the student's own cache copy
        staging = os.path.join(self.inbound_path, ".staging-" + os.urandom(6).hex())  # never matches collect's glob
        super().do_copy(src, staging)
        os.makedirs(dest)
        for name in os.listdir(staging):
            os.rename(os.path.join(staging, name), os.path.join(dest, name))
        os.rmdir(staging)

    def copy_files(self):
        super().copy_files()
        self.set_perms(os.path.join(self.inbound_path, self.assignment_filename), fileperms=0o640, dirperms=0o2770)


def exchange_root(course) -> Path:
    """The exchange folder of a course directory (``Exchange.root`` of its nbgrader_config.py)."""
    return Path(course).resolve() / "exchange"


def _nbgrader(course: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    from .pipeline import _nbgrader as run

    return run(course, *args, timeout=timeout)


def publish(course, assignment: str) -> Path:
    """``nbgrader release_assignment``: assignments/HW -> the exchange's outbound/HW (students can fetch it).

    Returns:
        The outbound folder.
    """
    course = Path(course).resolve()
    _nbgrader(course, "release_assignment", assignment, "--force")
    from .pipeline import _course_id

    return exchange_root(course) / _course_id(course) / "outbound" / assignment


def collect(course, assignment: str) -> dict:
    """``nbgrader collect --update``: the latest submission of each student -> submitted/<student>/HW.

    Returns:
        {"collected": [students], "refused": [inbound entries not owned by the student they name], "log": str}
    """
    course = Path(course).resolve()
    proc = _nbgrader(course, "collect", assignment, "--update")
    log = proc.stdout + proc.stderr
    refused = [line.split("REFUSED ", 1)[1].split(":", 1)[0] for line in log.splitlines() if "REFUSED " in line]
    sub = course / "submitted"
    collected = sorted(p.parent.name for p in sub.glob(f"*/{assignment}") if (p / "timestamp.txt").exists())
    return {"collected": collected, "refused": refused, "log": log}


def release_feedback(course, assignment: str) -> list[Path]:
    """``nbgrader release_feedback``: feedback/<student>/HW/*.html -> the exchange (students fetch it).

    Returns:
        The feedback files now in the exchange.
    """
    course = Path(course).resolve()
    _nbgrader(course, "release_feedback", assignment)
    from .pipeline import _course_id

    return sorted((exchange_root(course) / _course_id(course) / "feedback").glob("*.html"))


def lab_env(base: dict | None = None) -> dict:
    """The environment JupyterLab needs: the venv's bin first on PATH (formgrader runs ``alembic`` by name)."""
    env = dict(os.environ if base is None else base)
    bin_dir = os.path.dirname(sys.executable)
    if env.get("PATH", "").split(os.pathsep)[0] != bin_dir:
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    return env


def lab_command(course, port: int | None = None, open_browser: bool = True, token: str | None = None) -> list[str]:
    """The ``jupyter lab`` command line that ``make lab`` / ``course lab`` runs on a course directory."""
    course = Path(course).resolve()
    cmd = [os.path.join(os.path.dirname(sys.executable), "jupyter"), "lab", f"--ServerApp.root_dir={course}"]
    if port:
        cmd += [f"--ServerApp.port={port}", "--ServerApp.port_retries=0"]
    if not open_browser:
        cmd.append("--no-browser")
    if token is not None:
        cmd.append(f"--IdentityProvider.token={token}")
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


def repair_gradebook(db_path) -> bool:
    """Finish a gradebook that nbgrader left half-built (tables, no ``alembic_version``): stamp alembic's head.

    nbgrader creates the tables, then runs ``alembic`` by name to record the schema version; when alembic was
    not on PATH that second step failed, and later schema upgrades would fail on the file. Returns True if
    the file was repaired.
    """
    import sqlite3

    path = Path(db_path)
    if not path.exists() or path.stat().st_size == 0:
        return False
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables or "alembic_version" in tables:
            return False
        version = alembic_head()
        if version is None:  # no single head in the scripts: ask alembic itself
            os.environ["PATH"] = lab_env()["PATH"]
            from nbgrader.api import get_alembic_version

            version = get_alembic_version()
        write_version(db, version)
    return True


def run_lab(course, port: int | None = None, open_browser: bool = True) -> int:
    """Start JupyterLab on the course (exchange created, venv on PATH); returns its exit code."""
    course = Path(course).resolve()
    root = exchange_root(course)
    root.mkdir(exist_ok=True)
    os.chmod(root, ROOT_MODE)
    if shutil.which("alembic", path=lab_env()["PATH"]) is None:
        raise SystemExit("course: alembic is not installed in this environment (nbgrader needs it); "
                         "run `make install`.")
    if repair_gradebook(course / "gradebook.db"):
        print(f"course: {course / 'gradebook.db'} was left half-built by an earlier start; recorded its schema "
              "version (alembic stamp)")
    return subprocess.call(lab_command(course, port, open_browser), cwd=course, env=lab_env())
