"""Adam's descendants as pure optimizers (init, update): RAdam, AdaBelief, Adafactor, LAMB, Lion, Adam-mini.

Same shape as :mod:`course_lib.optimizers` (where SGD, Adam, AdamW, AMSGrad and NAdam live):
``state = opt.init(params)``, ``params, state = opt.update(grad, state, params)``; ``params`` is an
array or a list of arrays on any backend; nothing is mutated. Each rule follows its reference to
the letter (tests/test_adam_variants.py): ``torch.optim.RAdam`` and ``torch.optim.Adafactor``;
``pytorch_optimizer``'s ``AdaBelief``, ``Lamb``, ``Lion`` and ``AdamMini`` (v4.1) where torch has
none. In float64 the trajectories agree to 1e-12, except Adam-mini, whose reference keeps its
state in float32 whatever the parameter dtype (checked in float32 instead, see :func:`adam_mini`).

The state each one keeps is the research question of the Adam-variants kit (``state_numel``):
AdamW 2 floats per parameter, AMSGrad 3, Lion 1, Adafactor about (m + n) per m x n matrix,
Adam-mini 1 plus one per block.

Example:
    >>> import numpy as np
    >>> opt = lion(lr=0.1)
    >>> x = np.array([1.0, -2.0]); x, _ = opt.update(np.array([3.0, -0.1]), opt.init(x), x)
    >>> x  # sign of the momentum-interpolated gradient, times lr
    array([ 0.9, -1.9])
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

from .backend import namespace
from .optimizers import Optimizer, TorchOptimizer, _betas, _check_common, _lift, _lr_fn, _weight_decay, _zeros
from .optimizers import state_numel
from .validation import CourseError, check_int, check_positive

__all__ = ["radam", "adabelief", "adafactor", "lamb", "lion", "adam_mini", "adam_mini_blocks", "adam_mini_torch",
           "TorchOptimizerGroups", "RAdamState", "AdaBeliefState", "AdafactorState", "LambState", "LionState",
           "AdamMiniState"]


def _norm(x):
    xp = namespace(x)
    return xp.sqrt(xp.sum(x * x))


def _numel(x) -> int:
    return int(math.prod(tuple(x.shape)))


def _neg(g, maximize):
    return -g if maximize else g


# -- RAdam -----------------------------------------------------------------------------------------
class RAdamState(NamedTuple):
    step: int
    m: Any
    v: Any


def radam(lr=1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
          decoupled_weight_decay: bool = False, maximize: bool = False) -> Optimizer:
    """RAdam (rectified Adam), as ``torch.optim.RAdam``.

    Update (weight decay as in :func:`course_lib.optimizers.adam`)::

        m_t = beta1 m + (1 - beta1) g,   v_t = beta2 v + (1 - beta2) g^2
        rho_inf = 2/(1 - beta2) - 1,   rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
        r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
        x  <- x - lr_t r_t m_t/(1 - beta1^t) * sqrt(1 - beta2^t) / (sqrt(v_t) + eps)   if rho_t > 5
        x  <- x - lr_t m_t/(1 - beta1^t)                                              otherwise (SGD-momentum warm-up)

    Guarantee: none beyond Adam's; the rectifier r_t makes the variance of the adaptive step
    roughly constant in t, which removes the need for a warm-up (Liu et al., *On the variance of
    the adaptive learning rate and beyond*, ICLR 2020, Sec. 4).

    Args:
        lr: step size or schedule. betas: (beta1, beta2) in [0, 1). eps: > 0. weight_decay: >= 0.
        decoupled_weight_decay: AdamW-style decay. maximize: ascend.
    Returns:
        An :class:`Optimizer` with state :class:`RAdamState`.
    """
    _check_common(lr, weight_decay)
    beta1, beta2 = _betas(betas)
    check_positive(eps, "eps", allow_zero=True)
    lr_t = _lr_fn(lr)
    rho_inf = 2 / (1 - beta2) - 1

    def init(x):
        return RAdamState(0, _zeros(x), _zeros(x))

    def update(g, state, x):
        xp = namespace(x)
        t = state.step + 1
        lr_now = lr_t(t)
        g, x = _weight_decay(_neg(g, maximize), x, lr_now, weight_decay, decoupled_weight_decay)
        m = state.m + (1 - beta1) * (g - state.m)
        v = beta2 * state.v + (1 - beta2) * (g * g)
        bc1, bc2 = 1 - beta1**t, 1 - beta2**t
        rho_t = rho_inf - 2 * t * beta2**t / bc2
        m_hat = m / bc1
        if rho_t > 5.0:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            x = x - m_hat * lr_now * rect * (bc2**0.5 / (xp.sqrt(v) + eps))
        else:
            x = x - m_hat * lr_now
        return x, RAdamState(t, m, v)

    return _lift("radam", dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay,
                               decoupled_weight_decay=decoupled_weight_decay, maximize=maximize), init, update)


# -- AdaBelief ---------------------------------------------------------------------------------------
class AdaBeliefState(NamedTuple):
    step: int
    m: Any
    s: Any  # exp_avg_var: EMA of (g - m)^2


def adabelief(lr=1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-16, weight_decay: float = 0.0,
              weight_decouple: bool = True, maximize: bool = False) -> Optimizer:
    """AdaBelief, as ``pytorch_optimizer.AdaBelief`` (its defaults: no rectification, no AMS bound).

    Update (the second moment tracks the *belief* (g - m)^2 instead of g^2)::

        x   <- (1 - lr weight_decay) x      (weight_decouple)   or   g <- g + weight_decay x
        m_t  = beta1 m + (1 - beta1) g
        s_t  = beta2 s + (1 - beta2) (g - m_t)^2 + eps
        x   <- x - lr/(1 - beta1^t) * m_t / (sqrt(s_t)/sqrt(1 - beta2^t) + eps)

    Guarantee: O(sqrt(T)) regret for online convex problems with lr_t = lr/sqrt(t) and a
    non-increasing beta1 schedule (Zhuang et al., *AdaBelief optimizer: adapting stepsizes by the
    belief in observed gradients*, NeurIPS 2020, Thm 2.1); with a constant beta1 that analysis does
    not apply. eps enters twice (inside s_t, as the paper's Algorithm 2 and the reference do).

    Args:
        lr: step size or schedule. betas: (beta1, beta2). eps: >= 0 (default 1e-16, the reference's).
        weight_decay: >= 0. weight_decouple: AdamW-style decay (the reference's default).
        maximize: ascend.
    Returns:
        An :class:`Optimizer` with state :class:`AdaBeliefState`.
    """
    _check_common(lr, weight_decay)
    beta1, beta2 = _betas(betas)
    check_positive(eps, "eps", allow_zero=True)
    lr_t = _lr_fn(lr)

    def init(x):
        return AdaBeliefState(0, _zeros(x), _zeros(x))

    def update(g, state, x):
        xp = namespace(x)
        t = state.step + 1
        lr_now = lr_t(t)
        g, x = _weight_decay(_neg(g, maximize), x, lr_now, weight_decay, weight_decouple)
        m = state.m + (1 - beta1) * (g - state.m)
        r = g - m
        s = beta2 * state.s + (1 - beta2) * (r * r) + eps
        denom = xp.sqrt(s) / math.sqrt(1 - beta2**t) + eps
        return x - (lr_now / (1 - beta1**t)) * (m / denom), AdaBeliefState(t, m, s)

    return _lift("adabelief", dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay,
                                   weight_decouple=weight_decouple, maximize=maximize), init, update)


# -- Adafactor ---------------------------------------------------------------------------------------
class AdafactorState(NamedTuple):
    step: int
    row: Any  # factored second moment, rows (matrices only; else None)
    col: Any  # factored second moment, columns (matrices only; else None)
    v: Any  # full second moment (vectors and scalars only; else None)


def adafactor(lr=1e-2, beta2_decay: float = -0.8, eps: tuple = (None, 1e-3), d: float = 1.0,
              weight_decay: float = 0.0, maximize: bool = False) -> Optimizer:
    """Adafactor without momentum, as ``torch.optim.Adafactor``.

    For an (..., m, n) parameter the second moment is kept factored, a row vector R and a column
    vector C, so the state is m + n floats instead of m n (vectors keep the full v)::

        beta2_t = 1 - t^beta2_decay,   rho_t = min(lr_t, 1/sqrt(t))
        alpha_t = max(eps2, ||x|| / sqrt(numel)) rho_t                (relative step size)
        x   <- (1 - lr_t weight_decay) x
        R_t  = beta2_t R + (1 - beta2_t) mean_cols(g^2),   C_t = beta2_t C + (1 - beta2_t) mean_rows(g^2)
        V    = R_t C_t / max(mean(R_t), eps1)        (rank-1 estimate; vectors: V = v_t)
        u    = g / sqrt(max(V, eps1^2)),   x <- x - alpha_t / max(1, RMS(u)/d) u   (update clipping)

    Guarantee: none; the rank-1 factorisation is the minimiser of the generalised KL divergence
    to the full second-moment matrix (Shazeer & Stern, *Adafactor: adaptive learning rates with
    sublinear memory cost*, ICML 2018, Sec. 3). Unlike the paper's relative step the torch
    reference multiplies by min(lr, 1/sqrt(t)), as here.

    Args:
        lr: step size or schedule. beta2_decay: <= 0 (the paper's -0.8). eps: (eps1, eps2); eps1
        None means the dtype's machine epsilon. d: clipping threshold >= 1. weight_decay: >= 0.
        maximize: ascend.
    Returns:
        An :class:`Optimizer` with state :class:`AdafactorState`.
    """
    _check_common(lr, weight_decay)
    if not isinstance(eps, (tuple, list)) or len(eps) != 2:
        raise CourseError(f"eps must be a pair (eps1, eps2), got {eps!r}. Try eps=(None, 1e-3).")
    eps1 = None if eps[0] is None else check_positive(eps[0], "eps[0]", allow_zero=True)
    eps2 = check_positive(eps[1], "eps[1]", allow_zero=True)
    beta2_decay = float(beta2_decay)
    if not beta2_decay <= 0:
        raise CourseError(f"beta2_decay must be <= 0, got {beta2_decay!r}. Try beta2_decay=-0.8.")
    if not float(d) >= 1:
        raise CourseError(f"d (the clipping threshold) must be >= 1, got {d!r}. Try d=1.0.")
    d = float(d)
    lr_t = _lr_fn(lr)

    def init(x):
        xp = namespace(x)
        if x.ndim > 1:
            return AdafactorState(0, xp.zeros((*x.shape[:-1], 1), dtype=x.dtype, device=x.device),
                                  xp.zeros((*x.shape[:-2], 1, x.shape[-1]), dtype=x.dtype, device=x.device), None)
        return AdafactorState(0, None, None, _zeros(x))

    def update(g, state, x):
        xp = namespace(x)
        g = _neg(g, maximize)
        t = state.step + 1
        lr_now = lr_t(t)
        e1 = xp.finfo(x.dtype).eps if eps1 is None else eps1
        w = float(t) ** beta2_decay  # 1 - beta2_t
        rho = min(lr_now, 1 / float(t) ** 0.5)
        alpha = max(eps2, float(_norm(x)) / _numel(x) ** 0.5) * rho
        if weight_decay != 0:
            x = x * (1 - lr_now * weight_decay)
        row, col, v = state.row, state.col, state.v
        gg = g * g
        if x.ndim > 1:
            row = row + w * (xp.mean(gg, axis=-1, keepdims=True) - row)
            col = col + w * (xp.mean(gg, axis=-2, keepdims=True) - col)
            V = (row @ col) / xp.clip(xp.mean(row, axis=-2, keepdims=True), min=e1)
        else:
            v = V = v + w * (gg - v)
        u = g / xp.sqrt(xp.clip(V, min=e1 * e1))
        denom = max(1.0, float(_norm(u)) / (_numel(u) ** 0.5 * d))
        return x - (alpha / denom) * u, AdafactorState(t, row, col, v)

    return _lift("adafactor", dict(lr=lr, beta2_decay=beta2_decay, eps=(eps1, eps2), d=d, weight_decay=weight_decay,
                                   maximize=maximize), init, update)


# -- LAMB --------------------------------------------------------------------------------------------
class LambState(NamedTuple):
    step: int
    m: Any
    v: Any


def lamb(lr=1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-6, weight_decay: float = 0.0,
         weight_decouple: bool = True, clamp: float = 10.0, maximize: bool = False) -> Optimizer:
    """LAMB (layer-wise adaptive moments), as ``pytorch_optimizer.Lamb`` with its defaults.

    Update, per parameter tensor (a "layer")::

        m_t = beta1 m + (1 - beta1) g,   v_t = beta2 v + (1 - beta2) g^2
        x  <- (1 - lr weight_decay) x                       (weight_decouple)
        u   = m_t / (sqrt(v_t) + eps)   (+ weight_decay x when not weight_decouple)
        r   = min(||x||, clamp) / (||u|| + eps)   (r = 1 if either norm is 0)     trust ratio
        x  <- x - lr/(1 - beta1^t) r u

    Guarantee: on a smooth nonconvex f, the expected gradient norm of a random iterate is bounded
    through the *average* of the per-layer smoothness constants instead of the largest one, which
    is why large batches train stably (You et al., *Large batch optimization for deep learning:
    training BERT in 76 minutes*, ICLR 2020, Thm 3, stated for beta1 = 0). The reference bias-corrects m only through the step size (v uncorrected), as here.

    Args:
        lr: step size or schedule. betas: (beta1, beta2). eps: > 0. weight_decay: >= 0.
        weight_decouple: decoupled decay (the reference's default). clamp: cap on ||x|| (10).
        maximize: ascend.
    Returns:
        An :class:`Optimizer` with state :class:`LambState`.
    """
    _check_common(lr, weight_decay)
    beta1, beta2 = _betas(betas)
    check_positive(eps, "eps", allow_zero=True)
    clamp = check_positive(clamp, "clamp")
    lr_t = _lr_fn(lr)

    def init(x):
        return LambState(0, _zeros(x), _zeros(x))

    def update(g, state, x):
        xp = namespace(x)
        t = state.step + 1
        lr_now = lr_t(t)
        g = _neg(g, maximize)
        m = beta1 * state.m + (1 - beta1) * g
        v = beta2 * state.v + (1 - beta2) * (g * g)
        if weight_decouple and weight_decay != 0:
            x = x * (1 - lr_now * weight_decay)
        u = m / (xp.sqrt(v) + eps)
        if not weight_decouple and weight_decay != 0:
            u = u + weight_decay * x
        wn, un = min(float(_norm(x)), clamp), float(_norm(u))
        trust = 1.0 if wn == 0 or un == 0 else wn / (un + eps)
        return x - (lr_now / (1 - beta1**t) * trust) * u, LambState(t, m, v)

    return _lift("lamb", dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay,
                              weight_decouple=weight_decouple, clamp=clamp, maximize=maximize), init, update)


# -- Lion --------------------------------------------------------------------------------------------
class LionState(NamedTuple):
    step: int
    m: Any


def lion(lr=1e-4, betas: tuple = (0.9, 0.99), weight_decay: float = 0.0, weight_decouple: bool = True,
         maximize: bool = False) -> Optimizer:
    """Lion (evolved sign momentum), as ``pytorch_optimizer.Lion``.

    Update::

        x  <- (1 - lr weight_decay) x                    (weight_decouple; else g <- g + weight_decay x)
        x  <- x - lr sign(beta1 m + (1 - beta1) g)
        m  <- beta2 m + (1 - beta2) g

    Guarantee: Lion with decoupled weight decay solves the box-constrained problem
    min f(x) s.t. ||x||_inf <= 1/weight_decay: its iterates enter the box and a Lyapunov
    function decreases (Chen, Liu, Liang & Liu, *Lion secretly solves constrained optimization*,
    ICLR 2024). Discovered by program search (Chen et al., *Symbolic discovery of optimization
    algorithms*, NeurIPS 2023). One state vector: half Adam's memory.

    Args:
        lr: step size or schedule. betas: (beta1 interpolation, beta2 momentum). weight_decay: >= 0.
        weight_decouple: decoupled decay (default). maximize: ascend.
    Returns:
        An :class:`Optimizer` with state :class:`LionState`.
    """
    _check_common(lr, weight_decay)
    beta1, beta2 = _betas(betas)
    lr_t = _lr_fn(lr)

    def init(x):
        return LionState(0, _zeros(x))

    def update(g, state, x):
        xp = namespace(x)
        t = state.step + 1
        lr_now = lr_t(t)
        g, x = _weight_decay(_neg(g, maximize), x, lr_now, weight_decay, weight_decouple)
        direction = xp.sign(state.m + (1 - beta1) * (g - state.m))
        m = state.m + (1 - beta2) * (g - state.m)
        return x - lr_now * direction, LionState(t, m)

    return _lift("lion", dict(lr=lr, betas=(beta1, beta2), weight_decay=weight_decay,
                              weight_decouple=weight_decouple, maximize=maximize), init, update)


# -- Adam-mini ---------------------------------------------------------------------------------------
class AdamMiniState(NamedTuple):
    step: int
    m: Any
    v: Any  # one second moment per block: shape (1,) (block=None), per row of `block` entries, or per entry


def adam_mini(lr=1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0, block=None,
              maximize: bool = False) -> Optimizer:
    """Adam-mini: Adam whose second moment is one number per block of parameters.

    Update, for blocks B of the parameter (``block``: None = the whole tensor is one block;
    an int k = consecutive rows of k entries, e.g. one attention head; "full" = every entry is a
    block, i.e. Adam)::

        x   <- (1 - lr weight_decay) x
        m_t  = beta1 m + (1 - beta1) g,   v_B = beta2 v_B + (1 - beta2) mean_{i in B} g_i^2
        x_i <- x_i - lr/(1 - beta1^t) m_i / (sqrt(v_B)/sqrt(1 - beta2^t) + eps)   for i in B

    Guarantee: none beyond Adam's; the paper shows the Hessian of a transformer is near
    block-diagonal by heads and layers, so one learning rate per block loses little, and cuts the
    optimizer state by 45-50% (Zhang et al., *Adam-mini: use fewer learning rates to gain more*,
    ICLR 2025). :func:`adam_mini_blocks` partitions an ``nn.Module`` by the reference's naming rules.

    Reference: ``pytorch_optimizer.AdamMini`` keeps m and v in float32 and casts the gradient to
    float32 whatever the parameter dtype, so it cannot be matched in float64; the tests compare in
    float32 (relative 1e-5) and check the float64 rule against a closed form.

    Args:
        lr: step size or schedule. betas: (beta1, beta2). eps: > 0. weight_decay: >= 0 (decoupled).
        block: None, a positive int (entries per block; must divide the size) or "full". maximize: ascend.
    Returns:
        An :class:`Optimizer` with state :class:`AdamMiniState`.
    """
    _check_common(lr, weight_decay)
    beta1, beta2 = _betas(betas)
    check_positive(eps, "eps", allow_zero=True)
    if not (block is None or block == "full"):
        block = check_int(block, "block", 1)
    lr_t = _lr_fn(lr)

    def _blocks(a):
        n = _numel(a)
        if n % block:
            raise CourseError(f"adam_mini: block={block} does not divide the parameter's {n} entries; pass a block "
                              "size that does (e.g. the entries of one attention head), None or 'full'.")
        return namespace(a).reshape(a, (n // block, block))

    def init(x):
        xp = namespace(x)
        if block == "full":
            v = _zeros(x)
        elif block is None:
            v = xp.zeros((1,), dtype=x.dtype, device=x.device)  # (1,), not (): NumPy would turn () into a scalar
        else:
            v = xp.zeros((_numel(x) // block,), dtype=x.dtype, device=x.device)
        return AdamMiniState(0, _zeros(x), v)

    def update(g, state, x):
        xp = namespace(x)
        t = state.step + 1
        lr_now = lr_t(t)
        g, x = _weight_decay(_neg(g, maximize), x, lr_now, weight_decay, True)
        m = state.m + (1 - beta1) * (g - state.m)
        bc1, bc2_sq = 1 - beta1**t, math.sqrt(1 - beta2**t)
        if block == "full":
            v = beta2 * state.v + (1 - beta2) * (g * g)
            x = x - (lr_now / bc1) * (m / (xp.sqrt(v) / bc2_sq + eps))
        elif block is None:
            v = state.v + (1 - beta2) * (xp.sum(g * g) / _numel(g) - state.v)
            x = x - lr_now * (m * ((1 / bc1) / (xp.sqrt(v) / bc2_sq + eps)))
        else:
            gb = _blocks(g)
            v = state.v + (1 - beta2) * (xp.mean(gb * gb, axis=1) - state.v)
            scale = 1 / ((xp.sqrt(v) / bc2_sq + eps) * bc1)
            x = x - lr_now * xp.reshape(_blocks(m) * scale[:, None], tuple(x.shape))
        return x, AdamMiniState(t, m, v)

    return _lift("adam_mini", dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, block=block,
                                   maximize=maximize), init, update)


_EMBED = ("embed", "embd", "wte", "lm_head.weight", "output.weight")
_QK = ("k_proj.weight", "q_proj.weight", "wq.weight", "wk.weight")


def adam_mini_blocks(model, num_embeds: int | None = None, num_heads: int | None = None) -> dict:
    """Adam-mini's partition of an ``nn.Module``, by parameter name (the rules of the reference).

    Embedding and output layers ("embed", "wte", "lm_head.weight", ...) keep one v per entry;
    query/key projections ("q_proj.weight", "k_proj.weight", ...) one per head of
    num_embeds^2/num_heads entries; every other tensor one v in all. Names holding "norm" or
    "ln_f" get no weight decay.

    Returns:
        {parameter name: (block, decay)} with block as in :func:`adam_mini` and decay a bool.
    """
    out = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if any(b in name for b in _EMBED):
            block = "full"
        elif any(b in name for b in _QK):
            if not num_embeds or not num_heads:
                raise CourseError(f"adam_mini_blocks: {name} is a query/key projection; pass num_embeds and num_heads "
                                  "so it can be split by heads.")
            block = num_embeds * num_embeds // num_heads
        elif "attn.attn.weight" in name or "attn.qkv.weight" in name:
            raise CourseError(f"adam_mini_blocks: fused attention weights ({name}) are not supported; use separate "
                              "q_proj/k_proj/v_proj layers.")
        else:
            block = None
        out[name] = (block, not ("norm" in name or "ln_f" in name))
    return out


class TorchOptimizerGroups:
    """Several :class:`course_lib.optimizers.TorchOptimizer` driven as one (like torch's param groups).

    ``step(closure=None)`` evaluates the closure once (if given) and steps every group; the
    closure's loss is returned, as torch.optim does.
    """

    def __init__(self, groups):
        self.groups = [g for g in groups if g.params]
        if not self.groups:
            raise CourseError("TorchOptimizerGroups needs at least one group with parameters.")

    @property
    def params(self):
        return [p for g in self.groups for p in g.params]

    def zero_grad(self) -> None:
        for g in self.groups:
            g.zero_grad()

    def step(self, closure=None):
        loss = None
        if closure is not None:
            import torch

            with torch.enable_grad():
                loss = closure()
        for g in self.groups:
            g.step()
        return loss

    def state_numel(self) -> int:
        return sum(state_numel(g.state) for g in self.groups)


def adam_mini_torch(model, lr=1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.1,
                    num_embeds: int | None = None, num_heads: int | None = None) -> TorchOptimizerGroups:
    """Adam-mini for an ``nn.Module``: :func:`adam_mini` on each block type of :func:`adam_mini_blocks`.

    A drop-in for ``pytorch_optimizer.AdamMini(model, lr, betas, weight_decay, num_embeds=..., num_heads=...)``
    (same defaults: weight_decay 0.1, none on norm layers).
    """
    groups: dict = {}
    params = dict(model.named_parameters())
    for name, (block, decay) in adam_mini_blocks(model, num_embeds, num_heads).items():
        groups.setdefault((block, decay), []).append(params[name])
    return TorchOptimizerGroups([
        TorchOptimizer(adam_mini(lr, betas, eps, weight_decay if decay else 0.0, block=block), ps)
        for (block, decay), ps in groups.items()])
