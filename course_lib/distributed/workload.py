"""What the distributed drivers train: a dataset split into seeded mini-batches, a small torch model, and its log.

A :class:`Workload` holds train/test tensors and builds the model (softmax regression, or a one-hidden-layer
MLP). Every driver draws the mini-batch of worker ``rank`` at its ``k``-th step with :meth:`Workload.batch`,
so the same seed gives the same data order in every scheme and in the single-process reference (step k of
``world_size`` workers with batch b each sees the same ``world_size * b`` samples as one process with batch
``world_size * b``). :class:`RunLog` fills a :class:`~course_lib.trace.Trace` on rank 0: training loss
(``f``), test accuracy, bytes uploaded and training seconds (evaluation excluded) in ``info``.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import numpy as np

from ..trace import Recorder, Trace
from ..validation import CourseError, check_int

__all__ = ["Workload", "digits_workload", "RunLog", "flat_params", "set_flat_params", "flat_grad", "single_thread"]


@dataclass
class Workload:
    """A classification task for data-parallel training.

    Attributes:
        X_train, y_train, X_test, y_test: tensors (features float, labels int64).
        n_classes: number of classes.
        hidden: width of the hidden layer (0: softmax regression, a convex problem).
        name: a label for plots.
    """

    X_train: object
    y_train: object
    X_test: object
    y_test: object
    n_classes: int
    hidden: int = 0
    name: str = "workload"

    def model(self, seed: int = 0):
        """A freshly initialised model (the same on every rank for the same seed)."""
        import torch

        torch.manual_seed(seed)
        d, dtype = self.X_train.shape[1], self.X_train.dtype
        if self.hidden:
            net = torch.nn.Sequential(torch.nn.Linear(d, self.hidden), torch.nn.Tanh(),
                                      torch.nn.Linear(self.hidden, self.n_classes))
        else:
            net = torch.nn.Linear(d, self.n_classes)
        return net.to(dtype=dtype, device=self.X_train.device)

    def batch(self, k: int, rank: int, world_size: int, batch_size: int, seed: int = 0):
        """Indices of worker ``rank``'s mini-batch at its step ``k``: a slice of a seeded permutation."""
        import torch

        n = self.X_train.shape[0]
        if world_size * batch_size > n:
            raise CourseError(f"world_size * batch_size = {world_size * batch_size} exceeds the {n} training samples; "
                              f"use a smaller batch_size.")
        g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(k))
        return torch.randperm(n, generator=g)[rank * batch_size:(rank + 1) * batch_size].to(self.X_train.device)

    def loss(self, model, idx=None):
        """Mean cross-entropy on the training samples ``idx`` (all of them when None)."""
        import torch.nn.functional as F

        X, y = (self.X_train, self.y_train) if idx is None else (self.X_train[idx], self.y_train[idx])
        return F.cross_entropy(model(X), y)

    def accuracy(self, model) -> float:
        """Share of test samples classified correctly."""
        import torch

        with torch.no_grad():
            return float((model(self.X_test).argmax(1) == self.y_test).double().mean())

    def to(self, device):
        """The same workload with its tensors on ``device`` (e.g. "cuda:0")."""
        return Workload(*(t.to(device) for t in (self.X_train, self.y_train, self.X_test, self.y_test)),
                        self.n_classes, self.hidden, self.name)


def digits_workload(hidden: int = 0, dtype: str = "float64", test_fraction: float = 0.25, seed: int = 0) -> Workload:
    """scikit-learn's bundled 8x8 digits (1797 images, 10 classes, standardised), split with a seed; no download.

    Args:
        hidden: hidden-layer width (0: softmax regression).
        dtype: "float64" (exact comparisons) or "float32".
        test_fraction: share of images held out for the test accuracy.
        seed: the split's seed.
    Returns:
        a Workload.
    """
    import torch

    from ..datasets import load_dataset, train_test_split

    X, y = load_dataset("digits")
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_fraction=test_fraction, seed=seed)
    dt = {"float64": torch.float64, "float32": torch.float32}.get(dtype)
    if dt is None:
        raise CourseError(f"dtype must be 'float64' or 'float32', got {dtype!r}.")
    t = lambda a, kind: torch.as_tensor(np.asarray(a), dtype=kind)  # noqa: E731
    return Workload(t(Xtr, dt), t(ytr, torch.int64), t(Xte, dt), t(yte, torch.int64), 10,
                    check_int(hidden, "hidden", 0), "digits" + (f"-mlp{hidden}" if hidden else "-softmax"))


@contextlib.contextmanager
def single_thread():
    """Run torch on one intra-op thread inside the block (restored after).

    The single-process references run next to worker processes on few cores: with torch's default thread pool
    a 300-step run of the digits model took 13 s on a loaded 2-core machine, and 0.6 s on one thread.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def flat_params(model):
    """All parameters of ``model`` as one detached 1-D tensor."""
    import torch

    return torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()


def set_flat_params(model, x) -> None:
    """Copy the 1-D tensor ``x`` into the parameters of ``model`` (a copy: later steps never write into ``x``)."""
    import torch

    with torch.no_grad():
        i = 0
        for p in model.parameters():
            p.copy_(x[i:i + p.numel()].view_as(p))
            i += p.numel()


def flat_grad(workload: Workload, model, x, idx):
    """The gradient of the mini-batch loss at the parameter vector ``x`` (1-D tensor), via autograd."""
    import torch

    set_flat_params(model, x)
    model.zero_grad(set_to_none=True)
    workload.loss(model, idx).backward()
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


class RunLog:
    """Records loss, test accuracy, bytes and training seconds of a run into a Trace (on rank 0).

    Args:
        workload, model: what is trained (the model's current parameters are evaluated).
        method: the scheme's name; params: its hyperparameters.
        n_steps: the step budget; log_every: evaluate every this many steps (the last step always).
        active: False on ranks that do not record (they pay nothing).
    """

    def __init__(self, workload, model, method: str, params: dict, n_steps: int, log_every: int = 10,
                 active: bool = True):
        self.workload, self.model, self.active = workload, model, active
        self.n_steps, self.log_every = int(n_steps), max(1, int(log_every))
        self.seconds, self._t0 = 0.0, None
        self.rec = Recorder(method, flat_params(model), n_steps, params=params, keep_x=False,
                            on_divergence="stop") if active else None

    def start(self):
        """Start the training clock (call before each step's work)."""
        self._t0 = time.perf_counter()

    def stop(self):
        """Stop the training clock (call after the step's communication)."""
        if self._t0 is not None:
            self.seconds += time.perf_counter() - self._t0
            self._t0 = None

    def record(self, k: int, bytes_sent: float, force: bool = False, **extra) -> bool:
        """Evaluate at step k if it is due; returns False when the run diverged."""
        if not self.active or not (force or k % self.log_every == 0 or k >= self.n_steps):
            return True
        import torch

        with torch.no_grad():
            f = float(self.workload.loss(self.model))
        return self.rec.record(k, flat_params(self.model), f=f, force=True, bytes=float(bytes_sent),
                               seconds=self.seconds, accuracy=self.workload.accuracy(self.model), **extra)

    def finish(self) -> Trace | None:
        """The Trace (None on inactive ranks)."""
        return self.rec.finish(flat_params(self.model)) if self.active else None
