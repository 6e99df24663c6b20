"""HPO under an epoch budget: exact budgets, pruners' savings, the ridge hypergradient, Bergstra-Bengio's effect."""
import math

import numpy as np
import pytest

pytest.importorskip("optuna")
pytest.importorskip("torch")

from course_lib import hpo  # noqa: E402
from course_lib.validation import CourseError  # noqa: E402


class CountingTask:
    """A task whose validation error is a known function of (config, epochs trained): counts every epoch."""

    def __init__(self):
        self.epochs = 0

    def start(self, config, seed):
        return {"c": config, "e": 0}

    def epoch(self, st):
        self.epochs += 1
        st["e"] += 1
        x = st["c"]["x"]
        return (x - 0.3) ** 2 + 1.0 / st["e"]

    def test_error(self, st):
        return (st["c"]["x"] - 0.3) ** 2


SPACE = {"x": hpo.Param(0.0, 1.0)}


@pytest.mark.parametrize("sampler,pruner", [("random", "none"), ("tpe", "none"), ("grid", "none"),
                                            ("random", "asha"), ("random", "hyperband"),
                                            ("random", "successive_halving"), ("cmaes", "none"), ("gp", "none")])
def test_budget_is_counted_in_epochs_and_never_exceeded(sampler, pruner):
    task = CountingTask()
    res = hpo.search(task, SPACE, sampler=sampler, pruner=pruner, budget_epochs=60, max_epochs=9, seed=0)
    assert res.epochs == task.epochs <= 60
    if sampler != "grid":
        assert res.epochs >= 60 - 9  # runs until the budget (grid: until its points are used up)
    # the incumbent's reported error is the task's error for that configuration at some epoch count
    assert res.best_val_error >= (res.best_config["x"] - 0.3) ** 2 + 1.0 / 9 - 1e-12


def test_pruners_try_more_configurations_for_the_same_budget():
    runs = {p: hpo.search(CountingTask(), SPACE, pruner=p, budget_epochs=81, max_epochs=9, seed=1)
            for p in ("none", "asha", "hyperband", "successive_halving")}
    assert runs["none"].trials == 9
    for p in ("asha", "hyperband", "successive_halving"):
        assert runs[p].trials > runs["none"].trials, p


def test_synchronous_successive_halving_follows_its_schedule():
    task = CountingTask()
    res = hpo.search(task, SPACE, pruner="successive_halving", budget_epochs=9 * 1 + 3 * 2 + 1 * 6, max_epochs=9,
                     min_epochs=1, eta=3, seed=0)
    # one bracket: 9 configs x 1 epoch, best 3 to 3 epochs (+2 each), best 1 to 9 epochs (+6)
    assert res.trials == 9 and res.completed == 1 and res.epochs == 21


def test_grid_uses_the_largest_full_grid():
    pts = hpo.unit_grid(2, 10)
    assert pts.shape == (9, 2) and set(np.round(pts[:, 0], 6)) == {round(1 / 6, 6), 0.5, round(5 / 6, 6)}
    task = CountingTask()
    res = hpo.search(task, {"x": hpo.Param(0, 1), "y": hpo.Param(0, 1)}, sampler="grid", budget_epochs=90,
                     max_epochs=9, seed=0)
    assert res.trials == 9 and res.epochs == 81


def test_ridge_hypergradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    X, Xv = rng.standard_normal((50, 8)), rng.standard_normal((30, 8))
    w = rng.standard_normal(8)
    y, yv = X @ w + 0.5 * rng.standard_normal(50), Xv @ w + 0.5 * rng.standard_normal(30)
    for lam in (1e-3, 0.1, 1.0, 10.0):
        v, g = hpo.ridge_hypergradient(X, y, Xv, yv, lam)
        h = 1e-6 * lam
        fd = (hpo.ridge_hypergradient(X, y, Xv, yv, lam + h)[0] - hpo.ridge_hypergradient(X, y, Xv, yv, lam - h)[0]) \
            / (2 * h)
        assert g == pytest.approx(fd, rel=1e-6, abs=1e-10)
    np.testing.assert_allclose(hpo.ridge_solution(X, y, 0.1),
                               np.linalg.solve(X.T @ X + 0.1 * 50 * np.eye(8), X.T @ y), rtol=1e-10)


def test_hypergradient_descent_reaches_the_best_regularization():
    rng = np.random.default_rng(1)
    X, Xv = rng.standard_normal((40, 20)), rng.standard_normal((200, 20))
    w = rng.standard_normal(20) * 0.3
    y, yv = X @ w + 1.0 * rng.standard_normal(40), Xv @ w + 1.0 * rng.standard_normal(200)
    out = hpo.hypergradient_descent(X, y, Xv, yv, lam0=10.0, step_size=2.0, epochs=60)
    lams = np.logspace(-4, 2, 2000)
    vals = [hpo.ridge_hypergradient(X, y, Xv, yv, l)[0] for l in lams]
    assert out["val_loss"] <= min(vals) + 1e-6
    assert out["curve"][-1][0] == 60


def test_random_beats_grid_with_low_effective_dimension():
    """Bergstra and Bengio 2012: 2 of 6 coordinates matter; 64 trials: grid tries 2 values per axis, random 64."""
    f = hpo.effective_dimension_function(dim=6, effective=2, seed=0)
    grid_best = f(hpo.unit_grid(6, 64)).min()
    random_best = np.median([f(hpo.unit_random(6, 64, seed=s)).min() for s in range(20)])
    assert len(hpo.unit_grid(6, 64)) == 64
    assert random_best < grid_best / 5
    assert f(f.optimum) == 0.0


def test_real_task_trains_and_is_seeded():
    task = hpo.MLPDigitsTask(seed=0)
    a = hpo.search(task, {"step_size": hpo.Param(0.05, 0.5, log=True)}, budget_epochs=6, max_epochs=3, seed=2)
    b = hpo.search(task, {"step_size": hpo.Param(0.05, 0.5, log=True)}, budget_epochs=6, max_epochs=3, seed=2)
    assert a.best_val_error == b.best_val_error and a.best_config == b.best_config
    assert a.best_val_error < 0.3


def test_bad_input_is_named():
    with pytest.raises(CourseError, match="sampler"):
        hpo.search(CountingTask(), SPACE, sampler="bayes")
    with pytest.raises(CourseError, match="pruner"):
        hpo.search(CountingTask(), SPACE, pruner="median-ish")
    with pytest.raises(CourseError, match="empty"):
        hpo.search(CountingTask(), {})
    with pytest.raises(CourseError, match="budget_epochs"):
        hpo.search(CountingTask(), SPACE, budget_epochs=0)
    with pytest.raises(CourseError, match="low < high"):
        hpo.Param(1.0, 0.5)
