"""course_lib.plotting draws what it is given: the right curves, scales, reference lines and errors."""
import matplotlib.pyplot as plt
import numpy as np
import pytest

from course_lib.convex import gradient_descent
from course_lib.plotting import RATES, plot_contour, plot_convergence, plot_curves, plot_rate
from course_lib.problems import Quadratic, Rosenbrock


@pytest.fixture(scope="module")
def runs():
    q = Quadratic(np.diag([1.0, 10.0]), np.array([1.0, 1.0]))
    x0 = np.array([-1.5, 1.5])
    return q, {"1/L": gradient_descent(q, x0, max_iter=40),
               "2/(mu+L)": gradient_descent(q, x0, step_size=2 / 11, max_iter=40)}


def test_plot_convergence_draws_the_gap_on_a_log_axis(runs):
    q, traces = runs
    ax = plot_convergence(traces, f_star=q.f_star)
    assert ax.get_yscale() == "log" and ax.get_xscale() == "linear"
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["1/L", "2/(mu+L)"]
    tr = traces["1/L"]
    x, y = lines[0].get_data()
    np.testing.assert_array_equal(x, tr.iteration)
    gap = tr.f - q.f_star
    np.testing.assert_array_equal(y, np.where(gap > 0, gap, np.nan))  # zeros (exact optimum) masked for log
    assert ax.get_xlabel() == "iteration" and "f^\\star" in ax.get_ylabel()


def test_plot_convergence_options(runs):
    q, traces = runs
    tr = traces["1/L"]
    ax = plot_convergence(tr, quantity="grad_norm", x_axis="oracle_calls", logx=True)
    assert ax.get_xscale() == "log" and ax.get_lines()[0].get_label() == "gradient_descent"
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), tr.oracle_calls)
    ax = plot_convergence([tr], quantity="min_grad_norm", labels=["run"])
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), tr.min_grad_norm())
    with pytest.raises(ValueError, match="quantity='gap' needs f_star"):
        plot_convergence(tr)


def test_plot_rate_adds_a_dashed_reference(runs):
    q, traces = runs
    fig, ax = plt.subplots()
    k = np.arange(41)
    bound = (1 - q.mu / q.L) ** k
    plot_rate(ax, k, bound, "(1 - mu/L)^k")
    ln = ax.get_lines()[-1]
    assert ln.get_linestyle() == "--" and ln.get_label() == "(1 - mu/L)^k"
    np.testing.assert_allclose(ln.get_ydata(), bound)
    plot_rate(ax, [0, 1], [1.0, 0.0], "zero")
    assert np.isnan(ax.get_lines()[-1].get_ydata()[1])
    np.testing.assert_allclose(RATES["linear"](np.arange(3), q=0.5), [1.0, 0.5, 0.25])
    np.testing.assert_allclose(RATES["1/k"](np.arange(3)), [1.0, 1.0, 0.5])


def test_plot_contour_draws_levels_trajectories_and_x_star(runs):
    q, traces = runs
    ax = plot_contour(q, list(traces.values()), labels=list(traces), xlim=(-2, 2), ylim=(-2, 2), n_grid=50)
    assert len(ax.collections) >= 1  # the contour set
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert labels == ["1/L", "2/(mu+L)", r"$x^\star$"]
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), traces["1/L"].x[:, 0])
    np.testing.assert_allclose(ax.get_lines()[-1].get_xydata()[0], np.asarray(q.x_star))
    ax = plot_contour(Rosenbrock(2), xlim=(-2, 2), ylim=(-1, 3), n_grid=40)  # no traces: levels only
    assert len(ax.get_lines()) == 1


def test_plot_contour_errors(runs):
    q, traces = runs
    with pytest.raises(ValueError, match="needs a 2-D problem, got dim=3"):
        plot_contour(Rosenbrock(3))
    no_x = gradient_descent(q, np.ones(2), max_iter=3, keep_x=False)
    with pytest.raises(ValueError, match="stored no iterates; run it with keep_x=True"):
        plot_contour(q, no_x, n_grid=10)


def test_plot_curves_with_bounds():
    k = np.arange(1, 50)
    ax = plot_curves({"regret": (k, np.sqrt(k))}, bounds={"O(sqrt k)": (k, 2 * np.sqrt(k))}, logx=True, logy=True,
                     xlabel="T", ylabel="regret")
    assert [ln.get_label() for ln in ax.get_lines()] == ["regret", "O(sqrt k)"]
    assert ax.get_lines()[1].get_linestyle() == "--"
    assert ax.get_xscale() == ax.get_yscale() == "log" and ax.get_xlabel() == "T"
