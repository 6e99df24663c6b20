"""``course hub``: a JupyterHub for the class on one server, in nbgrader's documented multiple-course layout.

What ``prepare`` sets up in the hub folder (``--dir``, e.g. /srv/course-hub), as root:

* **Accounts** from the roster CSV (``student_id`` and ``role`` = student | ta | instructor): a Unix account per
  person (``useradd``; home 0700) for the hub's default PAM login -- for a university, swap the authenticator
  for OAuth or LDAP (docs/SERVING.md); the account names stay the student ids.
* **The course**, owned by its grader account ``grader-<course_id>`` (nbgrader's one account per course):
  ``courses/<course_id>/`` with the course's nbgrader_config.py, solutions/ and grading.toml, mode 0750, so no
  student reads solutions, submissions or the gradebook. TAs and instructors grade through the course's
  formgrader, a hub *service* at ``/services/<course_id>/`` running as the grader account (terminals there run
  ``course collect/autograde/feedback`` as that account); the groups ``formgrade-<course_id>`` (TAs,
  instructors) and ``nbgrader-<course_id>`` (students) are nbgrader's JupyterHub groups.
* **The exchange** shared by all courses, ``exchange/`` (0755, root) with ``exchange/<course_id>`` owned by the
  grader account; permissions as in :mod:`course_lib.grading.exchange`.
* **Per-role extensions**: every user's ``~/.jupyter`` gets nbgrader's student config (exchange root, no
  course_id: the multiple-course set-up) and has formgrader and create-assignment disabled (server and lab
  extension); the assignment list and course list stay on. Only the course service runs formgrader.
* **The gradebook** in PostgreSQL (:mod:`course_lib.grading.postgres`), one role and database per course;
  its URL is in ``courses/<course_id>/.gradebook_url`` (0600), which every ``course`` command there reads.
* **jupyterhub_config.py**: configurable-http-proxy from npm (services/node_modules), the hub and proxy on
  127.0.0.1, LocalProcessSpawner running ``jupyterhub-singleuser`` of this environment, and an admin service
  token (``admin-token``, 0600) for automation.
"""
from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from . import postgres

__all__ = ["read_class_roster", "grader_account", "prepare", "hub_command", "cli_hub", "add_hub_arguments",
           "ROLES", "GRADEBOOK_URL_FILE", "configured_db_url"]

ROLES = ("student", "ta", "instructor")
GRADEBOOK_URL_FILE = ".gradebook_url"
REPO = Path(__file__).resolve().parents[2]
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")


def configured_db_url(course) -> str | None:
    """The gradebook URL a hub course keeps in ``.gradebook_url`` (None: the default SQLite gradebook)."""
    path = Path(course) / GRADEBOOK_URL_FILE
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def read_class_roster(path) -> list[dict]:
    """Roster rows with a valid Unix ``student_id`` and a ``role`` in ROLES (default student)."""
    from .lms import read_roster

    rows = read_roster(path)
    for r in rows:
        r["role"] = (r.get("role") or "student").lower()
        if r["role"] not in ROLES:
            raise SystemExit(f"course: roster {path}: role of {r['student_id']!r} must be one of {ROLES}; "
                             f"got {r['role']!r}")
        if not _USER.match(r["student_id"]):
            raise SystemExit(f"course: roster {path}: {r['student_id']!r} is not a valid account name "
                             "(lower-case letters, digits, _ and -, starting with a letter)")
    return rows


def grader_account(course_id: str) -> str:
    return f"grader-{course_id}"[:32]


def _run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120, **kw)


def _ensure_user(name: str, groups: list[str] = ()) -> pwd.struct_passwd:
    try:
        pwd.getpwnam(name)
    except KeyError:
        _run(["useradd", "--create-home", "--shell", "/bin/bash", "--user-group", name])
    for g in groups:
        _run(["usermod", "-a", "-G", g, name])
    user = pwd.getpwnam(name)
    os.chmod(user.pw_dir, 0o700)
    return user


def _chown_tree(path: Path, user: pwd.struct_passwd) -> None:
    for p in [path, *path.rglob("*")]:
        os.chown(p, user.pw_uid, user.pw_gid, follow_symlinks=False)


def _student_config(exchange: Path) -> str:
    return ("# nbgrader, student side (multiple courses: no course_id; the exchange lists every course)\n"
            "c = get_config()\n"
            f"c.Exchange.root = {str(exchange)!r}\n"
            "c.Exchange.path_includes_course = True\n"
            + "".join(f"c.ExchangeFactory.{k} = 'course_lib.grading.exchange.{v}'\n" for k, v in
                      [("fetch_assignment", "CourseFetchAssignment"), ("fetch_feedback", "CourseFetchFeedback"),
                       ("list", "CourseList"), ("submit", "CourseSubmit")]))


