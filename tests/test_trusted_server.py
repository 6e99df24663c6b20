"""The warm trusted runner scores exactly as a fresh trusted process, keeps the time limit, and falls back.

Real grading jobs on hw00: the reference solution (full marks), the untouched release (every answer a
stub) and a submission whose notebook code sleeps past the job's time limit.
"""
from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest

from course_lib.grading.check import run_trusted
from course_lib.grading.config import load_config
from course_lib.grading.notebook import meta
from course_lib.grading.trusted_server import TrustedServerPool

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
HW = "hw00_preliminaries"
SOURCE = REPO / "solutions" / HW / f"{HW}.ipynb"
RELEASE = REPO / "assignments" / HW / f"{HW}.ipynb"


def _scores(result: dict) -> dict:
    """What grading depends on: per cell the points and every test's outcome and message."""
    return {c["grade_id"]: (c["points"], c["error"], [(t["name"], t["passed"], t["message"]) for t in c["tests"]])
            for c in result["cells"]}


def _sleeping_submission(tmp_path: Path, seconds: float) -> Path:
    """hw00's reference solution whose first answer cell sleeps; it writes 'started' and, after the sleep, 'woke'."""
    nb = nbformat.read(SOURCE, 4)
    answer = next(c for c in nb.cells if meta(c).get("grade_id") == "logistic_grad")
    answer.source = (f"import time\nopen({str(tmp_path / 'started')!r}, 'w').close()\ntime.sleep({seconds})\n"
                     f"open({str(tmp_path / 'woke')!r}, 'w').close()\n" + answer.source)
    path = tmp_path / "sleeps.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_warm_server_scores_like_a_fresh_process_and_serves_job_after_job():
    cfg = load_config(REPO, HW)
    subs = {"ref": str(SOURCE), "stub": str(RELEASE)}
    fresh = {k: run_trusted(str(SOURCE), {k: v}, cfg, timeout=300)[k] for k, v in subs.items()}
    with TrustedServerPool() as servers:
        warm = {k: run_trusted(str(SOURCE), {k: v}, cfg, timeout=300, servers=servers)[k] for k, v in subs.items()}
        again = run_trusted(str(SOURCE), {"ref": subs["ref"]}, cfg, timeout=300, servers=servers)["ref"]
        assert len(servers._all) == 1  # one warm runner served all three jobs, one after the other
    total = {k: sum(c["points"] for c in r["cells"]) for k, r in warm.items()}
    assert total == {"ref": 13.0, "stub": 0.0}
    for key in subs:
        assert _scores(warm[key]) == _scores(fresh[key]), key
        assert warm[key]["load_errors"] == fresh[key]["load_errors"]
    assert _scores(again) == _scores(warm["ref"])  # nothing of the stub job reached the next one


def test_a_job_past_its_time_limit_is_stopped_with_its_sandbox_and_the_server_serves_the_next(tmp_path):
    cfg = load_config(REPO, HW)
    slow = _sleeping_submission(tmp_path, 8)
    with TrustedServerPool() as servers:
        res = run_trusted(str(SOURCE), {"slow": str(slow)}, cfg, timeout=3, servers=servers)
        assert res["slow"] == {"error": "the trusted grader did not finish within 3 s"}
        assert (tmp_path / "started").exists()
        ok = run_trusted(str(SOURCE), {"ref": str(SOURCE)}, cfg, timeout=300, servers=servers)
        assert sum(c["points"] for c in ok["ref"]["cells"]) == 13.0
        assert len(servers._all) == 1
    # the student's sandboxed worker died with the killed runner: it never wakes from its 8 s sleep
    time.sleep(max(0.0, (tmp_path / "started").stat().st_mtime + 10 - time.time()))
    assert not (tmp_path / "woke").exists()


def test_a_dead_server_is_replaced_and_a_failing_one_falls_back_to_a_fresh_process():
    cfg = load_config(REPO, HW)
    with TrustedServerPool() as servers:
        servers.warm(1)
        dead = servers._all[0]
        dead.proc.kill()
        dead.proc.wait()
        res = run_trusted(str(SOURCE), {"ref": str(SOURCE)}, cfg, timeout=300, servers=servers)
        assert sum(c["points"] for c in res["ref"]["cells"]) == 13.0
        assert len(servers._all) == 2 and servers._all[1].alive  # a new warm runner took the dead one's place
        broken = servers._all[1]
        broken.proc.stdin.close()  # alive, but the next request cannot reach it
        res = run_trusted(str(SOURCE), {"ref": str(RELEASE)}, cfg, timeout=300, servers=servers)
        assert not broken.alive  # stopped when it failed
    assert sum(c["points"] for c in res["ref"]["cells"]) == 0.0 and len(res["ref"]["cells"]) == 4  # graded afresh


def test_a_crashing_job_reports_its_error_like_a_fresh_process(tmp_path):
    cfg = load_config(REPO, HW)
    missing = str(tmp_path / "no_such_source.ipynb")
    fresh = run_trusted(missing, {"ref": str(SOURCE)}, cfg, timeout=120)
    with TrustedServerPool() as servers:
        warm = run_trusted(missing, {"ref": str(SOURCE)}, cfg, timeout=120, servers=servers)
    for res in (fresh, warm):
        assert "FileNotFoundError" in res["ref"]["error"] and "no_such_source.ipynb" in res["ref"]["error"]


def test_the_warm_up_writes_its_test_module_where_every_sandbox_hides_the_runners_files(monkeypatch):
    """A student worker graded beside a warm-up (another stream, another course's run) finds no test module."""
    import os

    from course_lib.grading import trusted, trusted_server
    from course_lib.grading.check import jobs_root

    seen = []
    real = trusted._run_cells

    def run_cells(cells, names, workdir, stop_early=False):
        result = real(cells, names, workdir, stop_early)
        seen.append((workdir, sorted(p.name for p in workdir.glob("test_*.py"))))
        return result

    monkeypatch.setattr(trusted, "_run_cells", run_cells)
    trusted_server._warm_up()
    (workdir, modules), = seen
    assert modules and os.path.commonpath([str(workdir), jobs_root()]) == jobs_root()
    assert not workdir.exists()  # removed after the warm-up
