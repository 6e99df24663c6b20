"""Built-in workloads and the two method kinds: minibatch methods on finite sums, torch optimizers on an MLP."""
import textwrap

import numpy as np
import pytest

from course_lib.experiments import loads_study, run_study
from course_lib.experiments.workloads import logistic_regression, mlp_digits


def _study(tmp_path, text):
    path = tmp_path / "study.toml"
    path.write_text(textwrap.dedent(text))
    return loads_study(path.read_text(), path)


def test_logistic_workload_knows_its_optimum():
    w = logistic_regression(dataset="breast_cancer", lam=1e-2)
    x_star = w.problem.x_star
    assert w.evaluate("suboptimality", x_star) == pytest.approx(0.0, abs=1e-12)
    assert w.evaluate("suboptimality", w.initial_point(0)) > 0.1
    assert 0.9 < w.evaluate("test_accuracy", x_star) <= 1.0 and w.metrics["test_accuracy"] == "max"
    assert w.validation_metric("test_accuracy") == "val_accuracy"
    from sklearn.linear_model import LogisticRegression as SK

    p = w.problem
    sk = SK(C=1 / (p.n * p.lam), fit_intercept=False, tol=1e-12, max_iter=10000).fit(np.asarray(p.X), np.asarray(p.y))
    np.testing.assert_allclose(np.asarray(x_star), sk.coef_.ravel(), rtol=1e-5, atol=1e-7)


def test_minibatch_methods_are_counted_in_examples_and_epochs(tmp_path):
    study = _study(tmp_path, """
        [study]
        name = "sgd-vs-adam"
        seeds = 5
        [study.budget]
        unit = "epochs"
        amount = 2
        [study.tuning]
        trials = 3
        [[workload]]
        name = "cancer"
        factory = "course_lib.experiments.workloads:logistic_regression"
        args = { dataset = "breast_cancer", lam = 1e-2 }
        metric = "test_accuracy"
        [[method]]
        name = "sgd"
        target = "course_lib.experiments.methods:minibatch"
        fixed = { optimizer = "sgd", batch_size = 32 }
        [method.space]
        lr = { low = 1e-3, high = 1.0, log = true }
        [[method]]
        name = "adam"
        target = "course_lib.experiments.methods:minibatch"
        fixed = { optimizer = "adam", batch_size = 32 }
        [method.space]
        lr = { low = 1e-4, high = 1e-1, log = true }
    """)
    records = run_study(study, jobs=0, out=tmp_path / "out")
    n = logistic_regression(dataset="breast_cancer", lam=1e-2).n_examples
    assert n == 569 - 2 * 114  # breast cancer minus the validation and test splits
    for r in records:
        assert r["status"] == "ok", r["message"]
        spent = r["spent"]
        assert spent["examples"] == 32 * (2 * n // 32) and spent["gradients"] == 2 * n // 32  # whole batches only
        assert r["spent"]["spent"] == pytest.approx(spent["examples"] / n) and r["spent"]["spent"] <= 2
        assert 0.5 < r["final_metric"] <= 1.0
    finals = [r for r in records if r["phase"] == "final" and r["method"] == "adam"]
    assert len({r["final_metric"] for r in finals}) >= 1 and len({r["seed"] for r in finals}) == 5
    # tuning scored the validation accuracy (the workload pairs test_accuracy with val_accuracy)
    tune = [r for r in records if r["phase"] == "tune" and r["method"] == "adam"]
    best = max(tune, key=lambda r: (r["validation_metric"], -r["trial"]))
    assert finals[0]["config"] == best["config"]


MLP = """
[study]
name = "mlp"
seeds = 5
[study.budget]
unit = "gradients"
amount = 60
[study.tuning]
trials = 0
[[workload]]
name = "digits"
factory = "course_lib.experiments.workloads:mlp_digits"
args = { hidden = 16, batch_size = 32, eval_every = 10, n_train = 400 }
metric = "test_loss"
[[method]]
name = "torch-adam"
kind = "optimizer"
target = "torch.optim:Adam"
fixed = { lr = 0.01 }
tune = false
[[method]]
name = "course-adam"
kind = "optimizer"
target = "course_lib.experiments.methods:course_optimizer"
fixed = { optimizer = "adam", lr = 0.01 }
tune = false
[[method]]
name = "adabelief"
kind = "optimizer"
target = "pytorch_optimizer:AdaBelief"
fixed = { lr = 0.01 }
tune = false
"""


def test_torch_optimizers_train_the_mlp_and_course_adam_matches_torch_adam(tmp_path):
    records = run_study(_study(tmp_path, MLP), jobs=0, out=tmp_path / "out", report=False)
    by = {(r["method"], r["seed_index"]): r for r in records}
    for r in records:
        assert r["status"] == "ok", r["message"]
        assert r["spent"]["gradients"] == 60 and r["spent"]["examples"] == 60 * 32
        assert r["curve"]["budget"] == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
        assert r["final_metric"] < r["curve"]["metric"][0]  # training lowered the test loss
    for i in range(5):
        a, b = by["torch-adam", i], by["course-adam", i]
        np.testing.assert_allclose(a["curve"]["metric"], b["curve"]["metric"], rtol=1e-4)
    w = mlp_digits(hidden=16, n_train=400)
    assert w.n_examples == 400 and w.metrics["test_accuracy"] == "max"


def test_a_seconds_budget_ends_the_run_on_time(tmp_path):
    study = _study(tmp_path, """
        [study]
        name = "wall-clock"
        seeds = 5
        [study.budget]
        unit = "seconds"
        amount = 0.2
        [study.tuning]
        trials = 0
        [[workload]]
        name = "quad"
        factory = "course_lib.experiments.workloads:diagonal_quadratic"
        args = { dim = 10, kappa = 10 }
        metric = "suboptimality"
        log_every = 0.01
        [[method]]
        name = "gd"
        target = "course_lib.experiments.methods:gradient_descent"
        fixed = { step_size = 0.05 }
        tune = false
    """)
    records = run_study(study, jobs=0, out=tmp_path / "out", report=False)
    for r in records:
        assert r["status"] == "ok" and 0.2 <= r["spent"]["spent"] < 5
        assert r["spent"]["gradients"] > 10
