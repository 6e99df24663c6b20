"""Study files: every bad input gets a message naming the field; the CLI says it in one line and exits non-zero."""
import subprocess
import sys
import textwrap

import pytest

from course_lib.experiments import StudyError, load_study, loads_study, run_study
from course_lib.experiments.tuning import Tuner

GOOD = """
[study]
name = "ok"
seeds = 5
[study.budget]
unit = "gradients"
amount = 30
[study.tuning]
trials = 2
sampler = "random"
[[workload]]
name = "quad"
factory = "course_lib.experiments.workloads:diagonal_quadratic"
args = { dim = 5, kappa = 10 }
metric = "suboptimality"
target = 1e-3
[[method]]
name = "gd"
target = "course_lib.experiments.methods:gradient_descent"
[method.space]
step_size = { low = 0.01, high = 0.1, log = true }
"""


def _load(tmp_path, text):
    path = tmp_path / "study.toml"
    path.write_text(textwrap.dedent(text))
    return loads_study(path.read_text(), path)


@pytest.mark.parametrize("old, new, message", [
    ("amount = 30", "amount = 0", "study.budget.amount must be > 0, got 0.0"),
    ("amount = 30", "amount = -5", "study.budget.amount must be > 0, got -5.0"),
    ('unit = "gradients"', 'unit = "flops"', "study.budget.unit = 'flops' is not one of gradients"),
    ('sampler = "random"', 'sampler = "bayes"', "study.tuning.sampler = 'bayes' is not a sampler"),
    ("step_size = { low = 0.01, high = 0.1, log = true }", "", "method 'gd': the search space is empty"),
    ("step_size = { low = 0.01, high = 0.1, log = true }", "step_size = { low = 0.1, high = 0.01 }",
     "method 'gd': space.step_size is empty: low = 0.1 > high = 0.01"),
    ("step_size = { low = 0.01, high = 0.1, log = true }", "step_size = { choices = [] }",
     "method 'gd': space.step_size.choices is empty"),
    ("step_size = { low = 0.01, high = 0.1, log = true }", "step_size = { low = 0, high = 0.1, log = true }",
     "a log range needs low > 0"),
    ('[study]\nname = "ok"', '[study]\nname = "ok"\nbaseline = "adam"', "study.baseline = 'adam' is not a method"),
    ("trials = 2", "trials = -1", "study.tuning.trials must be >= 0"),
    ("seeds = 5", "seeds = 0", "study.seeds must be >= 1"),
    ('metric = "suboptimality"', 'metric = "suboptimality"\nstepsize = 1', "unknown key(s) 'stepsize'"),
    ('target = "course_lib.experiments.methods:gradient_descent"', 'target = "gradient descent"',
     "method 'gd': target must be an import path"),
    ('[study]\nname = "ok"', '[study]\nname = "o k"', "study.name must be a name"),
    ("amount = 30", "amount = 30\n[[oops", "is not valid TOML"),
])
def test_bad_study_fields_are_named(tmp_path, old, new, message):
    assert old in GOOD
    with pytest.raises(StudyError) as err:
        _load(tmp_path, GOOD.replace(old, new, 1))
    assert message in str(err.value)


@pytest.mark.parametrize("old, new, message", [
    ('"course_lib.experiments.methods:gradient_descent"', '"course_lib.experiments.methods:gradient_decent"',
     "method 'gd': target = 'course_lib.experiments.methods:gradient_decent': module "
     "'course_lib.experiments.methods' has no attribute 'gradient_decent'"),
    ('"course_lib.experiments.methods:gradient_descent"', '"teamlib:gd"',
     "method 'gd': target = 'teamlib:gd': cannot import module 'teamlib'"),
    ('"course_lib.experiments.workloads:diagonal_quadratic"', '"course_lib.experiments.workloads:quadratik"',
     "workload 'quad': factory = 'course_lib.experiments.workloads:quadratik'"),
    ('metric = "suboptimality"', 'metric = "accuracy"',
     "workload 'quad': metric = 'accuracy' is not a metric of this workload; it has distance, suboptimality, value"),
    ("args = { dim = 5, kappa = 10 }", "args = { dim = 5, kappa = 0.5 }", "workload 'quad': kappa must be >= 1"),
    ("args = { dim = 5, kappa = 10 }", "args = { dims = 5 }", "does not accept these args"),
    ('target = "course_lib.experiments.methods:gradient_descent"',
     'kind = "optimizer"\ntarget = "torch.optim:SGD"', "method 'gd' has kind = 'optimizer', but workload 'quad' "
                                                        "needs kind = 'algorithm'"),
])
def test_unknown_methods_workloads_and_metrics_are_named_before_anything_runs(tmp_path, old, new, message):
    study = _load(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ValueError) as err:
        run_study(study, jobs=0, out=tmp_path / "out")
    assert message in str(err.value)
    assert not (tmp_path / "out" / "runs.jsonl").exists()


