"""Late-submission penalties from ``grading.toml``, applied by the trusted merge and by ``course grades``.

Per assignment (all optional; no ``due`` = no penalty)::

    [hw01_convex]
    due = 2026-03-06T23:59:00Z     # TOML datetime, or an ISO string; a date-time without offset is UTC
    late_penalty_per_day = 0.1     # each started day (24 h) late costs 10 % of the score earned
    late_cutoff_days = 3           # more than 3 days late: the score is 0

Rule: with ``d = ceil(seconds_late / 86400)`` started days, ``penalty = score * min(1, per_day * d)``, and
``penalty = score`` when ``seconds_late > cutoff_days * 86400``. This is nbgrader's ``LateSubmissionPlugin``
interface (its built-in methods are only "none" and "zero"); the penalty is stored in the gradebook's
``late_submission_penalty`` of each submitted notebook, never in a grade, so manual scores are untouched and
nbgrader's own export and feedback (GetGrades) subtract it. Because the penalty is a share of the score, it is
recomputed from the current scores whenever grades are exported (manual grading may have changed them).
"""
from __future__ import annotations

import math
import os
from datetime import datetime, timezone
from pathlib import Path

from nbgrader.plugins import LateSubmissionPlugin
from traitlets import Float

from .config import load_config
from .exchange import lab_env

__all__ = ["GradedLatePenalty", "penalty_share", "due_date", "apply_to_submission", "apply_late_penalties"]

DAY_S = 86400.0


def penalty_share(seconds_late: float, per_day: float, cutoff_days: float | None = None) -> float:
    """The share of the score lost: ``min(1, per_day * ceil(seconds_late / 1 day))``; 1 past the cut-off; 0 on time.

    Args:
        seconds_late: seconds after the due date (<= 0: on time).
        per_day: share lost per started day, in [0, 1].
        cutoff_days: more than this many days late loses everything (None: no cut-off).
    Returns:
        A share in [0, 1].
    """
    if not 0.0 <= per_day <= 1.0:
        raise ValueError(f"late_penalty_per_day must be in [0, 1]; got {per_day}")
    if seconds_late <= 0:
        return 0.0
    if cutoff_days is not None and seconds_late > float(cutoff_days) * DAY_S:
        return 1.0
    return min(1.0, per_day * math.ceil(seconds_late / DAY_S))


class GradedLatePenalty(LateSubmissionPlugin):
    """nbgrader late-submission plugin: a share of the score per started day, zero after a cut-off."""

    per_day = Float(0.0, help="share of the score lost per started day late").tag(config=True)
    cutoff_days = Float(None, allow_none=True, help="days late after which the score is 0").tag(config=True)

    def late_submission_penalty(self, student_id: str, score: float, total_seconds_late: float) -> float:
        return float(score or 0.0) * penalty_share(total_seconds_late, self.per_day, self.cutoff_days)


def due_date(value) -> datetime | None:
    """A due date from grading.toml (TOML datetime or ISO string) as a naive UTC datetime (nbgrader's convention)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as err:
            raise ValueError(f"grading.toml: due must be an ISO date-time like 2026-03-06T23:59:00Z; got {value!r}") \
                from err
    if not isinstance(value, datetime):
        raise ValueError(f"grading.toml: due must be a date-time; got {value!r}")
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def apply_to_submission(gb, cfg, assignment: str, student: str) -> float:
    """Set the late penalty of one submission in an open nbgrader Gradebook; returns the total penalty."""
    due = due_date(cfg.due)
    if due is None:
        return 0.0
    record = gb.update_or_create_assignment(assignment)
    if record.duedate != due:
        record.duedate = due
        gb.db.commit()
    sub = gb.find_submission(assignment, student)
    plugin = GradedLatePenalty(per_day=float(cfg.late_penalty_per_day),
                               cutoff_days=None if cfg.late_cutoff_days is None else float(cfg.late_cutoff_days))
    seconds = float(sub.total_seconds_late or 0.0) if sub.timestamp is not None else 0.0
    total = 0.0
    for nb in sub.notebooks:
        nb.late_submission_penalty = plugin.late_submission_penalty(student, nb.score, seconds) if seconds > 0 \
            else None
        total += nb.late_submission_penalty or 0.0
    gb.db.commit()
    return total


def apply_late_penalties(course, db_url: str | None = None) -> dict[tuple[str, str], float]:
    """Recompute every submission's penalty from its current scores (assignments with a ``due`` only).

    Returns:
        {(assignment, student): penalty} for the submissions with a due date.
    """
    from nbgrader.api import Gradebook

    from .pipeline import _course_id, _db_url

    course = Path(course).resolve()
    os.environ["PATH"] = lab_env()["PATH"]  # nbgrader runs alembic by name when it creates a gradebook
    out = {}
    with Gradebook(_db_url(course, db_url), _course_id(course)) as gb:
        for a in list(gb.assignments):
            cfg = load_config(course, a.name)
            if cfg.due is None:
                continue
            for sub in list(a.submissions):
                out[(a.name, sub.student.id)] = apply_to_submission(gb, cfg, a.name, sub.student.id)
    return out
