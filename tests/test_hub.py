"""The class on JupyterHub, as `make hub` starts it: two students and a TA, the gradebook in PostgreSQL.

Real components: jupyterhub from PyPI with configurable-http-proxy from npm, PAM login to Unix accounts made
from the roster, each student's own single-user server (nbgrader's assignment list, run as that student), the
course's formgrader as a hub service run by the grader account, Debian's PostgreSQL. The students fetch,
edit and submit through their servers' nbgrader API; the TA's commands run as the grader account (what a
terminal in the formgrader service runs); one student can read neither the other's submission nor feedback.
"""
from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.services import free_port, require, stop, wait_http

pytestmark = pytest.mark.slow

HW = "hw00_preliminaries"
COURSE = "optimization-for-ai"
STUDENTS, TA = ("hubalice", "hubbob"), "hubta"
ANSWER = "    return -(X.T @ (y * np.exp(-np.logaddexp(0.0, y * (X @ w))))) / X.shape[0] + lam * w"
REPO = Path(__file__).resolve().parents[1]


def _api(base, method, path, token, data=None, form=None, timeout=120):
    headers = {"Authorization": f"token {token}"}
    body = None
    if data is not None:
        body, headers["Content-Type"] = json.dumps(data).encode(), "application/json"
    if form is not None:
        body, headers["Content-Type"] = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
    req = urllib.request.Request(base + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read().decode()
            return r.status, json.loads(text) if text[:1] and text[0] in "{[" else text
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()[:2000]


def _as(user, *cmd, check=True, timeout=900):
    """Run a command as a Unix account of the class (runuser, a login-like environment)."""
    proc = subprocess.run(["runuser", "-u", user, "--", "env", f"HOME={os.path.expanduser('~' + user)}",
                           f"PATH={os.path.dirname(sys.executable)}:/usr/bin:/bin", *cmd],
                          capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{cmd} as {user}: {proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _pam_login(base, user, password) -> bool:
    """Log in through the hub's login form (PAM): True when the hub sets its login cookie."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(base + "/hub/login", timeout=60).read().decode()
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"username": user, "password": password, "_xsrf": xsrf}).encode()
    try:
        opener.open(urllib.request.Request(base + "/hub/login?next=%2Fhub%2Fhome", data=form), timeout=60)
    except urllib.error.HTTPError:
        pass
    return any(c.name.startswith("jupyterhub-hub-login") for c in jar)


def _port_block(n: int = 4) -> int:
    """A port p with p .. p+n-1 free (the hub uses the three after its public port)."""
    import socket

    for _ in range(50):
        p = free_port()
        try:
            for k in range(n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p + k))
            return p
        except OSError:
            continue
    raise AssertionError("no block of free ports on 127.0.0.1")


def _cleanup_accounts(names):
    """Kill what still runs as the test's accounts (by pid), then remove the accounts and their homes."""
    import pwd
    import signal

    uids = set()
    for name in names:
        try:
            uids.add(pwd.getpwnam(name).pw_uid)
        except KeyError:
            pass
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if proc.stat().st_uid in uids:
                    os.kill(int(proc.name), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass
    for name in names:
        subprocess.run(["userdel", "-r", name], capture_output=True)


def test_class_on_jupyterhub_with_postgresql():
    require(os.geteuid() == 0, "root (the hub creates the class's Unix accounts)")
    require(bool(shutil.which("runuser")) and bool(shutil.which("useradd")), "runuser/useradd")
    require(bool(list(Path("/usr/lib/postgresql").glob("*/bin/initdb"))), "Debian's postgresql server")
    require((REPO / "services/node_modules/.bin/configurable-http-proxy").exists(), "configurable-http-proxy")
    hub_dir = Path(tempfile.mkdtemp(prefix="course-hub-", dir="/tmp"))  # outside pytest's 0700 tmp folders
    os.chmod(hub_dir, 0o755)
    roster = hub_dir / "roster.csv"
    roster.write_text("student_id,role,first_name,last_name\n" + "".join(f"{s},student,{s},Test\n" for s in STUDENTS)
                      + f"{TA},ta,Tara,Assistant\n")
    port, pg_port = _port_block(), free_port()
    log = hub_dir / "hub.log"
    accounts = [*STUDENTS, TA, f"grader-{COURSE}"]
    with open(log, "w") as fh:  # exactly what `make hub HUB_ARGS=...` runs
        hub = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "course"), "hub", "--roster",
                                str(roster), "--dir", str(hub_dir / "hub"), "--port", str(port), "--pg-port",
                                str(pg_port), "--share-python", "--course-dir", str(REPO)],
                               stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/hub/api/", timeout=180, proc=hub, log=log)
        root = hub_dir / "hub"
        admin = (root / "admin-token").read_text().strip()
        course = root / "courses" / COURSE
        grader = f"grader-{COURSE}"
        deadline = time.monotonic() + 120  # the course's formgrader service
        while _api(base, "GET", f"/services/{COURSE}/api/status", admin)[0] != 200:
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(1)
        # PAM login with a local account (password set for the test)
        subprocess.run(["chpasswd"], input=f"{STUDENTS[0]}:pw-{STUDENTS[0]}\n", text=True, check=True)
        assert _pam_login(base, STUDENTS[0], f"pw-{STUDENTS[0]}")
        assert not _pam_login(base, STUDENTS[0], "wrong")
        # TA (as the grader account): release to the shared exchange; the gradebook is PostgreSQL
        _as(grader, "course", "release", HW, "--course-dir", str(course))
        url = (course / ".gradebook_url").read_text().strip()
        assert url.startswith("postgresql+psycopg2://")
        assert oct(course.stat().st_mode & 0o777) == "0o750"
        # each student: server, token, fetch, edit (alice answers one function), submit
        tokens = {}
        for s in STUDENTS:
            assert _api(base, "POST", f"/hub/api/users/{s}/server", admin)[0] in (201, 202)
        for s in STUDENTS:
            deadline = time.monotonic() + 180
            while not _api(base, "GET", f"/hub/api/users/{s}", admin)[1]["servers"].get("", {}).get("ready"):
                assert time.monotonic() < deadline, log.read_text()[-4000:]
                time.sleep(1)
            status, tok = _api(base, "POST", f"/hub/api/users/{s}/tokens", admin, data={"note": "test"})
            assert status in (200, 201), tok
            tokens[s] = tok["token"]
            status, listing = _api(base, "GET", f"/user/{s}/assignments?course_id={COURSE}", tokens[s])
            assert status == 200 and listing["success"], listing
            assert [a["assignment_id"] for a in listing["value"] if a["status"] == "released"] == [HW]
            status, res = _api(base, "POST", f"/user/{s}/assignments/fetch", tokens[s],
                               form={"course_id": COURSE, "assignment_id": HW})
            assert status == 200 and res["success"], res
            path = f"{COURSE}/{HW}/{HW}.ipynb"
            status, model = _api(base, "GET", f"/user/{s}/api/contents/{path}", tokens[s])
            assert status == 200, model
            if s == STUDENTS[0]:
                nb = model["content"]
                cell = next(c for c in nb["cells"] if c["source"].startswith("def logistic_grad"))
                cell["source"] = cell["source"].replace("    raise NotImplementedError()", ANSWER)
                status, _ = _api(base, "PUT", f"/user/{s}/api/contents/{path}", tokens[s],
                                 data={"type": "notebook", "format": "json", "content": nb})
                assert status == 200
            status, res = _api(base, "POST", f"/user/{s}/assignments/submit", tokens[s],
                               form={"course_id": COURSE, "assignment_id": HW})
            assert status == 200 and res["success"], res
        # the TA reaches the course's formgrader; a student does not
        status, tok = _api(base, "POST", f"/hub/api/users/{TA}/tokens", admin, data={"note": "test"})
        ta_token = tok["token"]
        status, assignments = _api(base, "GET", f"/services/{COURSE}/formgrader/api/assignments", ta_token)
        assert status == 200 and {a["name"]: a for a in assignments}[HW]["status"] == "released", assignments
        assert _api(base, "GET", f"/services/{COURSE}/formgrader/api/assignments", tokens[STUDENTS[0]])[0] == 403
        # TA: collect, trusted autograde, feedback back through the exchange
        out = _as(grader, "course", "collect", HW, "--course-dir", str(course)).stdout
        assert all(f"collected {s}" in out for s in STUDENTS), out
        graded = _as(grader, "course", "autograde", HW, "--course-dir", str(course)).stdout
        _as(grader, "course", "feedback", HW, "--release", "--course-dir", str(course))
        # the rows in PostgreSQL
        import psycopg2

        dsn = url.replace("postgresql+psycopg2://", "postgresql://")
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("SELECT s.student_id, SUM(COALESCE(g.manual_score, g.auto_score, 0)) FROM grade g "
                        "JOIN submitted_notebook n ON g.notebook_id = n.id "
                        "JOIN submitted_assignment s ON n.assignment_id = s.id GROUP BY s.student_id")
            scores = dict(cur.fetchall())
            cur.execute("SELECT name FROM assignment")
            assert [r[0] for r in cur.fetchall()] == [HW]
        assert scores == {STUDENTS[0]: 4.0, STUDENTS[1]: 0.0}, (scores, graded)
        # students fetch their feedback
        for s in STUDENTS:
            status, res = _api(base, "POST", f"/user/{s}/assignments/fetch_feedback", tokens[s],
                               form={"course_id": COURSE, "assignment_id": HW})
            assert status == 200 and res["success"], res
        alice, bob = STUDENTS
        fb = list(Path(os.path.expanduser(f"~{alice}")).glob(f"{COURSE}/{HW}/feedback/*/{HW}.html"))
        assert len(fb) == 1 and "Trusted grader: 4 / 4 points" in fb[0].read_text()
        # isolation: bob cannot list the drop box or the feedback folder, nor read alice's submission,
        # her feedback (in the exchange or her home), the course's submissions or its gradebook URL
        inbound = root / "exchange" / COURSE / "inbound"
        alice_sub = next(p for p in inbound.iterdir() if p.name.startswith(alice + "+"))
        feedback_files = sorted((root / "exchange" / COURSE / "feedback").iterdir())
        assert len(feedback_files) == 2
        denied = [inbound, root / "exchange" / COURSE / "feedback"]
        for target in [*denied]:
            assert _as(bob, "ls", str(target), check=False).returncode != 0, target
        for target in [alice_sub / f"{HW}.ipynb", alice_sub / "submission_secret.txt", fb[0],
                       course / "submitted" / alice / HW / f"{HW}.ipynb", course / ".gradebook_url"]:
            proc = _as(bob, "cat", str(target), check=False)
            assert proc.returncode != 0 and "Permission denied" in proc.stderr, target
        # ... and the feedback files are named by submission secrets that only each submitter's cache holds
        bob_secret = _as(bob, "sh", "-c", f"cat ~/.local/share/jupyter/nbgrader_cache/{COURSE}/*/submission_secret.txt")
        assert bob_secret.stdout.strip() and bob_secret.stdout.strip() != (alice_sub / "submission_secret.txt").read_text()
    finally:
        stop(hub, timeout=60)
        from course_lib.grading import hub as hub_module, postgres

        hub_module.stop_proxy(hub_dir / "hub")  # `course hub` stops both; this is for a hub killed early
        postgres.stop(hub_dir / "hub" / "postgres")
        _cleanup_accounts(accounts)
        shutil.rmtree(hub_dir, ignore_errors=True)
    assert not any(p.exists() for p in [Path(f"/home/{STUDENTS[0]}")])
