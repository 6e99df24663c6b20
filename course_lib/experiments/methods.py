"""Method adapters: course_lib algorithms and kept libraries behind the harness's two calling conventions.

``kind = "algorithm"``: ``f(oracle, x0, *, seed, **hp)`` drives a
:class:`~course_lib.experiments.oracle.CountingOracle` and returns the final point, a Trace, or
None (the run may also end inside the oracle with BudgetExhausted). The adapters below call
course_lib's own implementations (no second copy of any algorithm) with an iteration cap taken
from the budget, so the budget, not ``max_iter``, ends the run.

``kind = "optimizer"``: a callable ``f(params, **hp) -> optimizer`` with ``zero_grad()`` and
``step()`` (every ``torch.optim`` class is one). The factories below wrap course_lib's update
rules (:class:`course_lib.optimizers.TorchOptimizer`) and SAM (pytorch_optimizer.SAM).
"""
from __future__ import annotations

import math

from ..validation import CourseError

__all__ = ["gradient_descent", "nesterov", "heavy_ball", "sam", "minibatch", "nelder_mead", "cma_es",
           "course_optimizer", "sam_optimizer", "max_steps", "resolve"]


def resolve(path: str, what: str = "target"):
    """Import ``"module:attribute"`` (or ``"module.attribute"``) and return the attribute."""
    import importlib

    if not isinstance(path, str) or not path.strip():
        raise CourseError(f"{what} must be an import path 'module:callable', got {path!r}.")
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    if not module or not attr:
        raise CourseError(f"{what} = {path!r} is not an import path; write 'module:callable', e.g. "
                          "'course_lib.experiments.methods:gradient_descent'.")
    try:
        obj = importlib.import_module(module)
    except ImportError as exc:
        raise CourseError(f"{what} = {path!r}: cannot import module {module!r} ({exc}). Is it installed, or a "
                          "file beside the study file?") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise CourseError(f"{what} = {path!r}: module {module!r} has no attribute {attr!r}.")
        obj = getattr(obj, part)
    if not callable(obj):
        raise CourseError(f"{what} = {path!r} is not callable.")
    return obj


def max_steps(oracle, calls_per_step: float = 1.0) -> int:
    """An iteration cap that the budget reaches first (for algorithms that need ``max_iter``)."""
    b = oracle.budget
    if b.unit in ("gradients", "function_values"):
        return int(math.ceil(b.amount / calls_per_step)) + 2
    if b.unit in ("examples", "epochs"):
        return int(math.ceil(b.amount * (b.n_examples if b.unit == "epochs" else 1))) + 2
    return 10**7


def _quiet(**kw):
    return dict(kw, keep_x=False, on_divergence="raise")


# -- course_lib algorithms on a (counting) problem -------------------------------------------------
def gradient_descent(oracle, x0, *, seed: int = 0, step_size: float = None):
    """course_lib.convex.gradient_descent, x_{k+1} = x_k - step_size grad f(x_k) (1 gradient per step)."""
    from .. import convex

    return convex.gradient_descent(oracle, x0, step_size=step_size, max_iter=max_steps(oracle), check_step=False,
                                   record_every=max_steps(oracle), **_quiet())


def nesterov(oracle, x0, *, seed: int = 0, step_size: float = None, mu: float = 0.0):
    """course_lib.convex.nesterov: y_k = x_k + beta_k (x_k - x_{k-1}), x_{k+1} = y_k - t grad f(y_k).

    The oracle sees the gradient queries at y_k, so the logged curve is f(y_k) - f*. Step sizes above
    1/L (where the method's guarantee ends) are refused by course_lib and recorded as failed runs.
    """
    from .. import convex

    return convex.nesterov(oracle, x0, step_size=step_size, mu=mu, max_iter=max_steps(oracle),
                           record_every=max_steps(oracle), **_quiet())


def heavy_ball(oracle, x0, *, seed: int = 0, step_size: float = None, momentum: float = None):
    """course_lib.convex.heavy_ball: x_{k+1} = x_k - t grad f(x_k) + momentum (x_k - x_{k-1})."""
    from .. import convex

    return convex.heavy_ball(oracle, x0, step_size=step_size, momentum=momentum, max_iter=max_steps(oracle),
                             record_every=max_steps(oracle), **_quiet())


