"""Chapter 6 in one process: compression operators' properties, error feedback, DC-ASGD and its simulation.

Facts checked: top-k's contraction ||x - C(x)||^2 <= (1 - k/d) ||x||^2 (Stich et al. 2018), scaled sign's exact
identity ||x - C(x)||^2 = (1 - ||x||_1^2 / (d ||x||^2)) ||x||^2, unbiasedness of random-k and QSGD (mean of many
seeded draws within 5 standard errors) and QSGD's variance bound (Alistarh et al. 2017), payload sizes, decoding
of the wire format, error feedback's invariant, and the simulated asynchronous path against torch.optim.SGD.
"""
import math

import numpy as np
import pytest
import torch

from course_lib.distributed import compression as C
from course_lib.distributed.async_sgd import dc_asgd_update, delay_schedule, simulate_async_sgd
from course_lib.distributed.ddp import sgd_reference
from course_lib.distributed.workload import digits_workload
from course_lib.validation import CourseError


def _x(d=50, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(d))


@pytest.mark.parametrize("k", [1, 5, 25, 50])
def test_top_k_keeps_the_largest_and_contracts(k):
    for seed in range(5):
        x = _x(50, seed)
        m = C.top_k(x, k)
        kept = np.sort(np.argsort(-np.abs(x.numpy()))[:k])
        np.testing.assert_array_equal(np.sort(m.payload[1].numpy()), kept)
        assert torch.count_nonzero(m.dense) == k
        assert float(((x - m.dense) ** 2).sum()) <= (1 - k / 50) * float((x ** 2).sum()) + 1e-12
        assert m.nbytes == k * (8 + 4)
        torch.testing.assert_close(C.decode("top_k", m.payload, m), m.dense, rtol=0, atol=0)


def test_scaled_sign_identity_bytes_and_bits():
    for d in (1, 7, 8, 65, 650):
        x = _x(d, d)
        m = C.scaled_sign(x)
        nx2, l1 = float((x ** 2).sum()), float(x.abs().sum())
        assert float(((x - m.dense) ** 2).sum()) == pytest.approx((1 - l1 ** 2 / (d * nx2)) * nx2, rel=1e-10)
        assert m.nbytes == math.ceil(d / 8) + 8
        torch.testing.assert_close(C.decode("scaled_sign", m.payload, m), m.dense, rtol=0, atol=0)
    m = C.scaled_sign(torch.tensor([0.0, -2.0, 1.0]))
    torch.testing.assert_close(m.dense, torch.tensor([1.0, -1.0, 1.0], dtype=torch.float32))


def test_random_k_is_unbiased_with_shared_indices():
    x, n = _x(20, 1), 5000
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([C.random_k(x, 5, g).dense for _ in range(n)])
    se = x.abs() * math.sqrt(20 / 5 - 1) / math.sqrt(n)  # Var C(x)_i = x_i^2 (d/k - 1)
    assert torch.all((draws.mean(0) - x).abs() <= 5 * se)
    a, b = C.random_k(x, 5, torch.Generator().manual_seed(3)), C.random_k(x, 5, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a.meta["indices"], b.meta["indices"])  # the same seed picks the same coordinates
    assert a.nbytes == 5 * 8
    torch.testing.assert_close(C.decode("random_k", a.payload, a), a.dense, rtol=0, atol=0)


@pytest.mark.parametrize("levels", [1, 4])
def test_qsgd_is_unbiased_and_within_its_variance_bound(levels):
    d, n = 16, 5000
    x = _x(d, 2)
    g = torch.Generator().manual_seed(1)
    draws = torch.stack([C.qsgd(x, levels, g).dense for _ in range(n)])
    sd = draws.std(0)
    assert torch.all((draws.mean(0) - x).abs() <= 5 * sd / math.sqrt(n) + 1e-12)
    second = float(((draws - x) ** 2).sum(1).mean())
    assert second <= min(d / levels ** 2, math.sqrt(d) / levels) * float((x ** 2).sum())
    m = C.qsgd(x, levels, g)
    assert m.nbytes == d + 8 and m.payload[0].dtype == torch.int8
    torch.testing.assert_close(C.decode("qsgd", m.payload, m), m.dense, rtol=0, atol=0)
    assert torch.all(C.qsgd(torch.zeros(5, dtype=torch.float64), levels, g).dense == 0)


