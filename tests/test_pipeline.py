"""Layer 3: every assignment through real nbgrader and the trusted grader.

For each assignment in solutions/: the committed release equals a fresh `nbgrader generate_assignment`;
the reference solution gets full marks on every autograded cell and the untouched release gets 0 --
from the trusted grader *and* from nbgrader's own kernel run (they must agree on honest work).
"""
from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest

from coursedir import ASSIGNMENTS, REPO, autograded_points, make_course, release_nb, source_nb, submit
from course_lib.grading.pipeline import autograde, release

pytestmark = pytest.mark.slow


def _normalise(nb):
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    return [(c.cell_type, c.source, dict(c.metadata)) for c in nb.cells], dict(nb.metadata)


@pytest.mark.parametrize("hw", ASSIGNMENTS)
def test_committed_release_is_what_nbgrader_generates(tmp_path, hw):
    course = make_course(tmp_path / "course", [hw])
    release(course, hw)
    fresh = sorted((course / "assignments" / hw).glob("*.ipynb"))
    committed = sorted((REPO / "assignments" / hw).glob("*.ipynb"))
    assert [p.name for p in fresh] == [p.name for p in committed], "run `course release` and commit assignments/"
    for f, c in zip(fresh, committed):
        assert _normalise(nbformat.read(f, 4)) == _normalise(nbformat.read(c, 4)), (
            f"assignments/{hw}/{c.name} differs from `nbgrader generate_assignment` output: regenerate it with "
            f"`course release {hw}`, never edit assignments/ by hand")


def _code_without_markers(nb) -> dict[str, str]:
    """The answer cells' code as a student writes it: nbgrader's BEGIN/END SOLUTION lines dropped."""
    return {c.metadata["nbgrader"]["grade_id"]: "\n".join(l for l in c.source.splitlines()
                                                         if l.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))
            for c in nb.cells if c.cell_type == "code" and c.get("metadata", {}).get("nbgrader", {}).get("solution")}


def _example(student: str, hw: str):
    return nbformat.read(next((REPO / "examples" / "submissions" / student / hw).glob("*.ipynb")), 4)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One `course demo` run -- every assignment released, its example submissions graded, feedback, grades.csv --
    shared by the tests below (the most expensive fixture of the suite). Where alice's example is not the reference
    solution itself (hw00 loops, hw06 another correct form), the reference is then graded in the same course as
    the student "reference"."""
    target = tmp_path_factory.mktemp("demo") / "demo"
    proc = subprocess.run([sys.executable, "-m", "course_lib.cli", "demo", "--dir", str(target),
                           "--course-dir", str(REPO)], capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    reference = {}
    for hw in ASSIGNMENTS:
        if _code_without_markers(_example("alice", hw)) == _code_without_markers(source_nb(hw)):
            reference[hw] = "alice"
        else:
            submit(target, "reference", hw, source_nb(hw))
            assert [s["status"] for s in autograde(target, hw, students=["reference"], jobs=1)] == ["graded"]
            reference[hw] = "reference"
    return target, proc, reference


@pytest.mark.xdist_group("demo")
@pytest.mark.parametrize("hw", ASSIGNMENTS)
def test_reference_full_marks_and_release_zero(demo, hw):
    """The reference solution (alice's example, or the student "reference") earns full marks, carol's release 0."""
    course, _, reference = demo
    assert _code_without_markers(_example("carol", hw)) == _code_without_markers(release_nb(hw))  # untouched stubs
    full = autograded_points(source_nb(hw))
    assert full > 0
    for student, expect_full in ((reference[hw], True), ("carol", False)):
        out = course / "autograded" / student / hw
        done = json.loads((out / ".course_graded.json").read_text())
        assert done["status"] == "graded", done
        assert done["score"] == (pytest.approx(full) if expect_full else 0), (student, done)
        results = json.loads((out / "trusted_results.json").read_text())
        for nb_name, res in results.items():
            for cell in res["cells"]:
                assert cell["passed"] is expect_full, (student, cell)
                # nbgrader's own kernel run agrees with the trusted grader on honest submissions
                kernel = res["nbgrader_kernel_scores"][cell["grade_id"]]
                assert kernel == pytest.approx(cell["points"]), (student, cell["grade_id"], kernel, cell["points"])


@pytest.mark.xdist_group("demo")
def test_course_demo_grade_table(demo):
    """`course demo` grades the example submissions of hw00 to exactly the scores they deserve."""
    target, proc, _ = demo
    import csv

    rows = {(r["student_id"], r["assignment"]): r for r in csv.DictReader(open(target / "grades.csv"))}
    hw = "hw00_preliminaries"
    # alice: correct (loops instead of vectorised code); bob: sign error + off-by-one (4 + 4 points lost);
    # carol: untouched release; mallory: wrong gradient that monkeypatches numpy and the checks (earns only fd_gradient)
    expected = {"alice": 13.0, "bob": 5.0, "carol": 0.0, "mallory": 3.0}
    for student, score in expected.items():
        assert float(rows[(student, hw)]["score"]) == score, (student, rows[(student, hw)])
        assert float(rows[(student, hw)]["max_score"]) == 16.0
    # chapters 1-5: alice submits the reference answers (full autograded points), carol the untouched release
    for other in ASSIGNMENTS:
        if other == hw or not (REPO / "examples" / "submissions" / "alice" / other).is_dir():
            continue
        assert float(rows[("alice", other)]["score"]) == autograded_points(source_nb(other)), other
        assert float(rows[("carol", other)]["score"]) == 0.0, other
    assert "Grade table" in proc.stdout and "grades" in proc.stdout
    for student in expected:
        assert (target / "feedback" / student / hw / f"{hw}.html").exists()
