"""The `course` command fails clearly: one-line reason, what to try, non-zero exit, no traceback unless --debug.

One prepared course directory (module-scoped) holds four submissions of hw00: a correct one, a folder name
with a space, a corrupt notebook and one whose graded cells were deleted. It is autograded once, through real
nbgrader and the trusted grader, and every case below is a real `course` subprocess.
"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys

import nbformat
import pytest

from coursedir import REPO, make_course, source_nb, submit

HW = "hw00_preliminaries"


def _course(*args, cwd=REPO, timeout=600):
    return subprocess.run([sys.executable, "-m", "course_lib.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def _one_line_error(proc, *words):
    """stderr is `course: ...` lines naming every word, with no traceback."""
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert lines and lines[0].startswith("course"), proc.stderr
    for w in words:
        assert w in proc.stderr, (w, proc.stderr)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("cli-errors") / "course", [HW])
    shutil.copytree(REPO / "examples" / "submissions" / "alice" / HW, course / "submitted" / "alice" / HW)
    shutil.copytree(REPO / "examples" / "submissions" / "alice" / HW, course / "submitted" / "john smith" / HW)
    corrupt = course / "submitted" / "corrupt" / HW
    corrupt.mkdir(parents=True)
    (corrupt / f"{HW}.ipynb").write_text('{"cells": [ this is not json')
    nb = nbformat.read(REPO / "examples" / "submissions" / "alice" / HW / f"{HW}.ipynb", 4)
    nb.cells = [c for c in nb.cells if not c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    submit(course, "trimmed", HW, nb)
    proc = _course("autograde", HW, "--jobs", "2", "--course-dir", str(course))
    grades = _course("grades", "--course-dir", str(course))
    return course, proc, grades


@pytest.mark.slow
def test_autograde_grades_the_others_and_exits_nonzero(graded):
    _, proc, _ = graded
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    table = {l.split()[0]: l for l in proc.stdout.splitlines() if l.strip()}
    assert " graded " in table["alice"] and "13 / 16" in table["alice"]
    assert " failed " in table["corrupt"] and "corrupt notebook" in table["corrupt"]
    assert " graded " in table["trimmed"] and "cells missing" in table["trimmed"]


@pytest.mark.slow
def test_folder_with_a_space_is_skipped_naming_it_and_the_rule(graded):
    _, proc, _ = graded
    line = next(l for l in proc.stdout.splitlines() if l.startswith("john smith"))
    assert "skipped" in line and "'john smith'" in line and "no spaces" in line


@pytest.mark.slow
def test_progress_lines_and_summary_in_a_log(graded):
    _, proc, _ = graded  # stderr is a pipe here: one line per finished submission, then the summary
    done = [l for l in proc.stderr.splitlines() if l.startswith("[")]
    assert len(done) == 4 and done[-1].startswith("[4/4")
    assert f"autograde {HW}: 2 graded, 1 failed, 1 skipped in" in proc.stderr


@pytest.mark.slow
def test_status_column_in_grade_table_and_csv(graded):
    course, _, grades = graded
    assert grades.returncode == 0, grades.stderr
    rows = {r["student_id"]: r for r in csv.DictReader(open(course / "grades.csv"))}
    assert rows["alice"]["status"] == "graded" and float(rows["alice"]["score"]) == 13.0
    assert rows["corrupt"]["status"] == "failed: corrupt notebook"
    assert float(rows["corrupt"]["score"]) == 0.0 and float(rows["corrupt"]["max_score"]) == 16.0
    assert rows["trimmed"]["status"].startswith("graded; cells missing: test_logistic_grad")
    assert "written_step_size" in rows["trimmed"]["status"]
    assert "john smith" not in rows
    table = {l.split()[0]: l for l in grades.stdout.splitlines() if l.strip()}
    assert "status" in grades.stdout.splitlines()[0]
    assert table["corrupt"].endswith(f"{HW}: failed: corrupt notebook") and table["alice"].endswith("ok")


@pytest.mark.slow
def test_trimmed_submission_scores_like_its_answers(graded):
    course, _, _ = graded  # its answers are alice's: the source's tests grade them the same (13 of 16)
    rows = {r["student_id"]: r for r in csv.DictReader(open(course / "grades.csv"))}
    assert float(rows["trimmed"]["score"]) == 13.0


@pytest.mark.slow
@pytest.mark.parametrize("command", ["autograde", "feedback", "check"])
def test_unknown_assignment(graded, command):
    course, _, _ = graded
    proc = _course(command, "hw99_nope", "--course-dir", str(course))
    assert proc.returncode == 2
    _one_line_error(proc, "hw99_nope", HW)


@pytest.mark.slow
def test_feedback_for_unknown_student(graded):
    course, _, _ = graded
    proc = _course("feedback", HW, "--student", "nobody", "--course-dir", str(course))
    assert proc.returncode == 2
    _one_line_error(proc, "nobody", "alice", "course autograde")


@pytest.mark.slow
def test_autograde_unknown_student(graded):
    course, _, _ = graded
    proc = _course("autograde", HW, "--student", "nobody", "--course-dir", str(course))
    assert proc.returncode == 2
    _one_line_error(proc, "nobody", "submitted/nobody")


def test_feedback_before_autograde(tmp_path):
    course = make_course(tmp_path / "c", [HW])
    proc = _course("feedback", HW, "--course-dir", str(course))
    assert proc.returncode == 2
    _one_line_error(proc, "course autograde")


@pytest.mark.parametrize("command", ["autograde", "check", "demo"])
@pytest.mark.parametrize("jobs", ["0", "-3", "two"])
def test_jobs_must_be_positive(command, jobs):
    args = [command, HW] if command != "demo" else [command]
    proc = _course(*args, "--jobs", jobs)
    assert proc.returncode == 2 and "argument --jobs" in proc.stderr and jobs in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("where", ["empty", "course"])
def test_demo_outside_the_repository(tmp_path, where):
    cwd = make_course(tmp_path / "c", [HW]) if where == "course" else tmp_path
    proc = _course("demo", "--dir", str(tmp_path / "demo"), cwd=cwd)
    assert proc.returncode == 2
    _one_line_error(proc, "repository", "--course-dir")
    assert "Done" not in proc.stdout and not (tmp_path / "demo").exists()


@pytest.mark.slow
def test_debug_shows_the_traceback(graded):
    course, _, _ = graded
    quiet = _course("check", "hw99_nope", "--course-dir", str(course))
    loud = _course("--debug", "check", "hw99_nope", "--course-dir", str(course))
    also = _course("check", "hw99_nope", "--course-dir", str(course), "--debug")
    assert "Traceback" not in quiet.stderr
    assert loud.returncode != 0 and "Traceback" in loud.stderr and "CourseError" in loud.stderr
    assert also.returncode != 0 and "Traceback" in also.stderr


def test_unexpected_error_is_one_line(tmp_path):
    course = make_course(tmp_path / "c", [HW])
    (course / "grading.toml").write_text("this is [ not toml")
    proc = _course("autograde", HW, "--course-dir", str(course))
    assert proc.returncode in (1, 2)
    _one_line_error(proc)
    assert len([l for l in proc.stderr.splitlines() if l.strip()]) <= 2, proc.stderr


def test_reference_notebook_is_not_flagged(tmp_path):
    from course_lib.grading.submissions import missing_cells, notebook_problem

    folder = submit(make_course(tmp_path / "c", [HW]), "ref", HW, source_nb(HW)).parent
    sources = {HW: source_nb(HW)}
    assert notebook_problem(folder, sources) is None and missing_cells(folder, sources) == []


# -- quiet output: nbgrader's SQLAlchemy warnings ------------------------------------------------------------

@pytest.mark.slow
def test_autograde_of_new_students_prints_no_sawarning(graded):
    _, proc, _ = graded  # four students new to the gradebook, graded by a real `course autograde`
    assert "SAWarning" not in proc.stdout + proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr


_NEW_SUBMISSION = """
import sys, warnings
from nbgrader.api import Gradebook
warnings.simplefilter("always")
with Gradebook("sqlite:///" + sys.argv[1], "course") as gb:
    gb.add_assignment("hw")
    gb.add_notebook("nb", "hw")
    gb.add_grade_cell("cell", "nb", "hw", max_score=1, cell_type="code")
    gb.update_or_create_student("s")
    if sys.argv[2] == "no_autoflush":
        with gb.db.no_autoflush:
            gb.update_or_create_submission("hw", "s")
    else:
        gb.update_or_create_submission("hw", "s")
    print(gb.find_submission("hw", "s").max_score)
