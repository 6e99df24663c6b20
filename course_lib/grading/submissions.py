"""What a submission folder may look like, and the status each graded submission keeps.

Before grading, every ``submitted/<student>/<HW>/`` is inspected:

- the folder name must be a valid student id (:data:`STUDENT_ID_RULE`); a folder such as
  ``submitted/john smith/`` is *skipped* with a message naming it and the rule, and the others are graded;
- each notebook of the source assignment must be a readable notebook; a corrupt or missing file makes
  the submission *failed* (it is recorded with 0 points and the status ``failed: corrupt notebook``);
- graded cells (tests, written answers) that the student deleted are listed: the submission is still
  graded (tests always come from the source notebook) and flagged ``cells missing: ...``.

The status is written into the done-marker ``autograded/<student>/<HW>/.course_graded.json`` and read
back by :func:`add_status_column` into the grade table and ``grades.csv``.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from ..validation import CourseError
from .notebook import meta, read

__all__ = ["STUDENT_ID_RULE", "require_assignment", "require_students", "student_id_problem", "notebook_problem",
           "missing_cells", "read_status", "status_of", "add_status_column", "status_column"]

STUDENT_ID_RULE = "letters, digits and _ . @ + - only, no spaces"
_ID = re.compile(r"^[A-Za-z0-9_.@+-]+$")
MARKER = ".course_graded.json"


def require_assignment(course: Path, assignment: str) -> Path:
    """``solutions/<assignment>/`` of the course, or a CourseError naming the known assignments."""
    folder = Path(course) / "solutions" / str(assignment)
    if folder.is_dir() and list(folder.glob("*.ipynb")):
        return folder
    root = Path(course) / "solutions"
    known = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    raise CourseError(f"no assignment {assignment!r} in {root}; known: {', '.join(known) or 'none'}. "
                      "Check the name, or pass the right --course-dir.")


def require_students(students: list[str], found: list[str], where: str, hint: str = "") -> list[str]:
    """``students`` if every one has a folder (``found``), else a CourseError naming the unknown ones."""
    unknown = [s for s in students if s not in found]
    if unknown:
        shown = ", ".join(found[:20]) + (" ..." if len(found) > 20 else "")
        folders = ", ".join(where.replace("<student>", s) for s in unknown)
        raise CourseError(f"--student {', '.join(unknown)}: there is no {folders} (students found: {shown or 'none'}). "
                          + (hint or "Check the name."))
    return students


def student_id_problem(name: str) -> str | None:
    """Why ``name`` cannot be a student id (None if it can)."""
    if _ID.match(name):
        return None
    return f"folder name {name!r} is not a valid student id ({STUDENT_ID_RULE}); rename the folder to grade it"


def notebook_problem(sub_dir: Path, sources: dict) -> str | None:
    """"corrupt notebook (...)" or "notebook missing (...)" if a notebook of the assignment cannot be read."""
    for nb_name in sources:
        path = Path(sub_dir) / f"{nb_name}.ipynb"
        if not path.exists():
            return f"notebook missing ({path.name} is not in the submission)"
        try:
            read(path)
        except Exception as err:  # noqa: BLE001 - any unreadable file (bad JSON, bad schema, binary)
            reason = str(err).splitlines()[0].split(": '")[0][:120] if str(err) else type(err).__name__
            return f"corrupt notebook ({path.name}: {reason})"
    return None


def missing_cells(sub_dir: Path, sources: dict) -> list[str]:
    """grade_ids of graded cells (tests, written answers) of the source that the submission lacks."""
    out = []
    for nb_name, src in sources.items():
        try:
            have = {meta(c).get("grade_id") for c in read(Path(sub_dir) / f"{nb_name}.ipynb").cells}
        except Exception:  # noqa: BLE001 - reported by notebook_problem
            continue
        out += [meta(c)["grade_id"] for c in src.cells if meta(c).get("grade") and meta(c)["grade_id"] not in have]
    return out


def read_status(out_dir: Path) -> dict:
    """The done-marker of ``autograded/<student>/<HW>/`` ({} if none or unreadable)."""
    try:
        return json.loads((Path(out_dir) / MARKER).read_text())
    except (OSError, ValueError):
        return {}


def status_of(course: Path, student: str, assignment: str) -> str:
    """The status shown in the grade table: "graded", "failed: ...", "graded; cells missing: ...", ..."""
    info = read_status(Path(course) / "autograded" / student / assignment)
    if info:
        return info.get("status", "graded")
    return "not autograded" if (Path(course) / "submitted" / student / assignment).is_dir() else "not submitted"


def add_status_column(course: Path, rows: list[dict], csv_path: Path | None = None) -> list[dict]:
    """Add a ``status`` field to ``nbgrader export`` rows (and rewrite the CSV at ``csv_path`` with it)."""
    for r in rows:
        r["status"] = status_of(course, r["student_id"], r["assignment"])
    if csv_path is not None and rows:
        with open(csv_path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
            writer.writeheader()
            writer.writerows(rows)
    return rows


def status_column(rows: list[dict]) -> str:
    """One student's status for the grade table: "ok", or each assignment whose status is not plain "graded"."""
    notes, absent = [], []
    for r in sorted(rows, key=lambda r: r["assignment"]):
        status = r.get("status", "graded")
        if status == "not submitted":
            absent.append(r["assignment"])
        elif status != "graded":
            notes.append(f"{r['assignment']}: {status}")
    if absent:
        notes.append("not submitted: " + ", ".join(absent))
    return "; ".join(notes) or "ok"