def test_error_feedback_invariant_and_nothing_is_lost():
    rng = np.random.default_rng(5)
    grads = [torch.from_numpy(rng.standard_normal(30)) for _ in range(40)]
    for op, opts in [(C.top_k, {"k": 3}), (C.scaled_sign, {}), (C.qsgd, {"levels": 2,
                                                                      "generator": torch.Generator().manual_seed(0)})]:
        e, sent = torch.zeros(30, dtype=torch.float64), torch.zeros(30, dtype=torch.float64)
        for g in grads:
            m, e_new = C.error_feedback(op, g, e, **opts)
            torch.testing.assert_close(m.dense + e_new, g + e, rtol=1e-14, atol=1e-14)
            sent, e = sent + m.dense, e_new
        torch.testing.assert_close(sent + e, torch.stack(grads).sum(0), rtol=1e-12, atol=1e-12)
    # top-k's residual stays bounded: ||e||^2 <= 4 (1 - delta) / delta^2 max ||g||^2, delta = k/d
    # (Stich, Cordonnier & Jaggi, NeurIPS 2018, Lemma 3)
    e = torch.zeros(30, dtype=torch.float64)
    for g in grads:
        _, e = C.error_feedback(C.top_k, g, e, k=3)
    delta = 3 / 30
    assert float((e ** 2).sum()) <= 4 * (1 - delta) / delta ** 2 * max(float((g ** 2).sum()) for g in grads)


def test_bad_arguments_are_named():
    with pytest.raises(CourseError, match="k must be at most"):
        C.top_k(_x(5), 6)
    with pytest.raises(CourseError, match="1-D"):
        C.scaled_sign(torch.zeros(2, 2))
    with pytest.raises(CourseError, match="levels"):
        C.qsgd(_x(5), 200, torch.Generator())
    with pytest.raises(CourseError, match="hook must be one of"):
        C.make_hook("gzip")
    with pytest.raises(CourseError, match="needs k="):
        C.make_hook("top_k")
    with pytest.raises(CourseError, match="delays"):
        delay_schedule(5, [])


def test_dc_asgd_update_closed_form():
    x, xs, g = np.array([1.0, -2.0]), np.array([0.5, -1.0]), np.array([2.0, 3.0])
    np.testing.assert_allclose(dc_asgd_update(x, xs, g, 0.1, 0.5), x - 0.1 * (g + 0.5 * g * g * (x - xs)))
    np.testing.assert_allclose(dc_asgd_update(x, xs, g, 0.1, 0.0), x - 0.1 * g)
    # on f = 1/2 sum h_i x_i^2 the correction is exact when lam * g * g equals the (diagonal) Hessian h:
    # then the update is a gradient step at the current x, whatever the stale point
    h = np.array([2.0, 0.5])
    xs = np.array([3.0, -1.0])
    g_stale = h * xs
    lam = h / (g_stale * g_stale)  # per-coordinate lambda making lam g*g = diag(h)
    x = np.array([2.0, 1.0])
    np.testing.assert_allclose(dc_asgd_update(x, xs, g_stale, 0.1, lam), x - 0.1 * h * x)
    assert delay_schedule(6, [0, 2]) == [(0, 0), (1, 0), (0, 2), (1, 1), (0, 4), (1, 3)]


def test_simulated_async_without_delay_is_sgd():
    w = digits_workload()
    tr = simulate_async_sgd(w, delay_schedule(30, [0]), 1, 0.5, batch_size=16, log_every=10)
    ref = sgd_reference(w, 30, 0.5, 16, world_size=1, log_every=10)
    torch.testing.assert_close(tr.x_final, ref.x_final, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(tr.f, ref.f, rtol=1e-12)
    assert list(tr.info["staleness"]) == [0, 0, 0, 0]
    stale = simulate_async_sgd(w, delay_schedule(30, [0, 4]), 2, 0.5, batch_size=16, log_every=10)
    assert stale.info["staleness"][-1] == 4 and stale.info["bytes"][-1] == 30 * 650 * 8
