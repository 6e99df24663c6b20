"""Adapters for the experiment harness (docs/EXPERIMENTS.md): M data-parallel workers simulated in one process.

The harness's budget lives in its counting oracle, which a separate worker process cannot reach; so these
methods run the M workers of a step one after the other in the calling process, each on its own seeded
minibatch ``oracle.grad_batch(x, B_t^m)`` (every one of them paid), and use the same pure operators as the
real-process drivers (:mod:`course_lib.distributed.compression`: top-k, random-k, scaled sign, QSGD, error
feedback). Communication is the method's own budget: ``max_bytes`` stops a run before the step whose messages
would exceed it (the bytes are the payload sizes of :class:`~course_lib.distributed.compression.Message`,
summed over workers). Give every method of a study the same ``max_bytes`` and a gradient budget that is not
binding, and the study compares the schemes **at equal bytes**.

* :func:`data_parallel_sgd`: x <- x - eta (1/M) sum_m C(g^m) (with error feedback: C(g^m + e^m), e^m <- rest);
  bytes per step: M payloads of C (8 d each for ``compressor = "none"``).
* :func:`local_sgd_rounds`: each worker steps alone; every ``period`` steps the models are averaged
  (M d 8 bytes per average). With period 1 it equals :func:`data_parallel_sgd` without compression.
"""
from __future__ import annotations

import math

import numpy as np

from ..validation import CourseError, check_int, check_positive

__all__ = ["data_parallel_sgd", "local_sgd_rounds", "COMPRESSORS"]

COMPRESSORS = ("none", "top_k", "random_k", "scaled_sign", "qsgd")


def _sampler(oracle, batch_size, sampling, seed):
    from ..stochastic import MinibatchSampler

    if not hasattr(oracle, "n"):
        raise CourseError("data-parallel methods need a finite-sum workload (grad_batch), e.g. logistic_regression.")
    return MinibatchSampler(oracle.n, batch_size, sampling, seed, oracle.backend)


def _tensor(g):
    import torch

    from ..backend import to_numpy

    return torch.from_numpy(np.array(to_numpy(g), dtype=np.float64))


def _compress(name, k_fraction, levels, d, seed):
    """A function p -> Message for the compressor ``name`` (random-k's generator is seeded alike for every worker)."""
    import torch

    from . import compression as C

    if name not in COMPRESSORS:
        raise CourseError(f"compressor must be one of {', '.join(COMPRESSORS)}; got {name!r}.")
    k = max(1, min(d, int(round(check_positive(k_fraction, "k_fraction") * d))))
    if name == "none":
        return lambda p, w: C.Message(p, (p,), "none", d)
    if name == "top_k":
        return lambda p, w: C.top_k(p, k)
    if name == "scaled_sign":
        return lambda p, w: C.scaled_sign(p)
    gens = {}

    def gen(w):  # random-k: one generator per worker, all seeded alike (shared indices); QSGD: per-worker seeds
        if w not in gens:
            gens[w] = torch.Generator().manual_seed(int(seed) + (0 if name == "random_k" else 7919 * (w + 1)))
        return gens[w]

    if name == "random_k":
        return lambda p, w: C.random_k(p, k, gen(w))
    return lambda p, w: C.qsgd(p, check_int(levels, "levels", 1), gen(w))


def data_parallel_sgd(oracle, x0, *, seed: int = 0, step_size: float, workers: int = 4, batch_size: int = 16,
                      compressor: str = "none", k_fraction: float = 0.1, levels: int = 4,
                      error_feedback: bool = False, max_bytes: float = math.inf, sampling: str = "with_replacement"):
    """Synchronous data-parallel SGD with compressed gradients, M workers simulated in one process.

    Update rule: x_{t+1} = x_t - eta (1/M) sum_m C(p_t^m), p_t^m = g_t^m + e_t^m, e_{t+1}^m = p_t^m - C(p_t^m)
    (e = 0 without error feedback); g_t^m = grad_batch(x_t, B_t^m).

    Args:
        oracle, x0, seed: given by the harness. step_size: eta. workers: M. batch_size: per worker.
        compressor: "none", "top_k", "random_k" (k = round(k_fraction d)), "scaled_sign", "qsgd" (``levels``).
        error_feedback: keep each worker's residual.
        max_bytes: stop before the step whose messages would exceed this many bytes (summed over workers).
        sampling: the minibatch sampler's (course_lib.stochastic.MinibatchSampler).
    Returns:
        the last iterate (the harness also stops the run when its own budget is spent).
    """
    import torch

    check_positive(step_size, "step_size")
    M = check_int(workers, "workers", 1)
    sampler = _sampler(oracle, check_int(batch_size, "batch_size", 1), sampling, seed)
    d = oracle.dim
    compress = _compress(compressor, k_fraction, levels, d, seed)
    residual = [torch.zeros(d, dtype=torch.float64) for _ in range(M)]
    x, sent = x0, 0
    while True:
        msgs = []
        for m in range(M):
            g = _tensor(oracle.grad_batch(x, sampler()))
            if error_feedback:
                p = g + residual[m]
                msg = compress(p, m)
                residual[m] = p - msg.dense
            else:
                msg = compress(g, m)
            msgs.append(msg)
        step_bytes = sum(msg.nbytes for msg in msgs)
        if sent + step_bytes > max_bytes:
            return x
        sent += step_bytes
        avg = sum(msg.dense for msg in msgs) / M
        x = x - step_size * oracle.asarray(avg.numpy())


def local_sgd_rounds(oracle, x0, *, seed: int = 0, step_size: float, workers: int = 4, batch_size: int = 16,
                     period: int = 10, max_bytes: float = math.inf, sampling: str = "with_replacement"):
    """Local SGD: each of M simulated workers steps on its own minibatches; every ``period`` steps, the average.

    Update rule: x^m <- x^m - eta grad_batch(x^m, B^m); after every H = ``period`` steps x^m <- (1/M) sum x^m'.
    (Stich, ICLR 2019.) Bytes: M d 8 per average (the parameters, uploaded by every worker).

    Args:
        as :func:`data_parallel_sgd`; period: H.
    Returns:
        the workers' average at the last completed round.
    """
    check_positive(step_size, "step_size")
    M, H = check_int(workers, "workers", 1), check_int(period, "period", 1)
    sampler = _sampler(oracle, check_int(batch_size, "batch_size", 1), sampling, seed)
    x = x0
    round_bytes = M * oracle.dim * 8
    sent = 0
    oracle.observe(x0)  # the curve follows the averaged iterates, not the workers' local points
    while sent + round_bytes <= max_bytes:
        local = [x] * M
        for _ in range(H):
            local = [z - step_size * oracle.grad_batch(z, sampler()) for z in local]
        sent += round_bytes
        x = sum(local[1:], local[0]) / M
        oracle.observe(x)
    return x
