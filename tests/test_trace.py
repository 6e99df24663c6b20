"""course_lib.trace: what a run records, divergence detection, stopping, thinning; and the
problem -> algorithm -> Trace pattern checked against GD's textbook guarantees."""
import warnings

import numpy as np
import pytest

from course_lib.backend import to_numpy
from course_lib.convex import gradient_descent
from course_lib.problems import LeastSquares, Quadratic
from course_lib import datasets
from course_lib.trace import Recorder, Trace
from course_lib.validation import CourseError, DivergenceError


def _run(values, grads=None, **kw):
    """Feed a Recorder a scripted sequence of f values (and gradient norms); return (trace, stopped_at)."""
    n = len(values) - 1
    rec = Recorder("scripted", np.zeros(2), max_iter=n, params={"step_size": 0.5}, **kw)
    stopped = None
    for k, f in enumerate(values):
        gn = None if grads is None else grads[k]
        if not rec.record(k, np.full(2, float(k)), f=f, grad_norm=gn, calls=1):
            stopped = k
            break
    return rec.finish(np.full(2, float(k))), stopped


# ---------------------------------------------------------------------------------------------
# recording
# ---------------------------------------------------------------------------------------------
def test_records_every_iteration_by_default():
    tr, stopped = _run([5.0, 4.0, 3.0, 2.0], grads=[4.0, 3.0, 2.0, 1.0])
    assert stopped is None and tr.status == "max_iter" and "max_iter=3" in tr.message
    np.testing.assert_array_equal(tr.iteration, [0, 1, 2, 3])
    np.testing.assert_array_equal(tr.f, [5.0, 4.0, 3.0, 2.0])
    np.testing.assert_array_equal(tr.grad_norm, [4.0, 3.0, 2.0, 1.0])
    np.testing.assert_array_equal(tr.oracle_calls, [1, 2, 3, 4])
    assert np.all(np.diff(tr.time) >= 0)
    assert len(tr) == 4 and tr.n_iter == 3 and tr.f_final == 2.0
    np.testing.assert_array_equal(tr.gap(1.0), [4.0, 3.0, 2.0, 1.0])
    assert tr.params == {"step_size": 0.5} and tr.method == "scripted"
    assert "status='max_iter'" in repr(tr)


def test_grad_norm_is_computed_from_grad_and_extra_series_are_kept():
    rec = Recorder("m", np.zeros(2), max_iter=1)
    rec.record(0, np.zeros(2), f=1.0, grad=np.array([3.0, 4.0]), step_size=0.1)
    rec.record(1, np.zeros(2), f=0.5, grad=np.array([0.0, 0.0]), step_size=0.2)
    tr = rec.finish(np.zeros(2))
    np.testing.assert_array_equal(tr.grad_norm, [5.0, 0.0])
    np.testing.assert_array_equal(tr.info["step_size"], [0.1, 0.2])


def test_min_grad_norm_is_a_running_minimum():
    tr, _ = _run([1.0] * 5, grads=[3.0, 1.0, 2.0, 0.5, 4.0])
    np.testing.assert_array_equal(tr.min_grad_norm(), [3.0, 1.0, 1.0, 0.5, 0.5])


def test_record_every_thins_but_keeps_first_and_last():
    tr, _ = _run(list(np.linspace(10, 1, 11)), record_every=4)
    np.testing.assert_array_equal(tr.iteration, [0, 4, 8, 10])
    np.testing.assert_allclose(tr.f, [10.0, 6.4, 2.8, 1.0])
    np.testing.assert_array_equal(tr.oracle_calls, [1, 5, 9, 11])  # calls still count every iteration


@pytest.mark.parametrize("keep_x, expected", [(True, [0, 1, 2, 3, 4, 5, 6]), (False, None),
                                              (3, [0, 3, 6]), (4, [0, 4, 6]), ("auto", [0, 1, 2, 3, 4, 5, 6])])
def test_keep_x(keep_x, expected):
    tr, _ = _run([7.0, 6, 5, 4, 3, 2, 1], keep_x=keep_x)
    if expected is None:
        assert tr.x is None and len(tr.x_iteration) == 0
    else:
        np.testing.assert_array_equal(tr.x_iteration, expected)
        np.testing.assert_array_equal(tr.x[:, 0], expected)  # the scripted x_k is (k, k)
    np.testing.assert_array_equal(tr.x_final, [6.0, 6.0])


def test_keep_x_auto_depends_on_dimension():
    small = Recorder("m", np.zeros(10), max_iter=1)
    big = Recorder("m", np.zeros(11), max_iter=1)
    assert small.keep_every == 1 and big.keep_every == 0


def test_recording_beyond_max_iter_grows_the_arrays():
    rec = Recorder("m", np.zeros(1), max_iter=2)
    for k in range(10):
        rec.record(k, np.zeros(1), f=float(10 - k), extra_thing=k)
    tr = rec.finish(np.zeros(1))
    np.testing.assert_array_equal(tr.iteration, np.arange(10))
    np.testing.assert_array_equal(tr.info["extra_thing"], np.arange(10))


# ---------------------------------------------------------------------------------------------
# stopping and divergence
# ---------------------------------------------------------------------------------------------
def test_tol_stops_with_converged():
    tr, stopped = _run([5.0, 4, 3, 2, 1], grads=[1.0, 0.5, 1e-7, 1e-8, 1e-9], tol=1e-6)
    assert stopped == 2 and tr.status == "converged"
    assert "<= tol = 1e-06 at iteration 2" in tr.message
    assert tr.grad_norm[-1] <= 1e-6 < tr.grad_norm[-2]
    assert tr.n_iter == 2


