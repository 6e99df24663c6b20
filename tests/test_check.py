"""Layer 4: the hidden tests of every assignment are strong (mutation testing via `course check`)."""
from __future__ import annotations

import pytest

from coursedir import ASSIGNMENTS, REPO
from course_lib.grading.check import check_assignment, format_report
from course_lib.grading.mutation import mutants_of_cell

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("hw", ASSIGNMENTS)
def test_hidden_tests_catch_mutants(hw):
    report = check_assignment(REPO, hw, jobs=2)
    text = format_report(report)
    for nb in report["notebooks"]:
        assert nb["reference_passes"], text
        assert nb["mutants"] >= 10, text
    assert report["score"] >= report["min_score"] >= 0.95, text


def test_mutation_operators():
    src = '''def f(x, n):
    ### BEGIN SOLUTION
    total = 0.0
    for i in range(n):
        total += -x[i] * 2 + max(x[i], 1)
    return total if n > 0 else x[:n - 1]
    ### END SOLUTION'''
    ops = {m.operator for m in mutants_of_cell(src, "f")}
    for op in ("range+1", "range-1", "aug-Add->Sub", "drop-minus", "Mult->Div", "drop-right-operand",
               "swap-arguments", "constant+1", "comparison", "loop-runs-once", "index+1", "slice-upper+1"):
        assert op in ops, (op, sorted(ops))
    # only the solution block is mutated, and no two mutants are the same program
    mutants = mutants_of_cell(src, "f")
    assert len({m.source for m in mutants}) == len(mutants)
    assert all(m.line >= 3 for m in mutants)
