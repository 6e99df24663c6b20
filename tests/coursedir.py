"""Helpers for tests that build a throw-away course directory and grade submissions through real nbgrader."""
from __future__ import annotations

import copy
import shutil
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir() and list(p.glob("*.ipynb")))


def make_course(root: Path, assignments=None, grading_overrides: str = "") -> Path:
    """A course directory with the repo's nbgrader config, grading settings and source assignments."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "nbgrader_config.py", root)
    (root / "grading.toml").write_text((REPO / "grading.toml").read_text() + "\n" + grading_overrides)
    for hw in assignments or ASSIGNMENTS:
        shutil.copytree(REPO / "solutions" / hw, root / "solutions" / hw)
    return root


def source_nb(hw: str):
    return nbformat.read(next((REPO / "solutions" / hw).glob("*.ipynb")), 4)


def release_nb(hw: str):
    return nbformat.read(next((REPO / "assignments" / hw).glob("*.ipynb")), 4)


def submit(course: Path, student: str, hw: str, nb) -> Path:
    """Write a submission notebook to submitted/<student>/<hw>/."""
    name = next((REPO / "solutions" / hw).glob("*.ipynb")).name
    folder = course / "submitted" / student / hw
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(folder / name))
    return folder / name


def with_answers(nb, answers: dict[str, str]):
    """A copy of a notebook with the given cells' sources (by nbgrader grade_id) replaced."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    return nb


def autograded_points(nb) -> float:
    """Total points of a notebook's autograded test cells."""
    return sum(float(c.metadata["nbgrader"].get("points", 0)) for c in nb.cells
               if c.get("metadata", {}).get("nbgrader", {}).get("grade")
               and not c.metadata["nbgrader"].get("solution"))
