"""Layer 2 and notebook hygiene: every lecture executes top to bottom; notebooks are committed clean.

Lecture execution time is measured and written to the test report (the budget is checked by
benchmarks, not asserted here), but a lecture that fails or hangs past the nbclient timeout fails.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from coursedir import ASSIGNMENTS, REPO
from course_lib.grading import notebook as nbg
from course_lib.grading.notebook import is_answer_cell, is_test_cell, meta

LECTURES = sorted(p.name for p in (REPO / "lectures").glob("*.ipynb"))
ALL_NOTEBOOKS = sorted(str(p.relative_to(REPO)) for d in ("lectures", "solutions", "assignments", "examples",
                                                          "projects")
                       for p in (REPO / d).rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
# Phase II kits: projects/<topic>/<topic>.ipynb, run from the repository root (as `make lab` opens it)
KIT_NOTEBOOKS = sorted(str(p.relative_to(REPO)) for p in (REPO / "projects").glob("*/*.ipynb"))


def test_one_lecture_per_chapter():
    chapters = {name[:2] for name in LECTURES}
    assert chapters >= {"00"}, LECTURES


@pytest.mark.slow
@pytest.mark.parametrize("name", LECTURES)
def test_lecture_executes(name, tmp_path, record_property):
    nb = nbformat.read(REPO / "lectures" / name, 4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "lectures")}}).execute()
    elapsed = time.perf_counter() - start
    record_property("execution_seconds", round(elapsed, 1))
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors


@pytest.mark.slow
@pytest.mark.parametrize("path", KIT_NOTEBOOKS)
def test_kit_notebook_executes(path, record_property):
    nb = nbformat.read(REPO / path, 4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    record_property("execution_seconds", round(time.perf_counter() - start, 1))
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors


@pytest.mark.parametrize("path", ALL_NOTEBOOKS)
def test_committed_without_outputs(path):
    nb = json.loads((REPO / path).read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path}: clear the outputs of cells {dirty} before committing"


@pytest.mark.parametrize("hw", ASSIGNMENTS)
def test_source_notebook_follows_the_authoring_rules(hw):
    """docs/AUTHORING.md: unique grade_ids, %%ipytest test cells with tests, a written answer with points."""
    for path in (REPO / "solutions" / hw).glob("*.ipynb"):
        nb = nbformat.read(path, 4)
        ids = [meta(c)["grade_id"] for c in nb.cells if meta(c).get("grade_id")]
        assert len(ids) == len(set(ids)), f"duplicate grade_ids in {path.name}"
        tests = [c for c in nb.cells if is_test_cell(c)]
        assert tests, "no autograded test cells"
        for c in tests:
            assert c.source.startswith("%%ipytest"), f"{meta(c)['grade_id']} must start with %%ipytest"
            assert float(meta(c).get("points", 0)) > 0
            assert meta(c).get("locked"), f"{meta(c)['grade_id']} must be locked"
        assert all(cell.tests for cell in nbg.test_cells(nb)), "a test cell defines no test_* function"
        assert any("### BEGIN HIDDEN TESTS" in c.source for c in tests), "no hidden tests"
        assert [c for c in nb.cells if is_answer_cell(c) and "### BEGIN SOLUTION" in c.source]
        written = [c for c in nb.cells if c.cell_type == "markdown" and meta(c).get("grade") and meta(c).get("solution")]
        assert written and all(float(meta(c)["points"]) > 0 for c in written), "a manually graded written answer"
        for c in nb.cells:
            if meta(c):
                assert meta(c).get("schema_version") == 3
