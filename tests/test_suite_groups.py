"""The suite's own scheduling: `--dist loadgroup` keeps an xdist_group on one worker, so its fixture is built once.

`make test` relies on it: the tamper suite and the graded demo course are module fixtures of minutes each,
shared by every test of their group. (pytest 9 with pytest-xdist 3.8 silently stopped grouping -- each
worker then built both fixtures -- hence the pin in pyproject.toml and constraints.txt.)
"""
from __future__ import annotations

import collections
import os
import subprocess
import sys

INNER = '''
import os, pytest

LOG = {log!r}


def _note(what):
    with open(LOG, "a") as fh:
        fh.write(f"{{what}} {{os.environ['PYTEST_XDIST_WORKER']}}\\n")


@pytest.fixture(scope="module")
def expensive():
    _note("setup")


@pytest.mark.parametrize("i", range(6))
def test_ungrouped(i):
    _note(f"free{{i}}")


@pytest.mark.xdist_group("shared")
@pytest.mark.parametrize("i", range(6))
def test_grouped(expensive, i):
    _note(f"group{{i}}")
'''


def test_loadgroup_runs_a_group_on_one_worker_with_one_fixture_setup(tmp_path):
    log = tmp_path / "log.txt"
    (tmp_path / "test_inner.py").write_text(INNER.format(log=str(log)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p",
                           "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:]
    lines = [line.split() for line in log.read_text().splitlines()]
    workers = collections.defaultdict(set)
    for what, worker in lines:
        workers["group" if what.startswith("group") else what].add(worker)
    assert sum(1 for what, _ in lines if what.startswith("group")) == 6
    assert len(workers["group"]) == 1, lines  # all six grouped tests on one worker ...
    assert [what for what, _ in lines].count("setup") == 1, lines  # ... and the module fixture built once
