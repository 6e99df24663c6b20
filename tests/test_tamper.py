"""Layer 4: a submission cannot fool the grader, crash it, or touch anything it should not.

Every case is a real hw00 submission graded by `course autograde` (real nbgrader in a sandbox, then the
trusted re-scoring). Each tampering submission has the same honest part -- a correct fd_gradient (3 points)
and curvature (2 points), a wrong logistic_grad and no largest_eigenvalue -- so each must score exactly 5,
whatever its tampering code tries. All cases are graded in one parallel run (--jobs 2) next to an honest
full-marks submission, which must be unaffected.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

import pytest

from coursedir import make_course, release_nb, source_nb, submit, with_answers
from course_lib.grading.pipeline import autograde

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("tamper")]
HW = "hw00_preliminaries"
HONEST = 5.0

FD = '''def fd_gradient(f, x, h=1e-6):
    return np.array([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(len(x))])'''
CURV = '''def curvature(A):
    ev = np.linalg.eigvalsh(A)
    return ev[-1], ev[0], ev[-1] / ev[0]'''
WRONG = '''
def logistic_grad(w, X, y, lam):
    return (X.T @ y) / len(y) + lam * w
'''


def _case(prefix: str, body: str = WRONG) -> dict:
    return {"logistic_grad": prefix + "\n" + body, "fd_gradient": FD, "curvature": CURV}


def _cases(course) -> dict[str, dict]:
    c = str(course)
    return {
        "t_numpy": _case("import numpy\nnumpy.allclose = lambda *a, **k: True\n"
                         "numpy.testing.assert_allclose = lambda *a, **k: None\nnumpy.isclose = lambda *a, **k: True"),
        "t_builtins": _case("import builtins\nbuiltins.abs = lambda x: 0\nbuiltins.all = lambda x: True\n"
                            "builtins.AssertionError = type('Never', (BaseException,), {})"),
        "t_assert": _case("import _pytest.assertion.rewrite as r\nr.rewrite_asserts = lambda *a, **k: None\n"
                          "import _pytest.outcomes as o\no.fail = lambda *a, **k: None"),
        "t_grading": _case("import course_lib.grading as g, course_lib.grading.checks as c\n"
                           "g.check_close = c.check_close = lambda *a, **k: None\n"
                           "import ipytest\nipytest.run = lambda *a, **k: 0\n"
                           "import course_lib.grading.trusted as t\nt.grade_notebook = lambda *a, **k: {}"),
        "t_inspect": _case("import inspect\ninspect.getsource = lambda *a, **k: 'def test(): pass'\n"
                           "inspect.getsourcelines = lambda *a, **k: (['def test(): pass'], 1)"),
        "t_subprocess": _case("import subprocess\nsubprocess.run = lambda *a, **k: None\n"
                              "subprocess.Popen = None\nsubprocess.check_output = lambda *a, **k: b''"),
        "t_sys_modules": _case("import sys, types\nfake = types.ModuleType('fake')\nfake.check_close = lambda *a, **k: None\n"
                               "sys.modules['course_lib.grading.checks'] = fake\nsys.modules['ipytest'] = fake\n"
                               "sys.modules['course_lib.grading.trusted'] = fake"),
        "t_sys_exit": _case("import sys", body=WRONG + "\nsys.exit(0)\n"),
        "t_os_exit_in_call": _case("import os", body='''
def logistic_grad(w, X, y, lam):
    os._exit(0)
'''),
        "t_infinite_loop": _case("", body='''
def logistic_grad(w, X, y, lam):
    while True:
        pass
'''),
        "t_memory_bomb": _case("", body='''
def logistic_grad(w, X, y, lam):
    blocks = []
    while True:
        blocks.append(bytearray(1_000_000_000))
'''),
        "t_files": _case(f'''import os, glob, shutil
for p in glob.glob({c!r} + "/**", recursive=True) + ["../../../gradebook.db", "../../gradebook.db"]:
    try:
        if os.path.isfile(p):
            open(p, "w").write("pwned")
            os.remove(p)
        elif os.path.isdir(p) and p.rstrip("/") != {c!r}:
            shutil.rmtree(p, ignore_errors=True)
    except OSError:
        pass
try:
    os.makedirs({c!r} + "/autograded/t_files/{HW}", exist_ok=True)
    open({c!r} + "/autograded/t_files/{HW}/.course_graded.json", "w").write('{{"score": 100}}')
except OSError:
    pass
'''),
        "t_fake_output": _case('print("1 passed in 0.01s")\nprint("Score: 16.0 / 16.0")'),
        "t_showtraceback": _case("ip = get_ipython()\nip.showtraceback = lambda *a, **k: None\n"
                                 "ip._showtraceback = lambda *a, **k: None\nip.showsyntaxerror = lambda *a, **k: None"),
        "t_lying_objects": _case("", body='''
class Liar:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __lt__(self, other): return True
    def __le__(self, other): return True
    def __abs__(self): return 0.0
    def __array__(self, *a, **k): return np.zeros(3)
    def __float__(self): return 0.0
    def __len__(self): return 3
    @property
    def shape(self): return (3,)
    def __sub__(self, other): return 0.0
    def __rsub__(self, other): return 0.0

def logistic_grad(w, X, y, lam):
    return Liar()
'''),
        "t_hidden_source": _case("", body=f'''
def logistic_grad(w, X, y, lam):
    import glob
    found = [open(p).read() for p in glob.glob({tempfile.gettempdir() + "/course-*/**/test_*.py"!r}, recursive=True)]
    raise ValueError("LEAK " + str(len(found)) + " " + " ".join(found)[:1500])
'''),
        "t_unmount": _case(f'''import ctypes, glob
_libc = ctypes.CDLL(None, use_errno=True)

def _unsandbox():
    """Undo the sandbox's mounts: unmount every cover, re-mount every read-only folder read-write."""
    undone = 0
    for line in reversed(open("/proc/self/mountinfo").read().splitlines()):
        point = line.split()[4].encode()
        undone += _libc.umount2(point, 2) == 0  # MNT_DETACH
        undone += _libc.mount(None, point, None, 32 | 4096, None) == 0  # MS_REMOUNT | MS_BIND, not MS_RDONLY
    return undone