def test_divergence_raises_with_the_trace_attached():
    with pytest.raises(DivergenceError, match=r"diverged at iteration 2.*Try a smaller step size than 0.5") as err:
        _run([1.0, 10.0, 1e12, 1e13], divergence_factor=1e10)
    e = err.value
    assert e.iteration == 2 and e.value == 1e12
    assert isinstance(e.trace, Trace) and e.trace.status == "diverged"
    np.testing.assert_array_equal(e.trace.f, [1.0, 10.0, 1e12])
    assert "on_divergence='stop'" in str(e)


def test_nan_is_divergence_even_between_thinned_records():
    tr, stopped = _run([1.0, 0.9, 0.8, float("nan"), 0.1, 0.1, 0.1], record_every=5, on_divergence="stop")
    assert stopped == 3 and tr.status == "diverged"
    np.testing.assert_array_equal(tr.iteration, [0, 3])  # the diverging record is forced
    assert np.isnan(tr.f[-1])


def test_growth_below_the_factor_is_not_divergence():
    tr, stopped = _run([1.0, 100.0, 1000.0], divergence_factor=1e4)
    assert stopped is None and tr.status == "max_iter"


def test_on_divergence_stop_and_warn():
    tr, stopped = _run([1.0, float("inf"), 0.0], on_divergence="stop")
    assert stopped == 1 and tr.status == "diverged" and "diverged at iteration 1" in tr.message
    with pytest.warns(RuntimeWarning, match="diverged at iteration 1"):
        tr, stopped = _run([1.0, float("inf"), 0.0], on_divergence="warn")
    assert stopped == 1 and tr.status == "diverged"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _run([1.0, 0.5], on_divergence="warn")  # no warning for a healthy run


def test_recorder_bad_arguments():
    with pytest.raises(CourseError, match="on_divergence must be 'raise', 'warn' or 'stop', got 'ignore'"):
        Recorder("m", np.zeros(1), 5, on_divergence="ignore")
    with pytest.raises(CourseError, match="record_every must be >= 1, got 0"):
        Recorder("m", np.zeros(1), 5, record_every=0)


# ---------------------------------------------------------------------------------------------
# the pattern end to end: gradient descent meets its guarantees
# ---------------------------------------------------------------------------------------------
def test_gd_on_a_quadratic_meets_the_sublinear_and_linear_bounds(backend):
    q = Quadratic.random(20, cond=100.0, seed=0, backend=backend)
    x0 = q.asarray(np.full(20, 3.0))
    tr = gradient_descent(q, x0, step_size=1.0 / q.L, max_iter=300)
    assert tr.status == "max_iter" and tr.n_iter == 300 and len(tr) == 301
    r0 = float(np.sum((to_numpy(x0) - to_numpy(q.x_star)) ** 2))
    k = tr.iteration[1:]
    gap = tr.gap(q.f_star)[1:]
    assert np.all(gap <= q.L * r0 / (2 * k)), "f(x_k) - f* <= L ||x0 - x*||^2 / (2k) must hold at every k"
    assert np.all(np.diff(tr.f) <= 1e-15)  # monotone decrease with step 1/L
    # the iterates (kept every 50th record) meet ||x_k - x*||^2 <= (1 - mu/L)^k ||x0 - x*||^2
    tr2 = gradient_descent(q, x0, max_iter=300, keep_x=50)
    dist2 = np.sum((tr2.x - to_numpy(q.x_star)) ** 2, axis=1)
    assert np.all(dist2 <= (1 - q.mu / q.L) ** tr2.x_iteration * r0 * (1 + 1e-12))
    np.testing.assert_array_equal(tr2.x_iteration, [0, 50, 100, 150, 200, 250, 300])


def test_gd_trace_is_deterministic_and_agrees_across_backends(torch_backend):
    A, b, _ = datasets.make_regression(n=60, dim=8, seed=3, cond=20.0)
    p = LeastSquares(A, b, lam=1e-2)
    ref = gradient_descent(p, p.zeros(), max_iter=100)
    again = gradient_descent(p, p.zeros(), max_iter=100)
    np.testing.assert_array_equal(ref.f, again.f)
    pt = p.to(torch_backend)
    tt = gradient_descent(pt, pt.zeros(), max_iter=100)
    np.testing.assert_allclose(tt.f, ref.f, rtol=1e-12)
    np.testing.assert_allclose(tt.grad_norm, ref.grad_norm, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(to_numpy(tt.x_final), to_numpy(ref.x_final), rtol=1e-12, atol=1e-14)


def test_gd_divergence_is_detected_and_refused_steps_teach():
    q = Quadratic(np.diag([1.0, 4.0]), np.zeros(2))
    with pytest.raises(CourseError, match=r"step_size=0.6 is >= 2/L = 0.5"):
        gradient_descent(q, np.ones(2), step_size=0.6)
    with pytest.raises(DivergenceError) as err:
        gradient_descent(q, np.ones(2), step_size=0.6, check_step=False, max_iter=1000)
    tr = err.value.trace
    # |1 - 0.6 * 4| = 1.4 per step: f grows like 1.4^(2k); 1e10 * (1 + f0) is passed after ~35 steps
    assert tr.status == "diverged" and 30 <= tr.n_iter <= 40
    assert np.all(np.diff(tr.f) > 0)
    tr = gradient_descent(q, np.ones(2), step_size=0.6, check_step=False, on_divergence="stop")
    assert tr.status == "diverged" and tr.x is not None and tr.x_iteration[-1] == tr.n_iter
