"""Synchronous data-parallel SGD with ``torch.nn.parallel.DistributedDataParallel``, and its single-process twin.

Update rule (M workers, local mini-batches B_t^1..B_t^M of equal size b):
    g_t = (1/M) sum_m grad L_{B_t^m}(x_t) = grad L_{B_t}(x_t),   x_{t+1} = x_t - eta g_t,
where B_t is the concatenation of the local batches: averaging the workers' mean-loss gradients is the gradient
of the mean loss on B_t. So M-worker DDP equals single-process SGD with batch M b on the same samples
(:func:`sgd_reference`), up to rounding: the tests check it in float64 with gloo, and with NCCL where GPUs are.
DDP's guarantee is exactly that equivalence (Li et al., "PyTorch Distributed", VLDB 2020); SGD's rates
then apply with the batch size M b. A communication hook (``course_lib.distributed.compression``) replaces
the exact average by a compressed one; the hook's state counts the bytes.
"""
from __future__ import annotations

import time

from ..validation import check_int, check_positive
from .workload import RunLog, Workload

__all__ = ["ddp_sgd", "sgd_reference"]


def _optimizer(params, step_size, momentum):
    import torch

    return torch.optim.SGD(params, lr=step_size, momentum=momentum)


def ddp_sgd(rank: int, world_size: int, workload: Workload, n_steps: int, step_size: float, batch_size: int = 32,
            hook: str = "allreduce", hook_options: dict | None = None, momentum: float = 0.0, seed: int = 0,
            log_every: int = 10, slowdown_s=None, device: str = "cpu"):
    """Run DDP SGD on this rank (call it through :func:`~course_lib.distributed.launch.launch`).

    Args:
        rank, world_size: this worker and the group size (``launch`` passes them).
        workload: data and model.
        n_steps: optimizer steps; step_size: eta; batch_size: b, per worker; momentum: heavy-ball momentum.
        hook: a name of :data:`~course_lib.distributed.compression.HOOKS` ("allreduce" is plain DDP).
        hook_options: its options (``k``, ``levels``, ``rank``, ``error_feedback``, ...).
        seed: model initialisation and data order.
        log_every: rank 0 evaluates every this many steps.
        slowdown_s: per-rank extra seconds per step (heterogeneous workers), e.g. ``[0, 0.01]``.
        device: "cpu" (gloo) or "cuda" (NCCL: rank r uses GPU r).
    Returns:
        on rank 0 the Trace (``info``: bytes uploaded by all workers, seconds, accuracy); on the others None.
    """
    import torch
    from torch.nn.parallel import DistributedDataParallel as DDP

    from .compression import make_hook

    n_steps, batch_size = check_int(n_steps, "n_steps", 1), check_int(batch_size, "batch_size", 1)
    check_positive(step_size, "step_size")
    if device == "cuda":
        device = f"cuda:{torch.cuda.current_device()}"
        workload = workload.to(device)
    model = workload.model(seed)
    ddp = DDP(model, device_ids=[torch.device(device).index] if device.startswith("cuda") else None)
    opts = dict(hook_options or {})
    state, fn = make_hook(hook, seed=seed, **opts)
    ddp.register_comm_hook(state, fn)
    opt = _optimizer(ddp.parameters(), step_size, momentum)
    delay = float((slowdown_s or [0.0] * world_size)[rank])
    log = RunLog(workload, model, f"ddp_{hook}", dict(step_size=step_size, batch_size=batch_size, hook=hook,
                                                      world_size=world_size, **opts), n_steps, log_every, rank == 0)
    log.record(0, 0)
    for k in range(n_steps):
        log.start()
        if delay:
            time.sleep(delay)
        opt.zero_grad(set_to_none=True)
        workload.loss(ddp, workload.batch(k, rank, world_size, batch_size, seed)).backward()
        opt.step()
        log.stop()
        if not log.record(k + 1, state.bytes_sent * world_size):
            break
    return log.finish()


def sgd_reference(workload: Workload, n_steps: int, step_size: float, batch_size: int, world_size: int = 1,
                  momentum: float = 0.0, seed: int = 0, log_every: int = 10):
    """Single-process SGD (torch.optim.SGD) on the concatenated batches of ``world_size`` workers of batch b.

    Args:
        as :func:`ddp_sgd`; the mini-batch at step k is the union of the workers' batches at step k.
    Returns:
        the Trace (bytes = 0: nothing is communicated).
    """
    from .workload import single_thread

    with single_thread():
        return _sgd_reference(workload, n_steps, step_size, batch_size, world_size, momentum, seed, log_every)


def _sgd_reference(workload, n_steps, step_size, batch_size, world_size, momentum, seed, log_every):
    import torch

    model = workload.model(seed)
    opt = _optimizer(model.parameters(), step_size, momentum)
    log = RunLog(workload, model, "sgd", dict(step_size=step_size, batch_size=batch_size * world_size), n_steps,
                 log_every)
    log.record(0, 0)
    for k in range(n_steps):
        log.start()
        idx = torch.cat([workload.batch(k, r, world_size, batch_size, seed) for r in range(world_size)])
        opt.zero_grad(set_to_none=True)
        workload.loss(model, idx).backward()
        opt.step()
        log.stop()
        if not log.record(k + 1, 0):
            break
    return log.finish()
