"""The harness's own minibatch loop for torch workloads (``kind = "optimizer"`` methods).

Each optimizer step: draw a minibatch (a seeded permutation per epoch), compute the gradient
through the *closure* -- which charges the budget one gradient and ``batch_size`` examples per
call -- then ``optimizer.step()``. With ``closure = true`` in the study, the closure is also
passed to ``step(closure)``, so a SAM-style optimizer that re-evaluates the gradient at a
perturbed point pays for it (two gradients per step). The call that would exceed the budget
raises BudgetExhausted; the parameters are then restored to the last completed step, and the run
ends there.
"""
from __future__ import annotations

import math

import numpy as np

from .oracle import BudgetExhausted, Diverged

__all__ = ["train_torch", "deterministic_torch"]


def deterministic_torch() -> None:
    """One torch thread and deterministic kernels: the same seed then gives bit-identical training."""
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def _takes_model(factory) -> bool:
    import inspect

    try:
        return "model" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def train_torch(workload, make_optimizer, hp: dict, seed: int, budget, curve, metric: str,
                use_closure: bool = False):
    """Train ``workload.model(seed)`` with ``make_optimizer(params, **hp)`` until the budget is spent.

    Args:
        workload: a TorchWorkload. make_optimizer: a torch.optim-style class or factory.
        hp: its hyperparameters. seed: the run seed (weights and minibatch order).
        budget, curve: the run's Budget and Curve. metric: the tracked metric.
        use_closure: pass the closure to ``step`` (SAM-style optimizers, LBFGS).
    Returns:
        (model at the last completed step, number of completed steps).
    """
    import torch

    deterministic_torch()
    torch.manual_seed(seed)
    model = workload.model(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    # An optimizer that needs the model itself (K-FAC's layer hooks) declares a `model` keyword and gets it.
    opt = make_optimizer(params, **hp, **({"model": model} if _takes_model(make_optimizer) else {}))
    X, y = workload.train
    n, bs = X.shape[0], min(workload.batch_size, X.shape[0])
    rng = np.random.default_rng(seed)
    order, pos = rng.permutation(n), 0
    snapshot = [p.detach().clone() for p in params]
    steps = 0
    curve.add(budget.spent(), workload.evaluate(metric, model), force=True)
    while True:
        if pos + bs > n:
            order, pos = rng.permutation(n), 0
        idx = torch.as_tensor(order[pos:pos + bs])
        pos += bs
        xb, yb = X[idx], y[idx]

        def closure():
            budget.charge("gradients", bs)
            opt.zero_grad()
            loss = workload.loss(model(xb), yb)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise Diverged(f"training loss became {value} at step {steps}")
            loss.backward()
            return loss

        try:
            closure()
            opt.step(closure) if use_closure else opt.step()
        except BudgetExhausted:
            break
        steps += 1
        with torch.no_grad():
            for s, p in zip(snapshot, params):
                s.copy_(p)
        if steps % workload.eval_every == 0:
            curve.add(budget.spent(), workload.evaluate(metric, model))
    with torch.no_grad():
        for s, p in zip(snapshot, params):
            p.copy_(s)
    curve.add(budget.spent(), workload.evaluate(metric, model), force=True)
    return model, steps
