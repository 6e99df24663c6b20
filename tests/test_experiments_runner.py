"""Running studies: bit-identical reruns, executors agree, kill-and-resume, bad runs and dead workers never sink a study."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from course_lib.experiments import loads_study, report_study, run_study

TEAM = '''
import os
import signal


def always_fails(oracle, x0, *, seed, **hp):
    raise RuntimeError("this method always fails")


def kills_its_worker(oracle, x0, *, seed, **hp):
    oracle.grad(x0)
    os.kill(os.getpid(), signal.SIGKILL)


def hangs(oracle, x0, *, seed, **hp):
    import time

    while True:
        try:
            time.sleep(1000)
        except Exception:  # a method that swallows everything still cannot swallow the run timeout
            pass
'''

STUDY = """
[study]
name = "small"
seeds = 5
baseline = "gd"
[study.budget]
unit = "gradients"
amount = {amount}
[study.tuning]
trials = 3
[[workload]]
name = "quad"
factory = "course_lib.experiments.workloads:diagonal_quadratic"
args = {{ dim = {dim}, kappa = 10, start = "random" }}
metric = "suboptimality"
target = 1e-3
[[method]]
name = "gd"
target = "course_lib.experiments.methods:gradient_descent"
[method.space]
step_size = {{ low = 0.01, high = 0.15, log = true }}
[[method]]
name = "nesterov"
target = "course_lib.experiments.methods:nesterov"
[method.space]
step_size = {{ low = 0.01, high = 0.1, log = true }}
"""

EXTRA = """
[[method]]
name = "broken"
target = "team:always_fails"
[method.space]
step_size = { low = 0.01, high = 0.1 }
[[method]]
name = "too-big-a-step"
target = "course_lib.experiments.methods:gradient_descent"
fixed = { step_size = 0.5 }
tune = false
"""


def _write(tmp_path, text, name="study.toml"):
    (tmp_path / "team.py").write_text(TEAM)
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _norm(records):
    """Order-normalised records without their wall-clock field."""
    return sorted(json.dumps({k: v for k, v in r.items() if k != "timing"}, sort_keys=True) for r in records)


def _lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_rerun_is_bit_identical_and_bad_methods_are_counted(tmp_path):
    path = _write(tmp_path, STUDY.format(amount=60, dim=10) + EXTRA)
    study = loads_study(path.read_text(), path)
    first = run_study(study, jobs=0, out=tmp_path / "a")
    second = run_study(study, jobs=0, out=tmp_path / "b")
    assert _norm(first) == _norm(second)
    assert len(first) == 3 * (3 + 5) + 5
    broken = [r for r in first if r["method"] == "broken"]
    assert {r["status"] for r in broken} == {"failed"}
    assert all(r["message"] == "RuntimeError: this method always fails" for r in broken)
    big = [r for r in first if r["method"] == "too-big-a-step"]
    assert {r["status"] for r in big} == {"diverged"} and len(big) == 5
    # the others are reported as usual, the bad ones counted
    summary = report_study(study, out=tmp_path / "a")
    rows = {r["method"]: r for r in summary["rows"]}
    assert rows["gd"]["ok_runs"] == 5 and rows["nesterov"]["ok_runs"] == 5
    assert rows["broken"]["failed_tuning"] == 3 and rows["broken"]["failed_final"] == 5
    assert rows["too-big-a-step"]["diverged_final"] == 5 and rows["too-big-a-step"]["tuning_trials"] == 0
    md = (tmp_path / "a" / "report.md").read_text()
    assert "RuntimeError: this method always fails" in md and "| quad | broken |" in md
    # the same seeds for every method: paired comparisons have 5 pairs
    pair = next(p for p in summary["paired"] if p["method"] == "nesterov")
    assert pair["final_metric"]["n"] == 5
    finals = {r["method"]: sorted(x["seed"] for x in first if x["method"] == r["method"] and x["phase"] == "final")
              for r in first}
    assert finals["gd"] == finals["nesterov"] == finals["broken"]
    # the report is a pure function of the stored results
    assert report_study(study, out=tmp_path / "b")["rows"] == summary["rows"]
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["study_hash"] == study.hash and manifest["sessions"][0]["packages"]["numpy"]
    assert manifest["sessions"][0]["python"] == sys.version.split()[0]


def test_process_pool_equals_in_process(tmp_path):
    path = _write(tmp_path, STUDY.format(amount=60, dim=10))
    study = loads_study(path.read_text(), path)
    local = run_study(study, jobs=0, out=tmp_path / "inline", report=False)
    pool = run_study(study, jobs=2, out=tmp_path / "pool", report=False)
    assert _norm(local) == _norm(pool)


def test_a_torn_last_line_is_cut_and_the_run_recomputed(tmp_path):
    path = _write(tmp_path, STUDY.format(amount=40, dim=5))
    study = loads_study(path.read_text(), path)
    ref = run_study(study, jobs=0, out=tmp_path / "ref", report=False)
    runs = tmp_path / "ref" / "runs.jsonl"
    text = runs.read_text().splitlines(keepends=True)
    runs.write_text("".join(text[:-3]) + text[-3][: len(text[-3]) // 2])  # killed in the middle of a write
    again = run_study(study, jobs=0, out=tmp_path / "ref", report=False)
    assert _norm(again) == _norm(ref)
    assert _norm(_lines(runs)) == _norm(ref)  # nothing lost, nothing duplicated


def test_results_of_another_study_are_refused(tmp_path):
    path = _write(tmp_path, STUDY.format(amount=40, dim=5))
    run_study(loads_study(path.read_text(), path), jobs=0, out=tmp_path / "r", report=False)
    other = _write(tmp_path, STUDY.format(amount=41, dim=5), "other.toml")
    with pytest.raises(ValueError, match="different study file"):
        run_study(loads_study(other.read_text(), other), jobs=0, out=tmp_path / "r")


def _course(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "course_lib.cli", "experiment", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_kill_and_resume_gives_the_uninterrupted_results(tmp_path):
    path = _write(tmp_path, STUDY.format(amount=1000, dim=50))
    study = loads_study(path.read_text(), path)
    reference = run_study(study, jobs=0, out=tmp_path / "reference", report=False)
    out = tmp_path / "killed"
    proc = _course("run", str(path), "--out", str(out), "--jobs", "1", start_new_session=True)
    runs = out / "runs.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and (not runs.exists() or len(runs.read_text().splitlines()) < 4):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    n_before = len(runs.read_text().splitlines())
    assert 4 <= n_before < len(reference), "the kill should land mid-study"
    proc = _course("run", str(path), "--out", str(out), "--jobs", "1")
    _, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err
    assert f"{n_before} reused from the store" in err or f"{n_before - 1} reused from the store" in err
    assert _norm(_lines(runs)) == _norm(reference)
    assert (out / "report.md").exists()


@pytest.mark.slow
def test_dask_local_cluster_equals_the_local_run(tmp_path):
    path = _write(tmp_path, STUDY.format(amount=60, dim=10))
    study = loads_study(path.read_text(), path)
    local = run_study(study, jobs=0, out=tmp_path / "local", report=False)
    dask = run_study(study, jobs=2, dask="local", out=tmp_path / "dask", report=False)
    assert _norm(local) == _norm(dask)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:study.seeds = 2")
def test_a_dead_worker_is_a_failed_run_and_the_study_goes_on(tmp_path):
    text = STUDY.format(amount=60, dim=10).replace("seeds = 5", "seeds = 2") + """
