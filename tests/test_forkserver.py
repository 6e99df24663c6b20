"""The warm nbgrader fork server runs real nbgrader exactly as a fresh sandboxed process does."""
from __future__ import annotations

import importlib.metadata

import pytest

from course_lib.grading.forkserver import ForkServerPool, run_nbgrader
from course_lib.grading.sandbox import Limits, scrubbed_env

pytestmark = pytest.mark.slow


def _run(tmp_path, name, args, forks):
    home = tmp_path / name
    home.mkdir()
    log = home / "nbgrader.log"
    note = run_nbgrader(args, home, scrubbed_env(str(home)), log, Limits(memory_mb=4096, cpu_s=120), 120, forks=forks)
    return note, log.read_text()


def test_fork_server_runs_nbgrader_like_a_fresh_process(tmp_path):
    version = importlib.metadata.version("nbgrader")
    with ForkServerPool() as forks:
        first = _run(tmp_path, "a", ["--version"], forks)
        second = _run(tmp_path, "b", ["--version"], forks)
        assert len(forks._all) == 1  # one warm server served both runs
    fresh = _run(tmp_path, "c", ["--version"], None)
    for note, log in (first, second, fresh):
        assert note == "" and f"nbgrader version {version}" in log, log


def test_fork_server_child_errors_reach_the_log(tmp_path):
    with ForkServerPool() as forks:
        note, log = _run(tmp_path, "a", ["no_such_subcommand"], forks)
    _, fresh = _run(tmp_path, "b", ["no_such_subcommand"], None)
    assert note == ""  # it ran to its end (nbgrader's own complaint and help), within the time limit
    assert "No nbgrader_config.py file found" in log
    assert log == fresh  # word for word what a fresh `python -m nbgrader` prints