def _write_user_config(user: pwd.struct_passwd, exchange: Path) -> None:
    """nbgrader's student config and formgrader/create-assignment disabled, in the user's ~/.jupyter."""
    jup = Path(user.pw_dir) / ".jupyter"
    (jup / "labconfig").mkdir(parents=True, exist_ok=True)
    (jup / "nbgrader_config.py").write_text(_student_config(exchange))
    (jup / "jupyter_server_config.json").write_text(json.dumps(
        {"ServerApp": {"jpserver_extensions": {"nbgrader.server_extensions.formgrader": False}}}, indent=1))
    (jup / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyter/nbgrader:formgrader": True, "@jupyter/nbgrader:create-assignment": True}},
        indent=1))
    _chown_tree(jup, user)


def _course_config(course_dir: Path, course_id: str, exchange: Path) -> str:
    return (f'"""nbgrader configuration of {course_id} on the hub (written by `course hub`)."""\n'
            "import os\n\nc = get_config()\n"
            "c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))\n"
            f"c.CourseDirectory.course_id = {course_id!r}\n"
            "c.CourseDirectory.source_directory = 'solutions'\n"
            "c.CourseDirectory.release_directory = 'assignments'\n"
            f"c.CourseDirectory.db_url = open(os.path.join(c.CourseDirectory.root, {GRADEBOOK_URL_FILE!r})).read()"
            ".strip()\n"
            "c.ExecutePreprocessor.timeout = 60\n"
            "c.ClearSolutions.code_stub = {'python': '# YOUR CODE HERE\\nraise NotImplementedError()'}\n"
            f"c.Exchange.root = {str(exchange)!r}\n"
            "c.Exchange.path_includes_course = True\n"
            + "".join(f"c.ExchangeFactory.{k} = 'course_lib.grading.exchange.{v}'\n" for k, v in
                      [("release_assignment", "CourseReleaseAssignment"), ("collect", "CourseCollect"),
                       ("release_feedback", "CourseReleaseFeedback"),
                       ("list", "CourseList"), ("fetch_assignment", "CourseFetchAssignment"),
                       ("fetch_feedback", "CourseFetchFeedback"), ("submit", "CourseSubmit")]))


def prepare(hub_dir, roster, course_id: str = "optimization-for-ai", source=None, port: int = 8000,
            pg_port: int = 5433, assignments=None, share: bool = False) -> dict:
    """Set up accounts, course, exchange, gradebook and jupyterhub_config.py (see the module docstring).

    Args:
        hub_dir: the hub's folder (created; 0755).
        roster: roster CSV (student_id, role, ...).
        course_id: nbgrader course id (letters, digits, - and _).
        source: the course repository to copy solutions/ and grading.toml from (default: this one).
        port: the hub's public port on 127.0.0.1.
        pg_port: PostgreSQL's port on 127.0.0.1.
        assignments: names of solutions/ to copy (default all).
        share: add o+x to folders above this environment that other accounts cannot enter (see share_python).
    Returns:
        {"config", "course_dir", "exchange", "db_url", "grader", "admin_token", "pg_data", "url"}
    """
    if os.geteuid() != 0:
        raise SystemExit("course hub: run as root (it creates the class's Unix accounts and starts servers as "
                         "them); for a university-scale hub see docs/SERVING.md.")
    if not re.match(r"^[A-Za-z0-9_-]+$", course_id):
        raise SystemExit(f"course hub: --course-id must be letters, digits, - and _; got {course_id!r}")
    share_python(share)
    hub = Path(hub_dir).resolve()
    hub.mkdir(parents=True, exist_ok=True)
    os.chmod(hub, 0o755)
    source = Path(source or REPO)
    people = read_class_roster(roster)
    graders = [r["student_id"] for r in people if r["role"] in ("ta", "instructor")]
    students = [r["student_id"] for r in people if r["role"] == "student"]
    grader = _ensure_user(grader_account(course_id))
    exchange = hub / "exchange"
    exchange.mkdir(exist_ok=True)
    os.chmod(exchange, 0o755)
    (exchange / course_id).mkdir(exist_ok=True)
    os.chown(exchange / course_id, grader.pw_uid, grader.pw_gid)
    for r in people:
        _write_user_config(_ensure_user(r["student_id"]), exchange)
    # the course, owned by its grader account
    course = hub / "courses" / course_id
    course.mkdir(parents=True, exist_ok=True)
    os.chmod(course.parent, 0o755)
    for hw in assignments or sorted(p.name for p in (source / "solutions").iterdir() if p.is_dir()):
        if not (course / "solutions" / hw).exists():
            shutil.copytree(source / "solutions" / hw, course / "solutions" / hw)
    shutil.copy(source / "grading.toml", course / "grading.toml")
    (course / "nbgrader_config.py").write_text(_course_config(course, course_id, exchange))
    # the gradebook in PostgreSQL
    pg_data = hub / "postgres"
    postgres.start(pg_data, pg_port)
    db_name = "gradebook_" + re.sub(r"[^a-z0-9]", "_", course_id.lower())
    db_url = postgres.ensure_database(pg_data, pg_port, db_name, hub / f".{db_name}.password")
    (course / GRADEBOOK_URL_FILE).write_text(db_url + "\n")
    _chown_tree(course, grader)
    os.chmod(course, 0o750)
    os.chmod(course / GRADEBOOK_URL_FILE, 0o600)
    token_file = hub / "admin-token"
    if not token_file.exists():
        token_file.write_text(secrets.token_hex(32) + "\n")
    os.chmod(token_file, 0o600)
    config = hub / "jupyterhub_config.py"
    config.write_text(_hub_config(hub, course_id, course, grader.pw_name, graders, students, port,
                                  token_file.read_text().strip()))
    os.chmod(config, 0o600)
    return {"config": config, "course_dir": course, "exchange": exchange, "db_url": db_url,
            "grader": grader.pw_name, "admin_token": token_file.read_text().strip(), "pg_data": pg_data,
            "url": f"http://127.0.0.1:{port}"}


