"""Projections, prox operators and LMOs against their definitions (KKT conditions, brute-force minimisation)."""
import numpy as np
import pytest
from scipy.optimize import minimize

from course_lib.backend import asarray, available_backends, to_numpy
from course_lib.projections import (Ball, Box, L1Ball, Simplex, lmo_l1_ball, lmo_simplex, project_ball, project_box,
                                    project_l1_ball, project_simplex, prox_box, prox_l1, prox_sq_l2)
from course_lib.validation import CourseError

BACKENDS = available_backends()
rng = np.random.default_rng(0)
POINTS = [rng.standard_normal(8) * s for s in (0.1, 1.0, 3.0)] + [np.array([0.2, 0.3, 0.5]), np.zeros(4)]


def brute(obj, x0, cons=(), bounds=None):
    return minimize(obj, x0, method="SLSQP", constraints=cons, bounds=bounds,
                    options={"ftol": 1e-14, "maxiter": 1000}).x


@pytest.mark.parametrize("x", POINTS)
def test_simplex_projection_kkt(x):
    p = project_simplex(x, 1.0)
    assert np.all(p >= 0) and abs(p.sum() - 1) < 1e-12
    # KKT: p = max(x - theta, 0) with one theta: x_i - p_i = theta on the support, x_i <= theta off it
    theta = (x - p)[p > 0]
    np.testing.assert_allclose(theta, theta[0], atol=1e-12)
    assert np.all(x[p == 0] <= theta[0] + 1e-12)


@pytest.mark.parametrize("x", POINTS)
@pytest.mark.parametrize("radius", [0.5, 2.0])
def test_l1_projection_matches_brute_force(x, radius):
    p = project_l1_ball(x, radius)
    assert np.abs(p).sum() <= radius + 1e-12
    # variational inequality of a projection: <x - p, q - p> <= 0 for all q in C (vertices suffice)
    V = np.vstack([radius * np.eye(len(x)), -radius * np.eye(len(x))])
    assert np.all((V - p) @ (x - p) <= 1e-10)
    # brute force on the split u = u+ - u-
    d = len(x)
    z = brute(lambda w: np.sum((w[:d] - w[d:] - x) ** 2), np.zeros(2 * d),
              cons=[{"type": "ineq", "fun": lambda w: radius - w.sum()}], bounds=[(0, None)] * (2 * d))
    np.testing.assert_allclose(p, z[:d] - z[d:], atol=1e-6)


@pytest.mark.parametrize("x", POINTS)
def test_ball_and_box_projection_properties(x):
    p = project_ball(x, 1.0)
    n = np.linalg.norm(x)
    np.testing.assert_allclose(p, x if n <= 1 else x / n, rtol=1e-14)
    c = np.full_like(x, 0.5)
    pc = project_ball(x, 0.3, center=c)
    assert np.linalg.norm(pc - c) <= 0.3 + 1e-12
    assert np.all((Ball(1.0).lmo(x) - p) @ (x - p) <= 1e-12) if n > 0 else True
    b = project_box(x, -0.5, 0.25)
    np.testing.assert_allclose(b, np.minimum(np.maximum(x, -0.5), 0.25))
    np.testing.assert_allclose(prox_box(x, 3.0, -0.5, 0.25), b)


@pytest.mark.parametrize("x", POINTS[:3])
@pytest.mark.parametrize("t", [0.0, 0.3, 1.5])
def test_prox_l1_and_sq_l2_minimise_their_definition(x, t):
    p = prox_l1(x, t)
    # optimality: 0 in t*sign(p) + (p - x), i.e. x - p = t sign(p) on p != 0 and |x| <= t where p = 0
    nz = p != 0
    np.testing.assert_allclose((x - p)[nz], t * np.sign(p[nz]), atol=1e-14)
    assert np.all(np.abs(x[~nz]) <= t + 1e-14)
    lam = 2.0
    q = prox_sq_l2(x, t, lam)
    z = brute(lambda u: lam / 2 * u @ u + (u - x) @ (u - x) / (2 * t), x) if t > 0 else x
    np.testing.assert_allclose(q, z, atol=1e-7)


@pytest.mark.parametrize("g", POINTS[:3])
def test_lmos_are_minimisers_over_the_vertices(g):
    for set_, vertices in [(Simplex(2.0), 2.0 * np.eye(len(g))),
                           (L1Ball(0.7), np.vstack([0.7 * np.eye(len(g)), -0.7 * np.eye(len(g))])),
                           (Box(-1.0, 2.0, len(g)), None)]:
        s = set_.lmo(g)
        if vertices is not None:
            assert np.isclose(g @ s, (vertices @ g).min(), rtol=1e-14)
        else:
            assert np.isclose(g @ s, np.sum(np.minimum(-g, 2 * g)), rtol=1e-14)  # min over [-1,2] per coord
        assert set_.contains(s)
    np.testing.assert_allclose(lmo_simplex(g, 1.0), np.eye(len(g))[np.argmin(g)])
    np.testing.assert_allclose(lmo_l1_ball(g, 1.0), -np.sign(g) * np.eye(len(g))[np.argmax(np.abs(g))])


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_agree(backend):
    x = POINTS[1]
    xt = asarray(x, backend=backend)
    for f in (lambda v: project_simplex(v, 1.3), lambda v: project_l1_ball(v, 0.9), lambda v: project_ball(v, 0.5),
              lambda v: project_box(v, -0.2, 0.2), lambda v: prox_l1(v, 0.4), lambda v: prox_sq_l2(v, 0.4, 3.0),
              lambda v: lmo_simplex(v, 2.0), lambda v: lmo_l1_ball(v, 2.0), Box(-1, 1, 8).lmo, Ball(2.0).lmo):
        np.testing.assert_allclose(to_numpy(f(xt)), to_numpy(f(x)), rtol=1e-12, atol=1e-15)


def test_bad_inputs_are_explained():
    with pytest.raises(CourseError, match="radius"):
        project_simplex(np.ones(3), -1.0)
    with pytest.raises(CourseError, match="empty"):
        project_box(np.ones(3), 1.0, 0.0)
    with pytest.raises(CourseError, match="t must be"):
        prox_l1(np.ones(3), -0.1)
    with pytest.raises(CourseError, match="lo < hi"):
        Box(1.0, 1.0, 3)
    with pytest.raises(CourseError, match="1 dimension"):
        project_simplex(np.ones((2, 2)))
