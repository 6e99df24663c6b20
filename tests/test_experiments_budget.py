"""The budget is counted in the oracle: exact spends, exact time-to-target, zeroth order, SAM (torch and vector)."""
import json
import math
import textwrap

import numpy as np
import pytest

from course_lib.experiments import loads_study, run_study
from course_lib.experiments.oracle import Budget, BudgetExhausted, CountingOracle, Curve
from course_lib.experiments.workloads import diagonal_quadratic

GD_VS_NESTEROV = """
[study]
name = "gd-vs-nesterov"
seeds = 5
baseline = "gd"
[study.budget]
unit = "gradients"
amount = 600
[study.tuning]
trials = 6
[[workload]]
name = "quadratic-k100"
factory = "course_lib.experiments.workloads:diagonal_quadratic"
args = { dim = 20, kappa = 100 }
metric = "suboptimality"
target = 1e-4
[[method]]
name = "gd"
target = "course_lib.experiments.methods:gradient_descent"
[method.space]
step_size = { low = 1e-3, high = 1.9e-2, log = true }
[[method]]
name = "nesterov"
target = "course_lib.experiments.methods:nesterov"
[method.space]
step_size = { low = 1e-3, high = 1e-2, log = true }
"""


def _study(tmp_path, text, name="study.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return loads_study(path.read_text(), path)


def _final(records, method):
    return sorted((r for r in records if r["method"] == method and r["phase"] == "final"),
                  key=lambda r: r["seed_index"])


def _gd_values(lam, t, n):
    """f(x_k) for k = 0..n: each coordinate of GD on 1/2 sum lam_i x_i^2 is x_{k,i} = (1 - t lam_i)^k (x0 = 1)."""
    k = np.arange(n + 1)[:, None]
    return 0.5 * np.sum(lam * (1 - t * lam) ** (2 * k), axis=1)


def _nesterov_query_values(lam, t, n):
    """f(y_k), k = 0..n, from the coordinate recurrences of FISTA with g = 0 (Beck-Teboulle 2009):

    x_{k+1} = (1 - t lam) y_k, y_{k+1} = x_{k+1} + (s_k - 1)/s_{k+1} (x_{k+1} - x_k), s_0 = 1, y_0 = x_0 = 1.
    """
    x = np.ones_like(lam)
    y = x.copy()
    s = 1.0
    out = [0.5 * np.sum(lam * y * y)]
    for _ in range(n):
        x_new = (1 - t * lam) * y
        s_new = (1 + math.sqrt(1 + 4 * s * s)) / 2
        y = x_new + (s - 1) / s_new * (x_new - x)
        x, s = x_new, s_new
        out.append(0.5 * np.sum(lam * y * y))
    return np.array(out)


def test_gd_vs_nesterov_time_to_target_is_the_exact_iteration_count(tmp_path):
    study = _study(tmp_path, GD_VS_NESTEROV)
    records = run_study(study, jobs=0, out=tmp_path / "out", report=False)
    lam = diagonal_quadratic(dim=20, kappa=100).problem.eigenvalues
    assert len(records) == 2 * (6 + 5)
    ttt = {}
    for method, values in (("gd", _gd_values), ("nesterov", _nesterov_query_values)):
        final = _final(records, method)
        assert len(final) == 5
        t = final[0]["config"]["step_size"]
        f = values(lam, t, 600)
        expected = int(np.argmax(f <= 1e-4)) if np.any(f <= 1e-4) else None
        for r in final:
            assert r["status"] == "ok"
            assert r["spent"]["gradients"] == 600  # both spent exactly the budget
            assert r["time_to_target"] == expected
            assert r["final_metric"] == pytest.approx(f[600], rel=1e-9, abs=1e-300)
        ttt[method] = expected
        # the tuned step is the best of the 6 trials on the tuning score (final suboptimality)
        tune = [r for r in records if r["method"] == method and r["phase"] == "tune"]
        best = min(tune, key=lambda r: r["validation_metric"])
        assert best["config"] == final[0]["config"]
    assert ttt["gd"] is not None and ttt["nesterov"] is not None
    assert ttt["nesterov"] < ttt["gd"]  # Nesterov wins on the ill-conditioned instance


def test_budget_exhausted_before_the_call_that_exceeds_it():
    w = diagonal_quadratic(dim=3, kappa=10)
    budget = Budget("gradients", 3)
    oracle = CountingOracle(w.problem, budget, lambda x: w.evaluate("suboptimality", x), Curve())
    x = w.initial_point(0)
    for _ in range(3):
        oracle.grad(x)
    oracle.value(x)  # free under a gradient budget, but counted
    with pytest.raises(BudgetExhausted):
        oracle.grad(x)
    assert budget.counts["gradients"] == 3 and budget.counts["function_values"] == 1
    assert budget.spent() == 3.0
    assert not hasattr(oracle, "x_star") and not hasattr(oracle, "f_star")


TEAM = '''
import numpy as np


def two_point(oracle, x0, *, seed, step_size, smoothing=1e-3):
    """A team's zeroth-order method: g = (f(x + h u) - f(x - h u)) / (2h) u, u uniform on the sphere."""
    rng = np.random.default_rng(seed)
    x = np.array(x0, dtype=float)
    while True:
        oracle.observe(x)  # the curve follows the iterates, not the perturbed query points
        u = rng.standard_normal(x.shape)
        u /= np.linalg.norm(u)
        d = (oracle.value(x + smoothing * u) - oracle.value(x - smoothing * u)) / (2 * smoothing)
        x = x - step_size * d * u
'''

ZO_STUDY = """
[study]
name = "zeroth-order"
seeds = 5
[study.budget]
unit = "function_values"
amount = 201
[study.tuning]
trials = 2
[[workload]]
name = "quad"
factory = "course_lib.experiments.workloads:diagonal_quadratic"
args = { dim = 4, kappa = 10 }
metric = "suboptimality"
[[method]]
name = "two-point"
target = "team_zo:two_point"
[method.space]
step_size = { low = 0.01, high = 0.05, log = true }
[[method]]
name = "nelder-mead"
target = "course_lib.experiments.methods:nelder_mead"
[method.space]
initial_step = { choices = [0.05, 0.1] }
[[method]]
name = "cma-es"
target = "course_lib.experiments.methods:cma_es"
fixed = { popsize = 6 }
[method.space]
sigma0 = { low = 0.1, high = 0.5 }
"""


def test_zeroth_order_methods_spend_exactly_the_function_value_budget(tmp_path):
    (tmp_path / "team_zo.py").write_text(TEAM)
    study = _study(tmp_path, ZO_STUDY)
    records = run_study(study, jobs=0, out=tmp_path / "out", report=False)
    assert len(records) == 3 * (2 + 5)
    for r in records:
        assert r["status"] == "ok", r["message"]
        assert r["spent"]["function_values"] == 201
        assert r["spent"]["gradients"] == 0
        f0 = r["curve"]["metric"][0]
        assert r["final_metric"] < f0  # they did make progress on function values alone
    two = _final(records, "two-point")
    # observed iterates only: two values per step, so x_0, x_1, ... are logged at 0, 2, 4, ..., 200; the run
    # ends at x_100 with 201 values spent (the 202nd was refused)
    curve = two[0]["curve"]
    assert curve["budget"][:3] == [0.0, 2.0, 4.0] and curve["budget"][-2:] == [200.0, 201.0]
    assert curve["metric"][-1] == curve["metric"][-2] == two[0]["final_metric"]


SAM_STUDY = """
[study]
name = "sam-budget"
seeds = 5
[study.budget]
unit = "gradients"
amount = 41
[study.tuning]
trials = 0
[[workload]]
name = "digits"
factory = "course_lib.experiments.workloads:mlp_digits"
args = { hidden = 16, batch_size = 32, eval_every = 5, n_train = 400 }
metric = "test_accuracy"
[[method]]
name = "sam"
kind = "optimizer"
target = "course_lib.experiments.methods:sam_optimizer"
fixed = { base = "torch.optim.SGD", lr = 0.1, rho = 0.05 }
closure = true
tune = false
[[method]]
name = "sgd"
kind = "optimizer"
target = "torch.optim:SGD"
fixed = { lr = 0.1 }
tune = false
"""


def test_sam_pays_two_gradients_per_step_and_is_cut_exactly(tmp_path):
    study = _study(tmp_path, SAM_STUDY)
    records = run_study(study, jobs=0, out=tmp_path / "out", report=False)
    for r in records:
        assert r["status"] == "ok", r["message"]
        assert r["spent"]["gradients"] == 41
        assert r["spent"]["examples"] == 41 * 32
    sam, sgd = _final(records, "sam"), _final(records, "sgd")
    # SAM: 20 full steps (40 gradients) + the first gradient of step 21, whose second gradient was refused;
    # SGD: 41 steps. Evaluations every 5 steps: SAM's last one at step 20 = 40 gradients, SGD's at 40.
    assert sam[0]["curve"]["budget"][-2] == 40.0 and sgd[0]["curve"]["budget"][-2] == 40.0
    assert sam[0]["curve"]["budget"][1] == 10.0 and sgd[0]["curve"]["budget"][1] == 5.0
    # the seeds differ (weights, minibatches), and a rerun of a seed is bit-identical
    assert len({r["final_metric"] for r in sgd}) > 1
    again = run_study(study, jobs=0, out=tmp_path / "again", report=False)
    strip = lambda rs: sorted((json.dumps({k: v for k, v in r.items() if k != "timing"}, sort_keys=True)
                               for r in rs))  # noqa: E731
    assert strip(records) == strip(again)


def test_full_batch_sam_on_a_vector_problem_spends_exactly_the_budget(tmp_path):
    text = GD_VS_NESTEROV.replace('amount = 600', 'amount = 101').replace('trials = 6', 'trials = 2')
    text = text.replace('name = "nesterov"\ntarget = "course_lib.experiments.methods:nesterov"',
                        'name = "sam"\ntarget = "course_lib.experiments.methods:sam"')
    study = _study(tmp_path, text)
    records = run_study(study, jobs=0, out=tmp_path / "out", report=False)
    for r in _final(records, "sam"):
        assert r["spent"]["gradients"] == 101  # 1 + 2 per step: 50 steps, then the refused call
    lam = diagonal_quadratic(dim=20, kappa=100).problem.eigenvalues
    gd = _final(records, "gd")[0]
    assert gd["final_metric"] == pytest.approx(_gd_values(lam, gd["config"]["step_size"], 101)[-1], rel=1e-9)


def test_uncounted_calls_are_capped_so_a_run_always_ends(tmp_path):
    # Nelder-Mead calls only function values; under a *gradient* budget they are free, so it would never stop
    text = ZO_STUDY.replace('unit = "function_values"', 'unit = "gradients"').replace("amount = 201", "amount = 20")
    (tmp_path / "team_zo.py").write_text(TEAM)
    records = run_study(_study(tmp_path, text), jobs=0, out=tmp_path / "out", report=False)
    for r in records:
        assert r["status"] == "failed"
        assert r["message"].startswith("TooManyFreeCalls: 1200 function_values calls, which a gradients budget")
        assert r["spent"]["function_values"] == 1200 and r["spent"]["gradients"] == 0


def test_a_torch_workload_cannot_be_budgeted_in_function_values(tmp_path):
    text = SAM_STUDY.replace('unit = "gradients"', 'unit = "function_values"')
    with pytest.raises(ValueError, match="study.budget.unit = 'function_values' cannot budget workload 'digits'"):
        run_study(_study(tmp_path, text), jobs=0, out=tmp_path / "out")


def test_reused_function_values_never_go_stale():
    """The oracle reuses f(x) the method just computed at the same point, compared by value, not identity."""
    w = diagonal_quadratic(dim=4, kappa=10)
    curve = Curve()
    oracle = CountingOracle(w.problem, Budget("gradients", 10), lambda x: w.evaluate("suboptimality", x), curve,
                            value_offset=0.0)
    x = w.initial_point(0).copy()
    f_x = float(oracle.value(x))
    oracle.grad(x)  # logged from the cached value
    x *= 0.5  # an in-place update: same object, new point
    oracle.grad(x)
    assert curve.metric == [f_x, pytest.approx(f_x / 4, rel=1e-15)]