[[method]]
name = "crash"
target = "team:kills_its_worker"
tune = false
"""
    path = _write(tmp_path, text)
    study = loads_study(path.read_text(), path)
    records = run_study(study, jobs=2, out=tmp_path / "out")
    crash = [r for r in records if r["method"] == "crash"]
    assert len(crash) == 2 and {r["status"] for r in crash} == {"failed"}
    assert all("worker died" in r["message"] for r in crash)
    others = [r for r in records if r["method"] != "crash"]
    assert len(others) == 2 * (3 + 2) and {r["status"] for r in others} == {"ok"}
    # and the surviving runs are exactly those of a run without the crashing method
    ref_path = _write(tmp_path, STUDY.format(amount=60, dim=10).replace("seeds = 5", "seeds = 2"), "ref.toml")
    ref = run_study(loads_study(ref_path.read_text(), ref_path), jobs=0, out=tmp_path / "ref", report=False)
    assert _norm(others) == _norm(ref)


def test_progress_true_prints_a_line_per_run_and_a_summary(tmp_path, capsys):
    path = _write(tmp_path, STUDY.format(amount=20, dim=3))
    records = run_study(loads_study(path.read_text(), path), jobs=0, out=tmp_path / "p", progress=True, report=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert len([line for line in err if line.startswith("[")]) == len(records) == 16
    assert err[-1].startswith("study small: 16 run(s) computed (16 ok, 0 diverged, 0 failed), 0 reused")


def test_a_rerun_that_computes_nothing_leaves_the_manifest_alone(tmp_path):
    path = _write(tmp_path, STUDY.format(amount=20, dim=3))
    study = loads_study(path.read_text(), path)
    run_study(study, jobs=0, out=tmp_path / "m", report=False)
    manifest = (tmp_path / "m" / "manifest.json").read_text()
    assert len(json.loads(manifest)["sessions"]) == 1 and json.loads(manifest)["study_file"] == "../study.toml"
    run_study(study, jobs=0, out=tmp_path / "m")
    assert (tmp_path / "m" / "manifest.json").read_text() == manifest


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_a_dead_dask_worker_is_a_failed_run(tmp_path):
    text = STUDY.format(amount=20, dim=3).replace("seeds = 5", "seeds = 1").replace("trials = 3", "trials = 0") \
        .replace('step_size = { low = 0.01, high = 0.15, log = true }', "").replace(
            'step_size = { low = 0.01, high = 0.1, log = true }', "")
    text = text.replace('target = "course_lib.experiments.methods:nesterov"',
                        'target = "course_lib.experiments.methods:nesterov"\nfixed = { step_size = 0.05 }')
    text = text.replace('target = "course_lib.experiments.methods:gradient_descent"',
                        'target = "course_lib.experiments.methods:gradient_descent"\nfixed = { step_size = 0.05 }')
    text += '\n[[method]]\nname = "crash"\ntarget = "team:kills_its_worker"\ntune = false\n'
    path = _write(tmp_path, text)
    records = run_study(loads_study(path.read_text(), path), jobs=2, dask="local", out=tmp_path / "out")
    status = {r["method"]: r for r in records}
    assert status["gd"]["status"] == status["nesterov"]["status"] == "ok"
    assert status["crash"]["status"] == "failed" and "KilledWorker" in status["crash"]["message"]


def test_a_run_over_the_time_limit_fails_and_the_others_finish(tmp_path):
    text = STUDY.format(amount=20, dim=3).replace('name = "small"', 'name = "small"\nrun_timeout = 1.5')
    text += '\n[[method]]\nname = "hangs"\ntarget = "team:hangs"\ntune = false\n'
    path = _write(tmp_path, text)
    records = run_study(loads_study(path.read_text(), path), jobs=0, out=tmp_path / "out", report=False)
    hung = [r for r in records if r["method"] == "hangs"]
    assert len(hung) == 5 and all(r["status"] == "failed" for r in hung)
    assert hung[0]["message"] == "RunTimeout: the run took longer than study.run_timeout = 1.5 s"
    assert all(r["status"] == "ok" for r in records if r["method"] != "hangs")
