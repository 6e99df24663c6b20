"""Workloads: what a study optimises, with the metrics it is judged by.

A workload factory is any callable ``f(**args, seed) -> Workload`` named by import path in the
study file (``factory = "module:callable"``). Two families:

* :class:`VectorWorkload` -- a course_lib Problem (or any object with ``value``/``grad``, and
  ``grad_batch`` for finite sums) and a starting point; methods of kind ``"algorithm"`` get a
  :class:`~course_lib.experiments.oracle.CountingOracle` around it.
* :class:`TorchWorkload` -- an ``nn.Module`` factory with train / validation / test tensors and a
  loss; methods of kind ``"optimizer"`` (torch.optim-style classes) are trained on it by the
  harness's own minibatch loop (:mod:`course_lib.experiments.training`).

Each workload names its metrics with their goal (``"min"``/``"max"``) and, for each metric, the
validation metric that tuning scores (the same metric when there is no split).

Built-ins: :func:`diagonal_quadratic`, :func:`logistic_regression`, :func:`mlp_digits`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..validation import CourseError, check_int, check_positive

__all__ = ["Workload", "VectorWorkload", "TorchWorkload", "diagonal_quadratic", "logistic_regression",
           "mlp_digits"]


class Workload:
    """Base class. Attributes: ``metrics`` (name -> goal), ``validation`` (metric -> validation metric),
    ``n_examples`` (training-set size, for the ``examples``/``epochs`` units), ``kind``."""

    kind = "base"
    metrics: dict
    validation: dict
    n_examples: int = 1

    def goal(self, metric: str) -> str:
        return self.metrics[metric]

    def check_metric(self, metric: str, where: str = "metric") -> None:
        if metric not in self.metrics:
            raise CourseError(f"{where} = {metric!r} is not a metric of this workload; it has "
                              f"{', '.join(sorted(self.metrics))}.")

    def validation_metric(self, metric: str) -> str:
        return self.validation.get(metric, metric)


@dataclass
class VectorWorkload(Workload):
    """A vector problem for ``kind = "algorithm"`` methods.

    Args:
        problem: a course_lib Problem (``value``, ``grad``; ``grad_batch`` for stochastic methods).
        metric_fns: name -> callable(x) -> float.
        goals: name -> "min" | "max" (default "min" for every metric).
        x0: callable(seed) -> starting point on the problem's backend.
        validation: metric name -> name of the metric tuning should score (default: itself).
        log_every: thin the logged curve (budget units between points; 0 logs every call).
        bounds: metric -> (low, high) it can take (None: unbounded), for the unreachable-target warning.
        value_offsets: metric -> c when the metric is exactly problem.value(x) - c (e.g. f* for the
            suboptimality): the oracle then reuses f(x) values the method computed anyway.
    """

    problem: Any
    metric_fns: dict
    x0: Callable
    goals: dict = field(default_factory=dict)
    validation: dict = field(default_factory=dict)
    log_every: float = 0.0
    bounds: dict = field(default_factory=dict)
    value_offsets: dict = field(default_factory=dict)
    kind = "vector"

    def __post_init__(self):
        self.metrics = {name: self.goals.get(name, "min") for name in self.metric_fns}
        self.n_examples = int(getattr(self.problem, "n", 1))

    def evaluate(self, metric: str, x) -> float:
        return float(self.metric_fns[metric](x))

    def initial_point(self, seed: int):
        return self.x0(seed)


@dataclass
class TorchWorkload(Workload):
    """A torch model trained by minibatches (for ``kind = "optimizer"`` methods).

    Args:
        model: callable(seed) -> ``torch.nn.Module`` (the same seed gives the same initial weights).
        train, val, test: (inputs, targets) tensor pairs.
        loss: callable(outputs, targets) -> scalar tensor (e.g. ``torch.nn.functional.cross_entropy``).
        batch_size: minibatch size of the harness's loop.
        eval_every: evaluate the tracked metric every this many optimizer steps (and at the end).
        extra_metrics: name -> (callable(model, workload) -> float, goal), beside the built-in
            ``train_loss``, ``val_loss``, ``test_loss``, ``val_accuracy``, ``test_accuracy``.
    """

    model: Callable
    train: tuple
    val: tuple
    test: tuple
    loss: Callable
    batch_size: int = 64
    eval_every: int = 10
    classification: bool = True
    extra_metrics: dict = field(default_factory=dict)
    kind = "torch"
    bounds = {"train_loss": (0.0, None), "val_loss": (0.0, None), "test_loss": (0.0, None),
              "val_accuracy": (0.0, 1.0), "test_accuracy": (0.0, 1.0)}

    def __post_init__(self):
        self.metrics = {"train_loss": "min", "val_loss": "min", "test_loss": "min"}
        if self.classification:
            self.metrics.update(val_accuracy="max", test_accuracy="max")
        self.metrics.update({k: goal for k, (_, goal) in self.extra_metrics.items()})
        self.validation = {"train_loss": "train_loss", "test_loss": "val_loss", "test_accuracy": "val_accuracy",
                           "val_loss": "val_loss", "val_accuracy": "val_accuracy"}
        self.n_examples = int(self.train[0].shape[0])

    def evaluate(self, metric: str, model) -> float:
        import torch

        if metric in self.extra_metrics:
            return float(self.extra_metrics[metric][0](model, self))
        split, _, what = metric.partition("_")
        X, y = {"train": self.train, "val": self.val, "test": self.test}[split]
        with torch.no_grad():
            out = model(X)
            if what == "loss":
                return float(self.loss(out, y))
            return float((out.argmax(dim=1) == y).double().mean())


# -- built-in factories ----------------------------------------------------------------------------
def _start(kind, dim, be, scale=1.0):
    def x0(seed):
        if kind == "ones":
            return be.asarray(np.full(dim, float(scale)))
        if kind == "zeros":
            return be.asarray(np.zeros(dim))
        if kind == "random":
            return be.asarray(scale * np.random.default_rng(seed).standard_normal(dim))
        raise CourseError(f"start must be 'ones', 'zeros' or 'random', got {kind!r}.")
    return x0


def diagonal_quadratic(dim: int = 50, kappa: float = 1000.0, mu: float = 1.0, start: str = "ones",
                       seed: int = 0, backend=None) -> VectorWorkload:
    """f(x) = 1/2 sum_i lambda_i x_i^2 with lambda_i geometrically spaced on [mu, kappa mu].

    x* = 0, f* = 0, L = kappa mu. Gradient descent with step t multiplies coordinate i by
    (1 - t lambda_i) per step, so every iterate is known in closed form (the tests use this).

    Args:
        dim: number of variables. kappa: condition number L/mu (>= 1). mu: smallest eigenvalue.
        start: "ones" (x0 = 1, the default), "zeros" or "random" (standard normal from the run seed).
        seed: unused (the instance is deterministic); accepted as every factory is.
    Returns:
        A VectorWorkload with metrics ``suboptimality`` (f - f*), ``distance`` (||x - x*||), ``value``.
    """
    from ..backend import get_backend, namespace, to_float
    from ..problems import Quadratic

    dim = check_int(dim, "dim", 1)
    kappa = check_positive(kappa, "kappa")
    if kappa < 1:
        raise CourseError(f"kappa must be >= 1 (it is L/mu), got {kappa!r}.")
    mu = check_positive(mu, "mu")
    be = get_backend(backend)
    eig = mu * np.geomspace(1.0, kappa, dim) if dim > 1 else np.array([mu])
    problem = Quadratic(be.asarray(np.diag(eig)))

    def value(x):
        return to_float(problem.value(x))

    def distance(x):
        return to_float(namespace(x).sqrt(namespace(x).sum(x * x)))

    return VectorWorkload(problem, {"suboptimality": value, "distance": distance, "value": value},
                          x0=_start(start, dim, be), bounds={"suboptimality": (0.0, None), "distance": (0.0, None)},
                          value_offsets={"suboptimality": 0.0, "value": 0.0})


def logistic_regression(dataset: str = "breast_cancer", lam: float = 1e-3, val_fraction: float = 0.2,
                        test_fraction: float = 0.2, start: str = "zeros", seed: int = 0,
                        backend=None) -> VectorWorkload:
    """L2-regularised logistic regression on a dataset bundled with scikit-learn (no download).

    The training objective is :class:`course_lib.problems.LogisticRegression` on the training split;
    its minimiser (Newton's method, float64) gives f*. Multiclass sets become binary (first half of
    the classes vs the rest).

    Args:
        dataset: "breast_cancer" (default), "digits", "iris", "wine".
        lam: l2 weight (> 0). val_fraction, test_fraction: split sizes. start: as in
            :func:`diagonal_quadratic`. seed: the split's seed.
    Returns:
        A VectorWorkload with metrics ``suboptimality`` (training f - f*), ``train_loss``,
        ``val_loss``, ``val_accuracy`` and ``test_accuracy`` (validation of test_accuracy: val_accuracy).
    """
    from ..backend import get_backend, to_float, to_numpy
    from ..datasets import load_dataset
    from ..problems import LogisticRegression

    be = get_backend(backend)
    lam = check_positive(lam, "lam")
    X, y = load_dataset(dataset)
    X, y = to_numpy(X), to_numpy(y)
    if dataset != "breast_cancer":
        classes = np.unique(y)
        y = np.where(y <= classes[len(classes) // 2 - 1], 1.0, -1.0)
    perm = np.random.default_rng(seed).permutation(len(y))
    n_te, n_va = int(round(test_fraction * len(y))), int(round(val_fraction * len(y)))
    te, va, tr = perm[:n_te], perm[n_te:n_te + n_va], perm[n_te + n_va:]
    problem = LogisticRegression(be.asarray(X[tr]), be.asarray(y[tr]), lam=lam)
    f_star = to_float(problem.value(problem.x_star))
    val = LogisticRegression(be.asarray(X[va]), be.asarray(y[va]), lam=lam)

    def accuracy(rows):
        Xs, ys = X[rows], y[rows]
        return lambda w: float(np.mean(np.sign(Xs @ to_numpy(w)) == ys))

    metrics = {
        "suboptimality": lambda w: to_float(problem.value(w)) - f_star,
        "train_loss": lambda w: to_float(problem.value(w)),
        "val_loss": lambda w: to_float(val.value(w)),
        "val_accuracy": accuracy(va),
        "test_accuracy": accuracy(te),
    }
    return VectorWorkload(problem, metrics, x0=_start(start, problem.dim, be),
                          goals={"val_accuracy": "max", "test_accuracy": "max"},
                          validation={"test_accuracy": "val_accuracy", "train_loss": "val_loss"},
                          bounds={"suboptimality": (0.0, None), "train_loss": (0.0, None), "val_loss": (0.0, None),
                                  "val_accuracy": (0.0, 1.0), "test_accuracy": (0.0, 1.0)},
                          value_offsets={"suboptimality": f_star, "train_loss": 0.0})


def mlp_digits(hidden: int = 32, batch_size: int = 64, val_fraction: float = 0.2, test_fraction: float = 0.2,
               eval_every: int = 10, n_train: int | None = None, seed: int = 0) -> TorchWorkload:
    """A one-hidden-layer tanh MLP on scikit-learn's 8x8 digits (10 classes), cross-entropy loss.

    Args:
        hidden: hidden width. batch_size: minibatch size. val_fraction, test_fraction: split sizes.
        eval_every: optimizer steps between metric evaluations. n_train: keep only this many
            training images (smaller, faster studies). seed: the split's seed (model weights use
            the run seed).
    Returns:
        A TorchWorkload with metrics train/val/test loss and val/test accuracy.
    """
    import torch
    from ..datasets import load_dataset

    hidden = check_int(hidden, "hidden", 1)
    X, y = load_dataset("digits")
    X, y = np.asarray(X), np.asarray(y).astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(y))
    n_te, n_va = int(round(test_fraction * len(y))), int(round(val_fraction * len(y)))
    te, va, tr = perm[:n_te], perm[n_te:n_te + n_va], perm[n_te + n_va:]
    if n_train is not None:
        tr = tr[:check_int(n_train, "n_train", 1)]

    def split(rows):
        return torch.as_tensor(X[rows], dtype=torch.float32), torch.as_tensor(y[rows])

    def model(run_seed: int):
        gen = torch.Generator().manual_seed(int(run_seed))
        net = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 10))
        with torch.no_grad():
            for p in net.parameters():
                bound = 1.0 / math.sqrt(p.shape[-1]) if p.ndim > 1 else 0.1
                p.uniform_(-bound, bound, generator=gen)
        return net

    return TorchWorkload(model=model, train=split(tr), val=split(va), test=split(te),
                         loss=torch.nn.functional.cross_entropy, batch_size=check_int(batch_size, "batch_size", 1),
                         eval_every=check_int(eval_every, "eval_every", 1))