"""


@pytest.mark.parametrize("mode", ["plain", "no_autoflush"])
def test_sawarning_cause_is_autoflush_in_nbgrader_add_submission(tmp_path, mode):
    """The cause, shown on nbgrader's own API: autoflush while it builds a new submission (what _merge avoids)."""
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run([sys.executable, "-c", _NEW_SUBMISSION, str(tmp_path / f"{mode}.db"), mode],
                          capture_output=True, text=True, timeout=120, env=env)  # nbgrader runs alembic
    assert proc.returncode == 0 and proc.stdout.split() == ["1.0"], proc.stderr
    assert ("SAWarning" in proc.stderr) == (mode == "plain"), proc.stderr


# -- feedback renders offline ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def feedback_html(graded):
    course, _, _ = graded
    proc = _course("feedback", HW, "--course-dir", str(course))
    assert proc.returncode == 0, proc.stderr
    return course / "feedback" / "alice" / HW / f"{HW}.html"


@pytest.mark.slow
def test_feedback_references_no_remote_url(feedback_html):
    import re

    from course_lib.grading.offline_math import remote_references

    html = feedback_html.read_text()
    tags = re.findall(r"<(?:script|link)\b[^>]*>", html, re.I)
    assert tags and not [t for t in tags if re.search(r"(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", t, re.I)]
    assert remote_references(html) == []
    assert "cdnjs" not in html and "window.MathJax" in html and "$\\nabla f(w)$" in html


@pytest.mark.slow
def test_feedback_maths_renders_with_the_network_blocked(feedback_html):
    """A real browser (system chromium through playwright), every request leaving the file refused."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    playwright = pytest.importorskip("playwright.sync_api")
    if chromium is None:
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    blocked = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                   else (blocked.append(route.request.url), route.abort()))
        page.goto(feedback_html.as_uri())
        page.wait_for_function("document.querySelectorAll('mjx-container svg').length > 10", timeout=60000)
        n = page.evaluate("document.querySelectorAll('mjx-container').length")
        errors = page.evaluate("document.querySelectorAll('mjx-merror').length")
        browser.close()
    assert n > 10 and errors == 0 and blocked == []
