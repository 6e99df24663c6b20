"""The distributed kit's adapters (course_lib.distributed.study_methods) under the harness's counting oracle.

Facts: one worker with full, shuffled batches and no compression is gradient descent (course_lib.convex); local
SGD with period 1 equals uncompressed data-parallel SGD (averaging models after one step = averaging gradients);
top-k with k = d equals no compression; the bytes cap stops a run after exactly floor(max_bytes / step bytes) steps,
which the oracle's example count shows; bad arguments are named.
"""
import numpy as np
import pytest

from course_lib.convex import gradient_descent
from course_lib.distributed.study_methods import data_parallel_sgd, local_sgd_rounds
from course_lib.experiments.oracle import Budget, BudgetExhausted, CountingOracle, Curve
from course_lib.experiments.workloads import logistic_regression
from course_lib.validation import CourseError


def _oracle(amount=1e9):
    w = logistic_regression("breast_cancer", lam=1e-3)
    budget = Budget("examples", amount, n_examples=w.problem.n)
    return CountingOracle(w.problem, budget, lambda x: float(w.problem.value(x)), Curve()), w


def _run(method, amount=1e9, **hp):
    oracle, w = _oracle(amount)
    x0 = np.zeros(oracle.dim)
    oracle.start(x0)
    try:
        x = method(oracle, x0, seed=3, **hp)
    except BudgetExhausted:
        x = None
    return x, oracle, w


def test_one_worker_full_batches_is_gradient_descent():
    oracle, w = _oracle()
    n = w.problem.n
    x, oracle, w = _run(data_parallel_sgd, amount=20 * n, step_size=0.5, workers=1, batch_size=n,
                        sampling="shuffle")
    ref = gradient_descent(w.problem, np.zeros(oracle.dim), step_size=0.5, max_iter=20)  # 20 paid gradients, then x_20 is queried
    np.testing.assert_allclose(oracle.last_point, ref.x_final, rtol=1e-10, atol=1e-12)


def test_local_sgd_with_period_one_is_data_parallel_sgd():
    a, oa, _ = _run(local_sgd_rounds, step_size=0.3, workers=3, batch_size=8, period=1, max_bytes=3 * 30 * 8 * 25)
    b, ob, _ = _run(data_parallel_sgd, step_size=0.3, workers=3, batch_size=8, max_bytes=3 * 30 * 8 * 25)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert oa.budget.spent("examples") == 25 * 3 * 8


def test_top_k_with_k_equal_d_is_uncompressed():
    a, _, _ = _run(data_parallel_sgd, step_size=0.3, workers=2, compressor="top_k", k_fraction=1.0,
                   error_feedback=True, max_bytes=2 * 30 * 12 * 15)
    b, _, _ = _run(data_parallel_sgd, step_size=0.3, workers=2, max_bytes=2 * 30 * 8 * 15)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("compressor, step_bytes", [("none", 30 * 8), ("top_k", 3 * 12), ("random_k", 3 * 8),
                                                    ("scaled_sign", 4 + 8), ("qsgd", 30 + 8)])
def test_bytes_cap_counts_payloads(compressor, step_bytes):
    M, b, steps = 4, 16, 7
    _, oracle, _ = _run(data_parallel_sgd, step_size=0.3, workers=M, batch_size=b, compressor=compressor,
                        max_bytes=M * step_bytes * steps + M * step_bytes - 1)
    # the step that would exceed the cap computed its gradients (paid) but was not applied
    assert oracle.budget.spent("examples") == (steps + 1) * M * b


def test_errors_name_the_argument():
    with pytest.raises(CourseError, match="compressor must be one of"):
        _run(data_parallel_sgd, step_size=0.1, compressor="zip")
    with pytest.raises(CourseError, match="workers"):
        _run(local_sgd_rounds, step_size=0.1, workers=0)
