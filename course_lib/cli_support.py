"""How the ``course`` command fails and reports: one-line reasons, exit codes, progress of long commands.

- :func:`run_command` runs a subcommand. Without ``--debug`` an exception becomes one line on stderr,
  ``course: <reason>``, plus a line saying what to try, and exit code 2 for bad input
  (:class:`~course_lib.validation.CourseError`: an unknown assignment or student, a bad folder) or 1 for
  anything else; ``--debug`` shows the traceback instead.
- :func:`positive_int` is the argparse type of ``--jobs``: ``--jobs 0`` is refused by argparse itself.
- :func:`autograde_progress` and :func:`check_progress` adapt :class:`course_lib.progress.Progress` to the
  callbacks of ``autograde`` and ``check_assignment``.
"""
from __future__ import annotations

import argparse
import sys
import time

from .progress import Progress
from .validation import CourseError, check_int

__all__ = ["positive_int", "run_command", "autograde_progress", "check_progress", "print_autograde_table",
           "count_submissions", "autograde_exit_code"]


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a clear message for 0, -3 or "two")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    try:
        return check_int(value, "value", minimum=1)
    except CourseError:
        raise argparse.ArgumentTypeError(f"must be >= 1 (the number of parallel jobs), got {value}") from None


def _one_line(err: BaseException) -> str:
    lines = [l.strip() for l in str(err).splitlines() if l.strip()]
    text = lines[0] if lines else type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def run_command(func, args) -> int:
    """Run ``func(args)``; turn exceptions into ``course: <reason>`` and an exit code unless ``args.debug``."""
    debug = bool(getattr(args, "debug", False))
    command = getattr(args, "command", "") or ""
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print("course: interrupted. Nothing graded so far is lost; run the same command again to resume.",
              file=sys.stderr)
        return 130
    except CourseError as err:
        if debug:
            raise
        print(f"course: {_one_line(err)}", file=sys.stderr)  # its message says what to try
        return 2
    except SystemExit:
        raise
    except Exception as err:  # noqa: BLE001 - the command line's last line of defence
        if debug:
            raise
        print(f"course: {command} failed: {type(err).__name__}: {_one_line(err)}", file=sys.stderr)
        print(f"  try: `course --debug {command} ...` to see the traceback", file=sys.stderr)
        return 1


def _score(s: dict) -> str:
    return f"{s.get('score', 0):g} / {s.get('max_score', 0):g}"


def autograde_progress(assignment: str, total: int, stream=None) -> tuple[Progress, callable]:
    """A Progress for grading ``total`` submissions and the callback ``autograde(progress=...)`` takes."""
    bar = Progress(total, f"autograde {assignment}", unit="submission", stream=stream)

    def callback(result: dict) -> None:
        detail = _score(result) if result["status"] in ("graded", "failed") else ""
        if result.get("message"):
            detail = (detail + " " + result["message"][:160]).strip()
        bar.done(result["student"], result["status"], detail)

    return bar, callback


def print_autograde_table(summary: list[dict], stream=None) -> None:
    """One line per student: name, status, score, message (the result of ``course autograde``)."""
    for s in summary:
        print(f"{s['student']:<20} {s['status']:<10} {_score(s):>13}  {s.get('message', '')}".rstrip(),
              file=stream or sys.stdout)


class check_progress:  # noqa: N801 - used like a function: check_assignment(..., progress=check_progress(...))
    """The callback ``check_assignment(progress=...)`` takes: a mutant bar created on its first call."""

    def __init__(self, assignment: str, stream=None):
        self.assignment, self.stream, self.bar = assignment, stream, None
        self.start = time.monotonic()  # the reference solution is graded before the first batch

    def __call__(self, label: str, count: int, total: int) -> None:
        if self.bar is None or self.bar.total != total:
            self.close()
            self.bar = Progress(total, f"check {self.assignment}: {label}", unit="mutant", stream=self.stream,
                                summary=False, start=self.start)
        self.bar.done(label, "graded", f"batch of {count}", count=count)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            print(f"{self.bar.desc}: {self.bar.n} graded in {self.bar.elapsed:.0f} s", file=self.bar.stream)
            self.bar = None
            self.start = time.monotonic()


def count_submissions(course, assignment: str, students=None) -> int:
    """How many submissions ``course autograde`` will report on (for the progress bar's total)."""
    from pathlib import Path

    if students:
        return len(students)
    return sum(1 for p in (Path(course) / "submitted").glob(f"*/{assignment}") if p.is_dir())


def autograde_exit_code(summary: list[dict]) -> int:
    """0 when every submission is graded (or was already), 1 if one failed or its folder was skipped as invalid."""
    from .grading.submissions import student_id_problem

    bad = [s for s in summary if s["status"] not in ("graded", "skipped") or student_id_problem(s["student"])]
    return 1 if bad else 0