def sam(oracle, x0, *, seed: int = 0, step_size: float = None, rho: float = 0.05, adaptive: bool = False):
    """course_lib.nonconvex.sam (full batch): x_{k+1} = x_k - t grad f(x_k + rho g_k/||g_k||); 2 gradients/step."""
    from .. import nonconvex

    return nonconvex.sam(oracle, x0, step_size=step_size, rho=rho, adaptive=adaptive,
                         max_iter=max_steps(oracle, 2), record_every=max_steps(oracle, 2), **_quiet())


def minibatch(oracle, x0, *, seed: int = 0, optimizer: str = "sgd", batch_size: int = 32,
              sampling: str = "with_replacement", **hp):
    """A course_lib.optimizers update rule on minibatch gradients: x, s = opt.update(grad_batch(x, B), s, x).

    Args:
        optimizer: a name in course_lib.optimizers ("sgd", "adam", "adamw", "adagrad", "rmsprop", ...).
        batch_size, sampling: course_lib.stochastic.MinibatchSampler's (seeded by the run seed).
        **hp: the optimizer's hyperparameters (lr, momentum, betas, ...).
    """
    from .. import optimizers
    from ..stochastic import MinibatchSampler

    if not hasattr(oracle, "n"):
        raise CourseError("minibatch methods need a finite-sum workload (grad_batch), e.g. logistic_regression.")
    make = getattr(optimizers, optimizer, None)
    if make is None or not callable(make):
        raise CourseError(f"optimizer = {optimizer!r} is not in course_lib.optimizers.")
    opt = make(**hp)
    sampler = MinibatchSampler(oracle.n, batch_size, sampling, seed, oracle.backend)
    x, state = x0, opt.init(x0)
    while True:
        x, state = opt.update(oracle.grad_batch(x, sampler()), state, x)


# -- kept libraries (zeroth order: function values only) --------------------------------------------
def nelder_mead(oracle, x0, *, seed: int = 0, initial_step: float = 0.05, adaptive: bool = True):
    """SciPy's Nelder-Mead simplex method (scipy.optimize.minimize): function values only."""
    import numpy as np
    from scipy.optimize import minimize

    from ..backend import to_float, to_numpy

    x_start = np.asarray(to_numpy(x0), dtype=float)
    simplex = np.vstack([x_start] + [x_start + initial_step * e for e in np.eye(len(x_start))])
    res = minimize(lambda z: to_float(oracle.value(oracle.asarray(z))), x_start, method="Nelder-Mead",
                   options=dict(maxfev=10**9, maxiter=10**9, xatol=0, fatol=0, initial_simplex=simplex,
                                adaptive=adaptive))
    return oracle.asarray(res.x)


def cma_es(oracle, x0, *, seed: int = 0, sigma0: float = 0.5, popsize: int = None):
    """CMA-ES from the ``cma`` package (Hansen): function values only, ``popsize`` per generation."""
    import cma
    import numpy as np

    from ..backend import to_float, to_numpy

    opts = {"seed": int(seed) + 1, "verbose": -9, "maxfevals": 10**9, "tolfun": 0, "tolx": 0, "tolfunhist": 0}
    if popsize:
        opts["popsize"] = int(popsize)
    es = cma.CMAEvolutionStrategy(np.asarray(to_numpy(x0), dtype=float), sigma0, opts)
    oracle.observe(x0)  # the curve follows the mean of the search distribution, not the sampled points
    while True:
        xs = es.ask()
        es.tell(xs, [to_float(oracle.value(oracle.asarray(z))) for z in xs])
        oracle.observe(oracle.asarray(es.result.xfavorite))


# -- torch.optim-style optimizer factories --------------------------------------------------------
def course_optimizer(params, *, optimizer: str = "adam", **hp):
    """A course_lib.optimizers update rule as a torch optimizer (course_lib.optimizers.TorchOptimizer)."""
    from .. import optimizers

    make = getattr(optimizers, optimizer, None)
    if make is None:
        raise CourseError(f"optimizer = {optimizer!r} is not in course_lib.optimizers.")
    return optimizers.TorchOptimizer(make(**hp), params)


def sam_optimizer(params, *, base: str = "torch.optim.SGD", rho: float = 0.05, adaptive: bool = False, **hp):
    """pytorch_optimizer.SAM around a base optimizer class (import path ``base``); use with ``closure = true``.

    Each step costs two gradients: the harness computes g(w), SAM calls the closure at w + eps.
    """
    from pytorch_optimizer import SAM

    return SAM(params, resolve(base, "base"), rho=rho, adaptive=adaptive, **hp)
