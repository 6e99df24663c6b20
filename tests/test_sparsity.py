"""Sparsity: H_s is the exact l0 projection, IHT is monotone and recovers sparse vectors, pruning."""
import itertools

import numpy as np
import pytest

from course_lib import sparsity as sp
from course_lib.backend import asarray, to_numpy
from course_lib.nets import MLP
from course_lib.problems import LeastSquares
from course_lib.validation import CourseError


def _compressed_sensing(seed=0, m=160, n=256, s=5):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n)) / np.sqrt(m)
    x = np.zeros(n)
    x[rng.choice(n, s, replace=False)] = rng.standard_normal(s)
    return A, x


def test_hard_threshold_is_the_exact_l0_projection(backend):
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.standard_normal(6)
        best = min((np.linalg.norm(x - np.where(np.isin(np.arange(6), S), x, 0.0)), S)
                   for S in itertools.combinations(range(6), 2))
        got = to_numpy(sp.hard_threshold(asarray(x, backend=backend), 2))
        assert np.count_nonzero(got) == 2
        assert np.linalg.norm(x - got) == pytest.approx(best[0], rel=1e-15)
        np.testing.assert_array_equal(to_numpy(sp.hard_threshold(asarray(got, backend=backend), 2)), got)


def test_hard_threshold_ties_and_mask(backend):
    x = asarray([1.0, -3.0, 3.0, 0.5, 2.0], backend=backend)
    np.testing.assert_array_equal(to_numpy(sp.hard_threshold(x, 1)), [0, -3.0, 0, 0, 0])  # tie: lower index
    np.testing.assert_array_equal(to_numpy(sp.hard_threshold(x, 0)), np.zeros(5))
    mask = asarray([False, True, True, True, False], backend=backend, dtype="bool")
    np.testing.assert_array_equal(to_numpy(sp.hard_threshold(x, 1, mask)), [1.0, -3.0, 0, 0, 2.0])
    with pytest.raises(CourseError, match="s=4 exceeds"):
        sp.hard_threshold(x, 4, mask)
    assert sp.sparsity_of(sp.hard_threshold(x, 1, mask), mask) == pytest.approx(2 / 3)


@pytest.mark.parametrize("method", [sp.iht, sp.accelerated_iht])
def test_iht_recovers_sparse_vector_and_is_monotone(backend, method):
    A, x_true = _compressed_sensing()
    p = LeastSquares(A, A @ x_true, backend=backend)
    tr = method(p, p.zeros(), 5, max_iter=400)
    np.testing.assert_allclose(to_numpy(tr.x_final), x_true, atol=1e-10)
    assert np.all(np.diff(tr.f) <= 1e-15 * tr.f[0])  # f(x_{k+1}) <= f(x_k) at every step (step 1/L)
    assert np.count_nonzero(to_numpy(tr.x_final)) == 5


def test_acceleration_needs_fewer_iterations_and_backends_agree():
    A, x_true = _compressed_sensing(seed=2)
    p = LeastSquares(A, A @ x_true)
    k_plain = np.argmax(sp.iht(p, p.zeros(), 5, max_iter=400).f < 1e-20)
    acc = sp.accelerated_iht(p, p.zeros(), 5, max_iter=400)
    k_acc = np.argmax(acc.f < 1e-20)
    assert 0 < k_acc < k_plain / 2
    acc_t = sp.accelerated_iht(p.to("torch"), p.to("torch").zeros(), 5, max_iter=60)
    np.testing.assert_allclose(acc_t.f, acc.f[:61], rtol=1e-10, atol=1e-25)


def test_step_size_above_one_over_L_is_refused():
    A, x_true = _compressed_sensing()
    p = LeastSquares(A, A @ x_true)
    with pytest.raises(CourseError, match="step_size"):
        sp.iht(p, p.zeros(), 5, step_size=1.5 / p.L)


def _mlp():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 6))
    y = (X[:, 0] + X[:, 1] > 0).astype(float) + (X[:, 2] > 0.5)
    return MLP(X, y, hidden=(8,))


@pytest.mark.parametrize("method", ["magnitude", "iht", "accelerated_iht"])
def test_prune_layer_reaches_exact_sparsity_and_keeps_other_layers(method):
    net = _mlp()
    theta = net.init(seed=1)
    mask = to_numpy(net.weight_mask(0))
    pruned, tr = sp.prune_layer(net, theta, layer=0, sparsity=0.75, method=method, step_size=0.5, max_iter=50)
    pruned = to_numpy(pruned)
    assert np.count_nonzero(pruned[mask]) == round(0.25 * mask.sum())
    if method == "magnitude":
        np.testing.assert_array_equal(pruned[~mask], theta[~mask])
        assert tr is None
    else:  # retraining from the magnitude-pruned point only lowers the loss
        magnitude, _ = sp.prune_layer(net, theta, 0, 0.75, method="magnitude")
        assert tr.f[0] == pytest.approx(float(net.value(magnitude)), rel=1e-14)
        assert tr.f[-1] < tr.f[0]
