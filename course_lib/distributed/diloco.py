"""DiLoCo: H local steps of an inner optimizer, then an outer Nesterov step on the averaged update.

Update rule (Douillard et al., "DiLoCo: Distributed Low-Communication Training of Language Models", 2023,
Algorithm 1), round r, M workers, global parameters theta:
    theta^m <- theta;  H steps of the inner optimizer (AdamW in the paper, SGD here by default) on worker m;
    Delta = theta - (1/M) sum_m theta^m                      (the outer gradient: one allreduce per round)
    theta <- OuterOpt(theta, Delta)                           (SGD with Nesterov momentum, lr 0.7, momentum 0.9)
Reported to match synchronous training on C4 language modelling while communicating ~500x less (H = 500).
With outer lr 1 and no momentum theta becomes the workers' average: DiLoCo is then local SGD with period H
(the tests check this equality). The inner optimizer's state stays on each worker across rounds, as in the paper.
"""
from __future__ import annotations

import time

from ..validation import CourseError, check_int, check_positive
from .workload import RunLog, Workload, flat_params, set_flat_params

__all__ = ["diloco"]


def diloco(rank: int, world_size: int, workload: Workload, n_rounds: int, inner_steps: int, inner_lr: float,
           outer_lr: float = 0.7, outer_momentum: float = 0.9, nesterov: bool = True, inner: str = "sgd",
           batch_size: int = 32, seed: int = 0, log_every: int = 1, slowdown_s=None):
    """Run DiLoCo on this rank (through :func:`~course_lib.distributed.launch.launch`).

    Args:
        rank, world_size: passed by ``launch``.
        workload: data and model; n_rounds: outer steps; inner_steps: H; inner_lr: the inner step size.
        outer_lr, outer_momentum, nesterov: the outer SGD (``torch.optim.SGD``).
        inner: "sgd" or "adamw" (``torch.optim.AdamW``, weight decay 0).
        batch_size: per worker; seed: initialisation and data order (step k = r H + h, as in local SGD).
        log_every: rank 0 evaluates the global model every this many rounds.
        slowdown_s: per-rank extra seconds per inner step.
    Returns:
        on rank 0 the Trace, indexed by inner steps (``info["bytes"]``: uploaded by all workers); None elsewhere.
    """
    import torch
    import torch.distributed as dist

    n_rounds, H = check_int(n_rounds, "n_rounds", 1), check_int(inner_steps, "inner_steps", 1)
    check_positive(inner_lr, "inner_lr")
    check_positive(outer_lr, "outer_lr")
    if inner not in ("sgd", "adamw"):
        raise CourseError(f"inner must be 'sgd' or 'adamw', got {inner!r}.")
    model = workload.model(seed)
    params = list(model.parameters())
    inner_opt = (torch.optim.SGD(params, lr=inner_lr) if inner == "sgd"
                 else torch.optim.AdamW(params, lr=inner_lr, weight_decay=0.0))
    theta = flat_params(model)
    outer_param = torch.nn.Parameter(theta.clone())
    outer_opt = torch.optim.SGD([outer_param], lr=outer_lr, momentum=outer_momentum,
                                nesterov=nesterov and outer_momentum > 0)
    delay = float((slowdown_s or [0.0] * world_size)[rank])
    nbytes = theta.numel() * theta.element_size()
    log = RunLog(workload, model, "diloco", dict(inner_steps=H, inner_lr=inner_lr, outer_lr=outer_lr,
                                                 outer_momentum=outer_momentum, inner=inner, batch_size=batch_size,
                                                 world_size=world_size), n_rounds * H, 1, rank == 0)
    log.record(0, 0)
    for r in range(n_rounds):
        log.start()
        for h in range(H):
            if delay:
                time.sleep(delay)
            inner_opt.zero_grad(set_to_none=True)
            workload.loss(model, workload.batch(r * H + h, rank, world_size, batch_size, seed)).backward()
            inner_opt.step()
        delta = outer_param.detach() - flat_params(model)
        dist.all_reduce(delta)
        outer_param.grad = delta / world_size
        outer_opt.step()
        set_flat_params(model, outer_param.detach())
        log.stop()
        if (r + 1) % log_every == 0 or r + 1 == n_rounds:
            if not log.record((r + 1) * H, (r + 1) * nbytes * world_size, force=True):
                break
    return log.finish()
