"""The warm nbgrader fork server runs real nbgrader exactly as a fresh sandboxed process does."""
from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from course_lib.grading import forkserver, protocol
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


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "polling"])
def test_the_server_waits_for_a_childs_exit_code_or_its_deadline(monkeypatch, pidfd):
    if not pidfd:
        monkeypatch.delattr(os, "pidfd_open")  # an older kernel or Python: polled instead
    quick = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    assert forkserver._wait(quick.pid, time.monotonic() + 60) == 3
    quick.returncode = 3  # reaped by _wait
    slow = subprocess.Popen(["sleep", "30"])
    try:
        assert forkserver._wait(slow.pid, time.monotonic() + 0.3) is None
    finally:
        slow.kill()
        slow.wait()


def test_forked_children_inherit_a_frozen_heap_with_the_collector_on(tmp_path):
    """serve_forks freezes what the server imported (gc.freeze) and re-enables the collector the server disabled."""
    server = textwrap.dedent("""
        import gc, json, os, time
        gc.disable()
        import nbformat  # noqa: F401 - something imported, to be frozen
        from course_lib.grading.forkserver import protocol_fds, serve_forks

        def child(request):
            os.setsid()  # as every real child does: the server kills the child's session at its deadline
            with open(request["out"], "w") as fh:
                json.dump({"frozen": gc.get_freeze_count(), "enabled": gc.isenabled()}, fh)
            time.sleep(request["sleep"])
            os._exit(request["code"])

        serve_forks(*protocol_fds(), child)
    """)
    proc = subprocess.Popen([sys.executable, "-c", server], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert protocol.recv(proc.stdout.fileno(), time.monotonic() + 60) == {"ready": True}
        replies = []
        for code, sleep, timeout in ((5, 0, 60), (0, 30, 0.5)):
            protocol.send(proc.stdin.fileno(), {"out": str(tmp_path / f"{code}.json"), "code": code,
                                                "sleep": sleep, "timeout": timeout})
            replies.append(protocol.recv(proc.stdout.fileno(), time.monotonic() + 60))
        assert replies[0] == {"returncode": 5, "timed_out": False}
        assert replies[1]["timed_out"] is True  # killed at its deadline, and the server answered
        seen = json.loads((tmp_path / "5.json").read_text())
        assert seen["enabled"] is True and seen["frozen"] > 10_000, seen
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
