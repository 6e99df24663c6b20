"""Per-assignment grading settings from ``grading.toml`` in the course directory (all optional)."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .sandbox import Limits

__all__ = ["AssignmentConfig", "load_config"]


@dataclass
class AssignmentConfig:
    """Settings of one assignment; defaults apply where grading.toml is silent."""

    name: str
    show_hidden_source: bool = False
    forbidden: list[str] = field(default_factory=list)
    equivalent_mutants: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 20.0
    load_timeout_s: float = 120.0
    memory_mb: int = 4096
    cell_timeout_s: float = 60.0
    min_mutation_score: float = 0.95
    mutant_timeout_s: float = 5.0
    due: object = None  # due date (TOML datetime or ISO string, UTC if no offset); see course_lib.grading.late
    late_penalty_per_day: float = 0.0  # share of the score lost per started day late
    late_cutoff_days: float | None = None  # later than this many days: score 0

    @property
    def limits(self) -> Limits:
        return Limits(memory_mb=int(self.memory_mb))


def load_config(course_dir, assignment: str) -> AssignmentConfig:
    """Read ``[defaults]`` and ``[<assignment>]`` from ``course_dir/grading.toml``."""
    path = Path(course_dir) / "grading.toml"
    data = tomllib.loads(path.read_text()) if path.exists() else {}
    merged = {**data.get("defaults", {}), **data.get(assignment, {})}
    known = set(AssignmentConfig.__dataclass_fields__) - {"name"}
    unknown = sorted(set(merged) - known)
    if unknown:
        raise ValueError(f"grading.toml: unknown setting(s) {unknown} for {assignment}; known: {sorted(known)}")
    return AssignmentConfig(name=assignment, **merged)
