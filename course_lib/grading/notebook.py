"""Reading nbgrader notebooks: which cells are answers, tests and instructor code.

The trusted grader builds two things from a submission: the *student program* (the code the
student's kernel would run, minus the test cells, with locked instructor cells restored from
the source notebook) and the *test cells* (always taken from the instructor's source notebook,
hidden tests included, never from the submission).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field

import nbformat

__all__ = ["meta", "is_test_cell", "is_answer_cell", "is_manual_cell", "TestCell", "test_cells",
           "answer_names", "student_program", "python_source", "read"]

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"


def read(path) -> nbformat.NotebookNode:
    """Read a notebook (nbformat v4)."""
    return nbformat.read(str(path), as_version=4)


def meta(cell) -> dict:
    """The cell's nbgrader metadata ({} if none)."""
    return dict(cell.get("metadata", {}).get("nbgrader", {}) or {})


def is_test_cell(cell) -> bool:
    """An autograded test cell: code, graded, not a solution."""
    m = meta(cell)
    return cell.get("cell_type") == "code" and bool(m.get("grade")) and not m.get("solution")


def is_answer_cell(cell) -> bool:
    """A cell the student writes code in (autograded answer)."""
    m = meta(cell)
    return cell.get("cell_type") == "code" and bool(m.get("solution"))


def is_manual_cell(cell) -> bool:
    """A manually graded answer (written answer or manually graded code)."""
    m = meta(cell)
    return bool(m.get("grade")) and bool(m.get("solution"))


def python_source(src: str) -> str:
    """Cell source with IPython-only lines (magics, shell escapes) commented out, for parsing."""
    out = []
    for line in src.splitlines():
        stripped = line.lstrip()
        out.append(("# " + line) if stripped.startswith(("%", "!")) else line)
    return "\n".join(out)


@dataclass
class TestCell:
    """An autograded test cell of the source notebook."""

    grade_id: str
    points: float
    code: str
    visible_tests: list[str] = field(default_factory=list)
    hidden_tests: list[str] = field(default_factory=list)

    @property
    def tests(self) -> list[str]:
        return self.visible_tests + self.hidden_tests


def _test_names(code: str) -> list[str]:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    return [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.name.startswith("test")]


def test_cells(source_nb) -> list[TestCell]:
    """The autograded test cells of a source notebook, with their visible and hidden test names."""
    out = []
    for cell in source_nb.cells:
        if not is_test_cell(cell):
            continue
        m = meta(cell)
        src = cell.source
        lines = src.splitlines()
        if lines and lines[0].strip().startswith("%%ipytest"):
            lines = lines[1:]
        code = "\n".join(lines)
        visible_part, _, rest = code.partition(HIDDEN_BEGIN)
        hidden_part = rest.partition(HIDDEN_END)[0]
        hidden = _test_names(python_source(hidden_part)) if rest else []
        all_names = _test_names(python_source(code))
        visible = [n for n in all_names if n not in hidden]
        out.append(TestCell(m["grade_id"], float(m.get("points", 0) or 0), python_source(code), visible, hidden))
    return out


def answer_names(source_nb) -> list[str]:
    """Top-level names (functions, classes, variables) defined by the answer cells of the source notebook."""
    names: list[str] = []
    for cell in source_nb.cells:
        if not is_answer_cell(cell):
            continue
        try:
            tree = ast.parse(python_source(cell.source))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.append(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    names.extend(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
    seen = set()
    return [n for n in names if not (n in seen or seen.add(n))]


def student_program(source_nb, submitted_nb) -> list[str]:
    """The code cells to run for a submission, in the submission's order.

    Answer cells and cells the student added come from the submission; cells whose grade_id is a
    locked instructor cell of the source come from the source (undoing any edit); test cells are
    left out (the trusted grader runs them itself). A source instructor cell missing from the
    submission is put back.
    """
    source_by_id = {meta(c).get("grade_id"): c for c in source_nb.cells if meta(c).get("grade_id")}
    cells, used = [], set()
    for cell in submitted_nb.cells:
        if cell.get("cell_type") != "code":
            continue
        gid = meta(cell).get("grade_id")
        src_cell = source_by_id.get(gid)
        if src_cell is not None:
            used.add(gid)
            if is_test_cell(src_cell) or src_cell.get("cell_type") != "code":
                continue
            if not is_answer_cell(src_cell):
                cells.append(src_cell.source)  # locked instructor code: the source version
                continue
        elif is_test_cell(cell):
            continue  # a test cell unknown to the source: never run student-made "tests"
        cells.append(cell.source)
    missing = [c.source for c in source_nb.cells if c.get("cell_type") == "code" and not is_test_cell(c)
               and not is_answer_cell(c) and meta(c).get("grade_id") and meta(c)["grade_id"] not in used]
    return missing + cells