def _secrets():
    return [open(p).read() for p in glob.glob({c!r} + "/s*/**/*.ipynb", recursive=True)]

_undone = _unsandbox()
for _p in [{c + "/gradebook.db"!r}, {c + f"/submitted/honest/{HW}/{HW}.ipynb"!r}]:
    try:
        open(_p, "w").write("pwned")
    except OSError:
        pass
print("UNDONE", _undone, " ".join(_secrets())[:3000])
''', body='''
def logistic_grad(w, X, y, lam):
    undone = _unsandbox()
    found = _secrets()
    raise ValueError("UNDONE " + str(undone) + " READ " + str(len(found)) + " " + " ".join(found)[:1500])
'''),
        "t_journal": _case(f'''import os, stat, time
def _journal(seconds):
    """Poll the gradebook's rollback journal: (is it covered, the most bytes read from it)."""
    path, most, end = {c + "/gradebook.db-journal"!r}, 0, time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with open(path, "rb") as f:
                most = max(most, len(f.read()))
        except OSError:
            pass
    try:
        covered = stat.S_ISCHR(os.stat(path).st_mode)  # /dev/null bound over it
    except OSError:
        covered = False
    return f"JOURNAL covered={{covered}} read={{most}} "
print(_journal(1.5))
''', body='''
def logistic_grad(w, X, y, lam):
    raise ValueError(_journal(0.5))
'''),
        "t_library": _case("from course_lib.problems import LogisticRegression", body='''
def logistic_grad(w, X, y, lam):
    return LogisticRegression(X, y, lam=lam).grad(w)
