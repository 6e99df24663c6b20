"""Local SGD and post-local SGD: workers step alone and average their models every H steps.

Update rule (M workers, period H, warm-up W):
    t < W:                x_{t+1} = x_t - eta (1/M) sum_m g_t^m                 (synchronous DDP steps)
    t >= W, local:        x_{t+1}^m = x_t^m - eta g_t^m(x_t^m)                  (no communication)
    every H local steps:  x^m <- (1/M) sum_m' x^m'                               (one allreduce of the parameters)
With W = 0 this is local SGD (Stich, ICLR 2019: for smooth convex and strongly convex problems it keeps the rate of
mini-batch SGD with H up to ~sqrt(T/M) while communicating H times less); W > 0 is post-local SGD (Lin, Stich,
Patel & Jaggi, ICLR 2020). Built on torch's own pieces: the ``post_localSGD_hook`` of DDP (global allreduce for the
first W steps, then only within a one-rank subgroup -- ``dist.new_subgroups(group_size=1)``, since the hook's
default subgroup needs CUDA) and ``model_averaging.averagers.PeriodicModelAverager`` (averaging every H steps
after its warm-up; warm-up W + H - 1 makes the first average fall after H local steps).
"""
from __future__ import annotations

import time

from ..validation import CourseError, check_int, check_positive
from .workload import RunLog, Workload

__all__ = ["local_sgd"]


def local_sgd(rank: int, world_size: int, workload: Workload, n_steps: int, step_size: float, period: int,
              warmup_steps: int = 0, batch_size: int = 32, seed: int = 0, log_every: int = 10, slowdown_s=None):
    """Run (post-)local SGD on this rank (through :func:`~course_lib.distributed.launch.launch`).

    Args:
        rank, world_size: passed by ``launch``.
        workload: data and model; n_steps: local steps per worker; step_size: eta; batch_size: per worker.
        period: H, local steps between model averages (1: every step).
        warmup_steps: W, synchronous DDP steps before going local (0: plain local SGD).
        seed: initialisation and data order (the same as :func:`~course_lib.distributed.ddp.ddp_sgd`'s).
        log_every: rank 0 evaluates every this many steps (its own model between averages).
        slowdown_s: per-rank extra seconds per step.
    Returns:
        on rank 0 the Trace (``info["bytes"]``: bytes uploaded by all workers); None elsewhere.
    """
    import torch
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks.post_localSGD_hook import PostLocalSGDState, post_localSGD_hook
    from torch.distributed.algorithms.model_averaging.averagers import PeriodicModelAverager
    from torch.nn.parallel import DistributedDataParallel as DDP

    n_steps, batch_size = check_int(n_steps, "n_steps", 1), check_int(batch_size, "batch_size", 1)
    period, warmup_steps = check_int(period, "period", 1), check_int(warmup_steps, "warmup_steps", 0)
    check_positive(step_size, "step_size")
    if warmup_steps >= n_steps:
        raise CourseError(f"warmup_steps={warmup_steps} leaves no local step of n_steps={n_steps}; lower it.")
    model = workload.model(seed)
    net = model
    if warmup_steps:
        subgroup, _ = dist.new_subgroups(group_size=1)
        net = DDP(model)
        net.register_comm_hook(PostLocalSGDState(process_group=None, subgroup=subgroup,
                                                 start_localSGD_iter=warmup_steps), post_localSGD_hook)
    averager = PeriodicModelAverager(period=period, warmup_steps=warmup_steps + period - 1)
    opt = torch.optim.SGD(net.parameters(), lr=step_size)
    numel = sum(p.numel() for p in model.parameters())
    elem = next(model.parameters()).element_size()
    delay = float((slowdown_s or [0.0] * world_size)[rank])
    name = "post_local_sgd" if warmup_steps else "local_sgd"
    log = RunLog(workload, model, name, dict(step_size=step_size, period=period, warmup_steps=warmup_steps,
                                            batch_size=batch_size, world_size=world_size), n_steps, log_every,
                 rank == 0)
    log.record(0, 0)
    sent = 0
    for k in range(n_steps):
        log.start()
        if delay:
            time.sleep(delay)
        opt.zero_grad(set_to_none=True)
        workload.loss(net, workload.batch(k, rank, world_size, batch_size, seed)).backward()
        opt.step()
        averaged = k >= warmup_steps + period - 1 and (k - warmup_steps - period + 1) % period == 0
        averager.average_parameters(model.parameters())
        sent += numel * elem * ((k < warmup_steps) + averaged)
        log.stop()
        if not log.record(k + 1, sent * world_size):
            break
    return log.finish()
