"""Trusted scoring: run a notebook's test cells with pytest in a process that never runs student code.

For one submission, :func:`grade_notebook` starts a sandboxed :class:`StudentProcess` with the
student program, then runs every autograded test cell of the *source* notebook (hidden tests
included) with pytest, here, in the trusted process. The names that the answer cells define
(the student's functions and values) are injected into each test module as proxies that call
the sandbox and return plain, decoded data. A cell earns its points exactly when all of its
tests pass -- nbgrader's rule -- and every test's name, outcome and failure message are kept
for the feedback.

Run as ``python -m course_lib.grading.trusted JOB.json OUT.json`` by ``course autograde`` and
``course check``; a job lists submissions and the settings of the assignment.
"""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .notebook import answer_names, read, student_program, test_cells
from .sandbox import Limits
from .student import StudentCrash, StudentProcess

__all__ = ["TestResult", "CellResult", "grade_notebook", "student_name", "main"]

_SESSION: StudentProcess | None = None


@dataclass
class TestResult:
    name: str
    hidden: bool
    passed: bool
    message: str = ""


@dataclass
class CellResult:
    grade_id: str
    points: float
    max_points: float
    passed: bool
    tests: list[TestResult] = field(default_factory=list)
    error: str = ""


class _StudentFunction:
    """A callable standing for a student's function inside a trusted test module."""

    def __init__(self, name: str):
        self.__name__ = self.name = name

    def __call__(self, *args, **kwargs):
        return _SESSION.call(self.name, args, kwargs)

    def __repr__(self) -> str:
        return f"<student function {self.name}>"


def _missing(name: str, why: str):
    def missing(*args, **kwargs):
        raise AssertionError(why)

    missing.__name__ = name
    return missing


def student_name(name: str):
    """The object a trusted test module sees for the student's ``name`` (a proxy or a plain value)."""
    try:
        info = _SESSION.get(name)
    except StudentCrash as err:
        return _missing(name, str(err))
    if info["kind"] == "missing":
        return _missing(name, f"Your notebook does not define `{name}`: keep the name given in the task "
                              "and run the cell that defines it.")
    if info["kind"] == "callable":
        return _StudentFunction(name)
    return info["value"]


class _Collector:
    def __init__(self):
        self.reports: dict[tuple[str, str], tuple[bool, str]] = {}  # (module file, test) -> (passed, message)
        self.errors: dict[str, list[str]] = {}  # module file -> collection errors

    @staticmethod
    def _message(report) -> str:
        crash = getattr(report.longrepr, "reprcrash", None)
        if crash is not None and crash.message:
            return crash.message[:3000]
        return str(report.longrepr)[-3000:]

    @staticmethod
    def _key(nodeid: str) -> tuple[str, str]:
        parts = nodeid.split("::")
        return Path(parts[0]).name, parts[-1]

    def pytest_runtest_logreport(self, report):
        name = self._key(report.nodeid)
        if report.failed:
            self.reports[name] = (False, self._message(report))
        elif report.when == "call" and name not in self.reports:
            self.reports[name] = (True, "")
        elif report.skipped and name not in self.reports:
            self.reports[name] = (False, "skipped: a skipped test earns no points")

    def pytest_collectreport(self, report):
        if report.failed:
            self.errors.setdefault(Path(report.nodeid.split("::")[0]).name, []).append(self._message(report))


def _run_cells(cells, names: list[str], workdir: Path, stop_early: bool = False) -> list[CellResult]:
    """Run every test cell as its own test module, all in ONE pytest session (one start-up per submission).

    Each cell keeps nbgrader's rule (its points exactly when all its tests pass); a cell whose module
    cannot be imported fails alone (``--continue-on-collection-errors``). With ``stop_early`` the
    session stops at the first failure and only the cells up to the first failing one are reported.
    """
    import pytest

    paths = []
    for i, cell in enumerate(cells):
        path = workdir / f"test_{i:03d}_{re.sub(r'[^0-9A-Za-z_]', '_', cell.grade_id)}.py"
        header = ["import course_lib.grading.trusted as __course_trusted"]
        header += [f"{n} = __course_trusted.student_name({n!r})" for n in names]
        path.write_text("\n".join(header) + "\n" + cell.code + "\n")
        paths.append(path)
    ini = workdir / "pytest.ini"
    ini.write_text("[pytest]\naddopts =\n")
    collector = _Collector()
    # the test cells use no third-party pytest plugin: skipping their discovery saves most of pytest's start-up;
    # the unraisable-exception plugin's five gc.collect() at the session's end took 0.5 s of a 0.9 s job (cProfile)
    args = [*map(str, paths), "-q", "-p", "no:cacheprovider", "-c", str(ini), "--rootdir", str(workdir),
            "--import-mode=importlib", "-W", "ignore::DeprecationWarning", "-o", "console_output_style=classic",
            "--continue-on-collection-errors", "--disable-plugin-autoload", "-p", "no:unraisableexception"]
    if stop_early:
        args.append("-x")
    with open(os.devnull, "w") as null:
        stdout, sys.stdout = sys.stdout, null
        try:
            pytest.main(args, plugins=[collector])
        finally:
            sys.stdout = stdout
    out = []
    for path, cell in zip(paths, cells):
        tests = []
        for name in cell.tests:
            passed, msg = collector.reports.get((path.name, name), (False, "did not run"))
            tests.append(TestResult(name, name in cell.hidden_tests, passed, msg))
        error = "\n".join(collector.errors.get(path.name, []))
        passed = not error and bool(tests) and all(t.passed for t in tests)
        out.append(CellResult(cell.grade_id, cell.points if passed else 0.0, cell.points, passed, tests, error))
        if stop_early and not passed:
            break
    return out


