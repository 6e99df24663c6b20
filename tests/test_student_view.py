"""What a student sees when a visible test fails: the teaching message of the checks, not pytest/ipytest machinery.

A real kernel (nbclient) runs the setup cell of the assignments, a wrong answer and a %%ipytest test cell.
"""
from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from coursedir import ASSIGNMENTS, source_nb

pytestmark = pytest.mark.slow

TESTS = '''%%ipytest
import numpy as np
from course_lib.grading import check_close, check_shape


def test_sign():
    check_close(f(np.array([1.0, 2.0])), [1.0, 2.0], "f(x)", inputs="x = [1, 2]")


def test_shape():
    check_shape(f(np.ones(3)), (3, 1), "f(ones(3))")


def test_passes():
    assert f(np.zeros(2)).shape == (2,)
'''


@pytest.fixture(scope="module")
def failing_cell():
    nb = nbformat.v4.new_notebook()
    setup = next(c for c in source_nb(ASSIGNMENTS[0]).cells if c.metadata.get("nbgrader", {}).get("grade_id") == "setup")
    nb.cells = [nbformat.v4.new_code_cell(setup.source),
                nbformat.v4.new_code_cell("import numpy as np\n\ndef f(x):\n    return -x"),
                nbformat.v4.new_code_cell(TESTS)]
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    return nb.cells[2].outputs


def test_the_cell_fails_for_nbgrader(failing_cell):
    errors = [o for o in failing_cell if o.output_type == "error"]
    assert len(errors) == 1 and errors[0].ename == "Error"  # ipytest's: nbgrader scores the cell 0


def test_the_student_reads_the_teaching_messages(failing_cell):
    text = "".join(o.text for o in failing_cell if o.output_type == "stream")
    assert "f(x) for x = [1, 2] is wrong: largest difference 4 at index (1,): got -2, expected 2" in text
    assert "Hint: your result is the negative of the expected one; check a sign." in text
    assert "f(ones(3)) has shape (3,), expected (3, 1)." in text
    assert "2 failed, 1 passed" in text


def test_no_machinery(failing_cell):
    text = "".join(o.text for o in failing_cell if o.output_type == "stream")
    error = next(o for o in failing_cell if o.output_type == "error")
    assert error.traceback == ["Visible tests failed: read the messages above, fix your code and run this cell again."]
    assert "checks.py" not in text and "def check_close" not in text and "_impl.py" not in text
    assert "short test summary" not in text
    assert len(text.splitlines()) <= 16, text
