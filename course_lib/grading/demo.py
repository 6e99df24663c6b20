"""``course demo``: the whole TA pipeline on the example submissions, in a fresh course working directory.

Creates the directory (``./demo_course`` by default, replaced if it exists) with the course's
nbgrader configuration, grading settings and reference solutions; releases every assignment
with nbgrader; copies ``examples/submissions/<student>/<HW>/`` to ``submitted/``; autogrades each
assignment (trusted re-scoring, in parallel); generates feedback; exports the grades to CSV and
prints the grade table and where everything is.
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from ..progress import Progress
from ..validation import CourseError
from .pipeline import autograde, course_paths, export_grades, feedback, format_grade_table, release

__all__ = ["run_demo", "prepare_course"]


def _is_repo(folder: Path) -> bool:
    return ((folder / "nbgrader_config.py").exists() and (folder / "solutions").is_dir()
            and any((folder / "examples" / "submissions").glob("*/*/*.ipynb")))


def _find_repo(repo: str | None) -> Path:
    if repo:
        path = Path(repo).resolve()
        if not _is_repo(path):
            raise CourseError(f"--course-dir {path} is not the course repository (it needs nbgrader_config.py, "
                              "solutions/ and examples/submissions/<student>/<HW>/); pass a clone of the repository.")
        return path
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if _is_repo(folder):
            return folder
    raise CourseError(f"course demo needs the course repository (nbgrader_config.py, solutions/ and "
                      f"examples/submissions/), and {here} is not inside one: run it in a clone of the repository "
                      f"or pass --course-dir REPO.")


def prepare_course(repo: Path, target: Path) -> list[str]:
    """Create a fresh course directory at ``target`` from the repository; return the assignment names."""
    if target.exists():
        if not (target / ".course_demo").exists():
            raise SystemExit(f"course demo: {target} exists and was not made by `course demo`; choose another --dir.")
        shutil.rmtree(target)
    target.mkdir(parents=True)
    (target / ".course_demo").write_text("made by `course demo`; safe to delete\n")
    shutil.copy(repo / "nbgrader_config.py", target)
    if (repo / "grading.toml").exists():
        shutil.copy(repo / "grading.toml", target)
    shutil.copytree(repo / "solutions", target / "solutions", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    hws = sorted(p.name for p in (target / "solutions").iterdir() if p.is_dir())
    examples = repo / "examples" / "submissions"
    if examples.is_dir():
        for hw_dir in sorted(examples.glob("*/*")):
            if hw_dir.is_dir() and hw_dir.name in hws:
                shutil.copytree(hw_dir, target / "submitted" / hw_dir.parent.name / hw_dir.name)
    return hws


def run_demo(directory: str | None = None, repo: str | None = None, jobs: int = 2, db_url: str | None = None) -> int:
    """Run the demo; returns a process exit code (0 when every submission was graded)."""
    repo_path = _find_repo(repo)
    target = Path(directory).resolve() if directory else Path.cwd().resolve() / "demo_course"
    start = time.time()
    print(f"course demo: building a fresh course in {target}")
    hws = prepare_course(repo_path, target)
    ok, graded = True, 0
    for hw in hws:
        print(f"\n== {hw} ==", flush=True)
        release(target, hw, db_url=db_url)
        print(f"released -> {target / 'assignments' / hw}", flush=True)
        n = sum(1 for p in (target / "submitted").glob(f"*/{hw}") if p.is_dir())
        if not n:
            print("no example submissions", flush=True)
            continue
        with Progress(n, f"autograde {hw}", unit="submission", stream=sys.stdout) as bar:
            summary = autograde(target, hw, jobs=jobs, db_url=db_url,
                                progress=lambda s: bar.done(s["student"], s["status"],
                                                            f"{s['score']:g} / {s['max_score']:g} {s['message']}"))
        ok &= all(s["status"] in ("graded", "skipped") for s in summary)
        graded += sum(s["status"] == "graded" for s in summary)
        if list((target / "autograded").glob(f"*/{hw}/*.ipynb")):  # none if every submission failed
            feedback(target, hw, db_url=db_url)
            print(f"feedback -> {target / 'feedback'}/*/{hw}/", flush=True)
    if not graded:
        raise CourseError(f"course demo graded nothing: no submission in {target / 'submitted'} could be graded.")
    rows, csv_path = export_grades(target, db_url=db_url)
    print("\nGrade table (autograded points; written answers await manual grading in formgrader):\n")
    print(format_grade_table(rows))
    paths = course_paths(target)
    print(f"\nDone in {time.time() - start:.0f} s. Where everything is:")
    for key in ("release", "submitted", "autograded", "feedback", "gradebook", "grades", "backups"):
        print(f"  {key:<11} {paths[key]}")
    print("  formgrader: cd", target, "&& jupyter lab   (Nbgrader > Formgrader, to grade the written answers)")
    return 0 if ok else 1