def grade_notebook(source_path, submitted_path, forbidden=(), limits: Limits = Limits(), call_timeout: float = 20.0,
                   load_timeout: float = 120.0, hide=(), readonly=(), stop_early: bool = False,
                   first: str | None = None, session: StudentProcess | None = None,
                   home_root: str | None = None, workers=None) -> dict:
    """Score one submitted notebook against its source notebook's test cells.

    Args:
        source_path: the instructor's source notebook (hidden tests included).
        submitted_path: the student's notebook.
        forbidden: library functions the submission may not call.
        limits, call_timeout, load_timeout, hide, readonly: sandbox settings (see StudentProcess).
        stop_early, first: stop at the first failing cell; grade the cell ``first`` first (course check).
        session: a warm worker to reuse (``StudentProcess.reload``; course check's mutants only).
        home_root: the folder for the worker's home (None: the system's temporary folder).
        workers: a warm worker sandbox to fork the worker from (see StudentProcess; None: a fresh one).
    Returns:
        {"cells": [CellResult as dict, ...], "load_errors": [...], "restarts": n}
    """
    global _SESSION
    src, sub = read(source_path), read(submitted_path)
    names = answer_names(src)
    if session is None:
        _SESSION = StudentProcess(student_program(src, sub), forbidden, limits, call_timeout, load_timeout,
                                  hide=hide, readonly=readonly, home_root=home_root, workers=workers)
        _SESSION.start()  # the sandboxed worker starts up and runs the notebook while pytest sets up
    else:
        session.reload(student_program(src, sub))
        _SESSION = session
    try:
        with tempfile.TemporaryDirectory(prefix="course-trusted-") as tmp:
            todo = sorted(test_cells(src), key=lambda c: c.grade_id != first)
            cells = _run_cells(todo, names, Path(tmp), stop_early)
        return {"cells": [asdict(c) for c in cells], "load_errors": _SESSION.load_errors,
                "load_failure": _SESSION.load_failure, "restarts": _SESSION.restarts}
    finally:
        if session is None:
            _SESSION.close()
        _SESSION = None


def main(argv=None, workers=None) -> int:
    """``python -m course_lib.grading.trusted JOB.json OUT.json``: grade each submission of a job.

    Args:
        argv: the job file and the results file (None: the command line).
        workers: a warm worker sandbox for the submissions' workers (the warm trusted runner's; None: fresh ones).
    """
    argv = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(argv[0]).read_text())
    # this process's temporary files (the test modules, hidden tests included) go in the job's folder, which
    # run_trusted hides from the student's worker and removes afterwards, even if this process is killed
    tempfile.tempdir = str(Path(argv[0]).resolve().parent)
    limits = Limits(**job.get("limits", {}))
    settings = (job.get("forbidden", []), limits, job.get("call_timeout", 20.0), job.get("load_timeout", 120.0))
    hide, readonly = job.get("hide", []), job.get("readonly", [])
    # course check's mutants share one warm worker; submissions never do
    home_root = job.get("homes")
    shared = (StudentProcess([], *settings, hide=hide, readonly=readonly, home_root=home_root, workers=workers)
              if job.get("reuse_worker") else None)
    out = {}
    try:
        for key, sub in job["submissions"].items():
            out[key] = grade_notebook(job["source"], sub, *settings, hide, readonly, job.get("stop_early", False),
                                      job.get("first", {}).get(key), session=shared, home_root=home_root,
                                      workers=workers)
            Path(argv[1]).write_text(json.dumps(out))  # partial results survive a kill
    finally:
        if shared is not None:
            shared.close()
    Path(argv[1]).write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    # run the imported module's main, so that test modules importing it share its session
    from course_lib.grading.trusted import main as _main

    sys.exit(_main())