def _unreachable_paths() -> list[Path]:
    """Folders above this environment's Python, the venv and the repository that other accounts cannot enter."""
    targets = {Path(os.path.realpath(sys.executable)), Path(sys.prefix) / "bin", REPO / "course_lib",
               Path(os.path.realpath(sys.base_prefix)) / "lib"}
    bad = set()
    for target in targets:
        for folder in [target, *target.parents] if target.is_dir() else target.parents:
            if not os.stat(folder).st_mode & 0o001:
                bad.add(folder)
    return sorted(bad)


def share_python(grant: bool) -> list[Path]:
    """Make the course environment runnable by the class's accounts (``o+x``: enter, not list), or explain.

    Returns:
        The folders given ``o+x`` (empty when all were reachable).
    """
    bad = _unreachable_paths()
    if bad and not grant:
        raise SystemExit("course hub: the class's accounts cannot run this environment's Python: "
                         f"{', '.join(map(str, bad))} cannot be entered by other users. Install the course "
                         "environment in a shared place (e.g. /opt/course), or pass --share-python to add "
                         "traverse permission (o+x, no listing) to those folders.")
    for folder in bad:
        os.chmod(folder, os.stat(folder).st_mode | 0o001)
    return bad


def _hub_config(hub: Path, course_id: str, course: Path, grader: str, graders: list[str], students: list[str],
                port: int, admin_token: str) -> str:
    bin_dir = os.path.dirname(sys.executable)
    proxy = REPO / "services" / "node_modules" / ".bin" / "configurable-http-proxy"
    if not proxy.exists():
        raise SystemExit(f"course hub: {proxy} is missing; run scripts/install-services.sh "
                         "(npm ci of configurable-http-proxy).")
    env = {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin"}
    service = {"name": course_id, "url": f"http://127.0.0.1:{port + 3}", "user": grader, "cwd": str(course),
               "command": [f"{bin_dir}/jupyterhub-singleuser", f"--ServerApp.root_dir={course}"],
               "environment": dict(env, JUPYTERHUB_DEFAULT_URL="/lab"), "oauth_no_confirm": True}
    roles = [
        {"name": f"formgrade-{course_id}", "groups": [f"formgrade-{course_id}"],
         "scopes": [f"access:services!service={course_id}", f"read:services!service={course_id}", "list:services"]},
        {"name": "course-admin", "services": ["course-admin"],
         "scopes": ["admin:users", "admin:servers", "tokens", "access:servers", "admin:groups", "list:services",
                    f"access:services!service={course_id}"]},
        {"name": "user", "scopes": ["self", "list:services", "read:services"]},
    ]
    lines = [
        '"""JupyterHub configuration written by `course hub` (see course_lib/grading/hub.py)."""',
        "c = get_config()  # noqa: F821",
        f"c.JupyterHub.bind_url = 'http://127.0.0.1:{port}'",
        f"c.JupyterHub.hub_bind_url = 'http://127.0.0.1:{port + 1}'",
        f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{port + 2}'",
        f"c.ConfigurableHTTPProxy.pid_file = {str(hub / 'jupyterhub-proxy.pid')!r}",
        f"c.ConfigurableHTTPProxy.command = [{str(proxy)!r}]",
        f"c.JupyterHub.db_url = 'sqlite:///{hub / 'jupyterhub.sqlite'}'",
        f"c.JupyterHub.cookie_secret_file = {str(hub / 'jupyterhub_cookie_secret')!r}",
        "c.JupyterHub.authenticator_class = 'pam'  # local accounts; OAuth/LDAP: docs/SERVING.md",
        f"c.Authenticator.allowed_users = {set(graders + students)!r}",
        "c.JupyterHub.spawner_class = 'localprocess'",
        f"c.Spawner.cmd = [{bin_dir + '/jupyterhub-singleuser'!r}]",
        "c.Spawner.default_url = '/lab'",
        f"c.Spawner.environment = {env!r}",
        "c.Spawner.start_timeout = 120",
        "c.Spawner.http_timeout = 120",
        f"c.JupyterHub.load_groups = {{'formgrade-{course_id}': {{'users': {graders!r}}}, "
        f"'nbgrader-{course_id}': {{'users': {students!r}}}}}",
        f"c.JupyterHub.services = [{service!r}, {{'name': 'course-admin', 'api_token': {admin_token!r}}}]",
        f"c.JupyterHub.load_roles = {roles!r}",
    ]
    return "\n".join(lines) + "\n"


def hub_command(config) -> list[str]:
    """The jupyterhub command line (this environment's jupyterhub, the written config)."""
    return [os.path.join(os.path.dirname(sys.executable), "jupyterhub"), "-f", str(config)]


def add_hub_arguments(p) -> None:
    p.add_argument("--roster", required=True, help="class roster CSV: student_id,role[,first_name,last_name,email]")
    p.add_argument("--dir", default="/srv/course-hub", help="the hub's folder (default /srv/course-hub)")
    p.add_argument("--course-id", default="optimization-for-ai", help="nbgrader course id")
    p.add_argument("--port", type=int, default=8000, help="public port on 127.0.0.1 (default 8000; the hub API, "
                                                          "proxy API and course service use the next three)")
    p.add_argument("--pg-port", type=int, default=5433, help="PostgreSQL port on 127.0.0.1 (default 5433)")
    p.add_argument("--share-python", action="store_true", help="let the class's accounts enter the folders "
                                                               "above this environment (o+x, no listing)")


def cli_hub(args) -> int:
    """``course hub``: prepare, then run JupyterHub in the foreground; stops PostgreSQL when it exits."""
    from ..cli import find_course_dir
    from .exchange import lab_env

    source = find_course_dir(args.course_dir)
    info = prepare(args.dir, args.roster, course_id=args.course_id, source=source, port=args.port,
                   pg_port=args.pg_port, share=args.share_python)
    print(f"hub: {info['url']}  course {args.course_id} in {info['course_dir']} (grader account {info['grader']})")
    print(f"gradebook: PostgreSQL on 127.0.0.1:{args.pg_port}; exchange: {info['exchange']}", flush=True)
    return run_hub(info, cwd=args.dir, env=lab_env())


def stop_proxy(hub_dir) -> None:
    """Stop a configurable-http-proxy that JupyterHub left running (it keeps the proxy over hub restarts)."""
    pid_file = Path(hub_dir) / "jupyterhub-proxy.pid"
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"configurable-http-proxy" in cmdline:
        os.kill(pid, signal.SIGTERM)
    pid_file.unlink(missing_ok=True)


def run_hub(info: dict, cwd, env) -> int:
    """Run jupyterhub until it exits or we get SIGTERM/SIGINT; then stop its proxy and PostgreSQL."""
    proc = subprocess.Popen(hub_command(info["config"]), cwd=cwd, env=env)
    forward = lambda signum, frame: proc.send_signal(signal.SIGTERM)  # noqa: E731 - graceful hub shutdown
    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            try:
                return proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                continue
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        stop_proxy(Path(info["config"]).parent)
        postgres.stop(info["pg_data"])