'''),
    }


def _locked_cell_edit(nb):
    """Edit a locked test cell's source and metadata (points, grade flag) in the submission."""
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade_id") == "test_logistic_grad":
            cell.source = "%%ipytest\ndef test_nothing():\n    pass"
            meta["points"] = 100
        if meta.get("grade_id") == "test_curvature":
            meta["grade"] = False
            meta["solution"] = True
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("tamper") / "course", [HW])
    # short limits so loops and bombs end quickly
    text = (course / "grading.toml").read_text().replace("timeout_s = 20", "timeout_s = 10")
    text = text.replace("memory_mb = 4096", "memory_mb = 2048\ncell_timeout_s = 20\nload_timeout_s = 60", 1)
    (course / "grading.toml").write_text(text)
    rel = release_nb(HW)
    cases = _cases(course)
    for student, answers in cases.items():
        submit(course, student, HW, with_answers(rel, answers))
    submit(course, "t_locked_cells", HW, _locked_cell_edit(with_answers(rel, _case(""))))
    submit(course, "honest", HW, source_nb(HW))
    others_before = hashlib.sha256((course / "submitted" / "honest" / HW / f"{HW}.ipynb").read_bytes()).hexdigest()
    from course_lib.grading import forkserver

    started, init, journal = [], forkserver.ForkServer.__init__, course / "gradebook.db-journal"

    def counted(self, hide=(), readonly=(), *args, **kwargs):
        if not started and journal.exists():  # the journal the first sandbox covers: is it still the same file?
            _JOURNAL_FD.append(os.open(journal, os.O_RDONLY))
        started.append(tuple(hide))
        init(self, hide, readonly, *args, **kwargs)

    forkserver.ForkServer.__init__ = counted
    try:
        summary = {s["student"]: s for s in autograde(course, HW, jobs=2)}
    finally:
        forkserver.ForkServer.__init__ = init
    _FORK_SERVERS[:] = started
    return course, summary, others_before, list(cases) + ["t_locked_cells"]


_FORK_SERVERS: list[tuple] = []  # the hidden-path set of every nbgrader fork server the graded run started
_JOURNAL_FD: list[int] = []  # the gradebook journal as the first fork server started, held open


def _trusted(course, student):
    return json.loads((course / "autograded" / student / HW / "trusted_results.json").read_text())[HW]


@pytest.mark.parametrize("student", list(_cases("/x")) + ["t_locked_cells"])
def test_tampering_earns_only_the_honest_part(graded, student):
    from course_lib.grading.sandbox import namespaces_available

    if student in ("t_files", "t_hidden_source", "t_unmount") and not namespaces_available():
        pytest.xfail("without user namespaces the course directory is not hidden (README, Trust model)")
    course, summary, _, _ = graded
    s = summary[student]
    assert s["status"] == "graded", s
    assert s["score"] == HONEST, (student, s, _trusted(course, student))
    assert s["max_score"] == 16.0  # editing a cell's points does not change what the assignment is worth


def test_honest_submission_unaffected(graded):
    course, summary, others_before, _ = graded
    assert summary["honest"]["score"] == 13.0, summary["honest"]
    after = hashlib.sha256((course / "submitted" / "honest" / HW / f"{HW}.ipynb").read_bytes()).hexdigest()
    assert after == others_before, "a submission changed another student's files"


def test_gradebook_intact_with_one_row_per_submission(graded):
    course, summary, _, students = graded
    db = course / "gradebook.db"
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        subs = con.execute("SELECT student_id, COUNT(*) FROM submitted_assignment GROUP BY student_id").fetchall()
    assert dict(subs) == {s: 1 for s in students + ["honest"]}


def test_crashes_and_limits_have_clear_messages(graded):
    course, _, _, _ = graded
    msgs = {s: " ".join(t["message"] for c in _trusted(course, s)["cells"] for t in c["tests"] if not t["passed"])
            for s in ("t_infinite_loop", "t_os_exit_in_call", "t_memory_bomb", "t_lying_objects", "t_library")}
    assert "Time limit" in msgs["t_infinite_loop"] and "infinite loop" in msgs["t_infinite_loop"]
    assert "ended the grading process" in msgs["t_os_exit_in_call"]
    assert "MemoryError" in msgs["t_memory_bomb"] or "memory" in msgs["t_memory_bomb"]
    assert "cannot be graded" in msgs["t_lying_objects"]
    assert "not allowed" in msgs["t_library"]


def test_kernel_tampering_would_have_fooled_plain_nbgrader(graded):
    """The attack is real: nbgrader's own kernel run scores the numpy monkeypatch higher than it deserves."""
    course, _, _, _ = graded
    kernel = _trusted(course, "t_numpy")["nbgrader_kernel_scores"]
    assert kernel["test_logistic_grad"] == 4.0
    trusted = {c["grade_id"]: c["points"] for c in _trusted(course, "t_numpy")["cells"]}
    assert trusted["test_logistic_grad"] == 0.0


def test_feedback_hides_hidden_tests_but_names_them(graded):
    course, _, _, _ = graded
    text = (course / "autograded" / "t_numpy" / HW / f"{HW}.ipynb").read_text()
    assert "test_logistic_grad_matches_reference" in text  # the hidden test's name and message ...
    assert "LogisticRegression(X, y, lam=lam).grad(w)" not in text  # ... but not its source
    assert "[FAIL]" in text


def test_student_code_cannot_read_the_hidden_tests_while_it_is_graded(graded):
    """The trusted runner's test modules (hidden tests' source) live in a folder the student's worker cannot see."""
    from course_lib.grading.sandbox import namespaces_available

    if not namespaces_available():
        pytest.xfail("without user namespaces the runner's folder is not hidden (README, Trust model)")
    course, _, _, _ = graded
    messages = " ".join(t["message"] for c in _trusted(course, "t_hidden_source")["cells"] for t in c["tests"])
    assert "LEAK 0 " in messages  # the code ran, looked, and found no test module
    text = (course / "autograded" / "t_hidden_source" / HW / f"{HW}.ipynb").read_text()
    assert "LogisticRegression(X, y, lam=lam).grad(w)" not in text and "def test_" not in messages


def test_student_code_cannot_undo_the_sandbox_mounts(graded):
    """The namespace's root made the mounts that hide the course; student code runs without its capabilities.

    Before the sandbox dropped them, t_unmount's umount2/remount calls succeeded (in nbgrader's kernel and
    in the trusted worker): it read the source notebooks' hidden tests and overwrote the gradebook.
    """
    from course_lib.grading.sandbox import namespaces_available

    if not namespaces_available():
        pytest.xfail("without user namespaces the course directory is not hidden (README, Trust model)")
    course, _, _, _ = graded
    messages = " ".join(t["message"] for c in _trusted(course, "t_unmount")["cells"] for t in c["tests"])
    assert "UNDONE 0 READ 0 " in messages  # the trusted worker's attempt: nothing unmounted, nothing read
    text = (course / "autograded" / "t_unmount" / HW / f"{HW}.ipynb").read_text()
    assert "UNDONE 0 " in text  # nbgrader's kernel ran the same code, with the same result
    assert "LogisticRegression(X, y, lam=lam).grad(w)" not in text + messages


def test_one_warm_nbgrader_server_per_grading_thread_for_the_whole_run(graded):
    """The hidden-path set (the warm servers' key) is the same from the first submission to the last.

    A new course's gradebook used to appear after the servers were warmed, and SQLite's journal came
    and went with every merge: both changed the set, and each change started new servers.
    """
    course, _, _, _ = graded
    assert len(_FORK_SERVERS) == 2 and len(set(_FORK_SERVERS)) == 1, _FORK_SERVERS
    assert {str(course / "gradebook.db"), str(course / "gradebook.db-journal")} <= set(_FORK_SERVERS[0])


def test_student_code_cannot_read_the_gradebook_journal_of_a_merge_under_way(graded):
    """With --jobs 2 one stream merges grades while the other runs a submission; SQLite's rollback journal
    holds the old pages of other students' rows while a merge is under way.

    It used to be created and removed by every merge, so no sandbox covered it: a submission polling the path
    like t_journal read 53,864 bytes of it. Now it is one file for the whole run (journal_mode=TRUNCATE in every writer the run starts),
    covered in every sandbox, in nbgrader's kernel and in the trusted worker alike.
    """
    from course_lib.grading.sandbox import namespaces_available

    if not namespaces_available():
        pytest.xfail("without user namespaces the course directory is not hidden (README, Trust model)")
    course, _, _, _ = graded
    messages = " ".join(t["message"] for c in _trusted(course, "t_journal")["cells"] for t in c["tests"])
    assert "JOURNAL covered=True read=0 " in messages and "covered=False" not in messages, messages
    text = (course / "autograded" / "t_journal" / HW / f"{HW}.ipynb").read_text()
    assert "JOURNAL covered=True read=0 " in text and "covered=False" not in text
    # the file the first sandbox covered was never removed (a removed mount point is uncovered everywhere)
    assert len(_JOURNAL_FD) == 1
    held = os.fstat(_JOURNAL_FD[0])
    os.close(_JOURNAL_FD.pop())
    assert held.st_nlink == 1 and os.path.samestat(held, os.stat(course / "gradebook.db-journal"))
    assert held.st_size == 0  # between transactions it is empty


def test_rerun_skips_graded_and_keeps_manual_grades(graded):
    course, _, _, _ = graded
    from nbgrader.api import Gradebook

    url = f"sqlite:///{course / 'gradebook.db'}"
    with Gradebook(url, "optimization-for-ai") as gb:
        g = gb.find_grade("written_step_size", HW, HW, "honest")
        g.manual_score = 2.5
        gb.db.commit()
    again = {s["student"]: s for s in autograde(course, HW, students=["honest", "t_numpy"], jobs=2)}
    assert all(s["status"] == "skipped" for s in again.values())
    forced = {s["student"]: s for s in autograde(course, HW, students=["honest"], jobs=1, force=True)}
    assert forced["honest"]["score"] == 13.0 + 2.5
    with Gradebook(url, "optimization-for-ai") as gb:
        assert gb.find_grade("written_step_size", HW, HW, "honest").manual_score == 2.5
    assert list((course / "gradebook.backups").glob("gradebook-*.db"))


def test_killed_run_resumes_without_loss_or_duplicates(tmp_path):
    course = make_course(tmp_path / "course", [HW])
    for i in range(4):
        submit(course, f"s{i}", HW, source_nb(HW))
    cmd = [sys.executable, "-m", "course_lib.cli", "autograde", HW, "--jobs", "2", "--course-dir", str(course)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and not list((course / "autograded").glob(f"*/{HW}/.course_graded.json")):
        time.sleep(0.5)
    import os
    import signal

    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list((course / "autograded").glob(f"*/{HW}/.course_graded.json")))
    assert 1 <= done_before < 4
    summary = autograde(course, HW, jobs=2)
    assert sorted(s["status"] for s in summary).count("skipped") == done_before
    assert all(s["score"] == 13.0 for s in summary if s["status"] == "graded")
    with sqlite3.connect(course / "gradebook.db") as con:
        rows = con.execute("SELECT s.student_id, COUNT(g.id) FROM submitted_assignment s "
                           "JOIN submitted_notebook n ON n.assignment_id = s.id JOIN grade g ON g.notebook_id = n.id "
                           "GROUP BY s.student_id").fetchall()
        scores = con.execute("SELECT s.student_id, SUM(g.auto_score) FROM submitted_assignment s "
                             "JOIN submitted_notebook n ON n.assignment_id = s.id JOIN grade g ON g.notebook_id = n.id "
                             "GROUP BY s.student_id").fetchall()
    assert dict(rows) == {f"s{i}": 5 for i in range(4)}  # 4 test cells + 1 written answer, no duplicates
    assert dict(scores) == {f"s{i}": 13.0 for i in range(4)}