def test_grid_with_fewer_points_than_trials_is_refused(tmp_path):
    study = _load(tmp_path, GOOD.replace('"random"', '"grid"').replace(
        "step_size = { low = 0.01, high = 0.1, log = true }", "step_size = { choices = [0.01] }"))
    with pytest.raises(ValueError, match="the grid has 1 point"):
        Tuner(study, study.workloads[0], study.methods[0], "min")


def test_an_unreachable_target_warns_and_every_run_is_censored(tmp_path):
    study = _load(tmp_path, GOOD.replace("target = 1e-3", "target = -1.0"))
    with pytest.warns(UserWarning, match="target = -1 can never be reached"):
        records = run_study(study, jobs=0, out=tmp_path / "out")
    assert records and all(r["status"] == "ok" and not r["reached"] and r["time_to_target"] is None
                           for r in records)
    row = (tmp_path / "out" / "report.md").read_text()
    assert "| 0/5 |" in row


def test_missing_study_file(tmp_path):
    with pytest.raises(StudyError, match="does not exist"):
        load_study(tmp_path / "nope.toml")


def test_every_sampler_by_name_gives_the_same_number_of_trials(tmp_path):
    for sampler in ("random", "grid", "tpe", "cmaes", "gp", "qmc"):
        text = GOOD.replace('"random"', f'"{sampler}"').replace("trials = 2", "trials = 3")
        text = text.replace("[method.space]\n", "[method.space]\nmomentum = { low = 0.0, high = 0.5 }\n") \
            .replace("methods:gradient_descent", "methods:heavy_ball")
        study = _load(tmp_path, text)
        tuner = Tuner(study, study.workloads[0], study.methods[0], "min")
        asked = []
        while not tuner.done:
            batch = tuner.ask(study.batch)
            asked += batch
            for i, config in batch:
                assert 0.01 <= config["step_size"] <= 0.1 and 0.0 <= config["momentum"] <= 0.5
                tuner.tell(i, config["step_size"])
        assert len(asked) == 3, sampler
        again = Tuner(study, study.workloads[0], study.methods[0], "min")
        assert [c for _, c in again.ask(study.batch)] == [c for _, c in asked[:study.batch]]  # seeded


def _cli(*args, cwd, course=False):
    """``course experiment ARGS`` (course=True: through the full ``course`` command, else its module directly)."""
    cmd = ["course_lib.cli", "experiment"] if course else ["course_lib.experiments.cli"]
    return subprocess.run([sys.executable, "-m", *cmd, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_cli_bad_input_is_one_line_and_nonzero(tmp_path):
    (tmp_path / "bad.toml").write_text(GOOD.replace("amount = 30", "amount = 0"))
    res = _cli("run", "bad.toml", cwd=tmp_path, course=True)
    assert res.returncode == 2
    assert res.stderr.strip() == "course experiment: study.budget.amount must be > 0, got 0.0."
    assert "Traceback" not in res.stderr
    res = _cli("report", "missing.toml", cwd=tmp_path)
    assert res.returncode == 2 and "does not exist" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    (tmp_path / "good.toml").write_text(GOOD)
    res = _cli("report", "good.toml", cwd=tmp_path)
    assert res.returncode == 2 and "no results in" in res.stderr and "course experiment run" in res.stderr


@pytest.mark.slow
def test_cli_run_prints_a_line_per_run_and_a_summary(tmp_path):
    (tmp_path / "good.toml").write_text(GOOD)
    res = _cli("run", "good.toml", "--jobs", "0", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stderr.strip().splitlines()
    assert sum(line.startswith("[") for line in lines) == 2 + 5
    assert lines[-1].startswith("study ok: 7 run(s) computed (7 ok, 0 diverged, 0 failed), 0 reused")
    assert (tmp_path / "results" / "ok" / "report.md").exists()
    again = _cli("run", "good.toml", cwd=tmp_path)
    assert "0 run(s) computed" in again.stderr and "7 reused from the store" in again.stderr
    report = _cli("report", "good.toml", cwd=tmp_path)
    assert report.returncode == 0 and "| quad | gd |" in report.stdout


def test_progress_bar_on_a_terminal_shows_count_rate_and_eta():
    import io

    from course_lib.experiments.cli import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    bar = Progress(3, "study demo", stream=term)
    for i, status in enumerate(("ok", "diverged", "failed")):
        bar({"key": f"final/w/m/best/{i}", "method": "m", "workload": "w", "status": status}, reused=False)
    summary = bar.close()
    shown = term.getvalue()
    assert "study demo" in shown and "3/3" in shown and "run/s" in shown and "<" in shown  # count, rate, ETA
    assert summary.startswith("3 run(s) computed (1 ok, 1 diverged, 1 failed), 0 reused")


def test_fewer_than_five_final_seeds_warn(tmp_path):
    with pytest.warns(UserWarning, match=r"study.seeds = 2: fewer than 5 final seeds"):
        assert _load(tmp_path, GOOD.replace("seeds = 5", "seeds = 2")).seeds == 2
