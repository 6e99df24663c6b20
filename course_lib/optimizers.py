"""Chapter 2, optimizers as pairs of small pure functions with explicit state (optax style).

An :class:`Optimizer` is ``(init, update)``::

    state = opt.init(params)
    params, state = opt.update(grad, state, params)

``params`` is one array or a list/tuple of arrays (NumPy or torch, CPU or CUDA); ``update``
never modifies its inputs. Each update rule is written once, for one array, with the array API,
and follows ``torch.optim`` to the letter: in float64 the trajectories agree with torch.optim to
1e-12 for every option (tests/test_optimizers.py). ``lr`` may be a number or a schedule
``t -> lr_t`` (t = 1, 2, ... counts updates, as torch's ``state["step"]``).

:class:`TorchOptimizer` applies the same rules to the parameters of a torch ``nn.Module``, so
a training loop can swap ``torch.optim.Adam(model.parameters())`` for
``TorchOptimizer(adam(), model.parameters())`` and compare the two side by side.

Example:
    >>> import numpy as np
    >>> opt = adam(lr=0.1)
    >>> x = np.array([1.0, -2.0]); state = opt.init(x)
    >>> x, state = opt.update(2 * x, state, x)   # one step on f(x) = ||x||^2
    >>> np.round(x, 6)
    array([ 0.9, -1.9])
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

from .backend import is_torch, namespace
from .validation import CourseError, check_in_range, check_positive

__all__ = ["Optimizer", "sgd", "adagrad", "rmsprop", "adam", "adamw", "amsgrad", "nadam",
           "state_numel", "TorchOptimizer", "SGDState", "AdagradState", "RMSpropState", "AdamState",
           "NAdamState"]


class Optimizer(NamedTuple):
    """A pure optimizer: ``init(params) -> state``, ``update(grad, state, params) -> (params, state)``."""

    init: Callable[[Any], Any]
    update: Callable[[Any, Any, Any], tuple]
    name: str = "optimizer"
    hyper: dict = {}


def _lift(name: str, hyper: dict, init_leaf, update_leaf) -> Optimizer:
    """Lift one-array rules to ``params`` given as an array or a list/tuple of arrays."""

    def init(params):
        if isinstance(params, (list, tuple)):
            return [init_leaf(p) for p in params]
        return init_leaf(params)

    def update(grad, state, params):
        if isinstance(params, (list, tuple)):
            if not isinstance(grad, (list, tuple)) or len(grad) != len(params):
                raise CourseError(f"{name}: grad must be a list of {len(params)} arrays, one per parameter, "
                                  f"got {type(grad).__name__}.")
            pairs = [update_leaf(_match(g, p, f"grad[{i}]"), s, p) for i, (g, s, p) in enumerate(zip(grad, state, params))]
            return type(params)(p for p, _ in pairs), [s for _, s in pairs]
        return update_leaf(_match(grad, params, "grad"), state, params)

    return Optimizer(init, update, name, hyper)


def _match(g, x, name):
    """g, checked to have x's shape and backend (a gradient is shaped like its parameter)."""
    if is_torch(g) != is_torch(x) or tuple(getattr(g, "shape", ())) != tuple(getattr(x, "shape", ())):
        kind = lambda a: f"{'torch tensor' if is_torch(a) else type(a).__name__} of shape {tuple(getattr(a, 'shape', ()))}"
        raise CourseError(f"{name} must match its parameter (same backend and shape): got {kind(g)} for a "
                          f"parameter that is a {kind(x)}. Convert it with course_lib.backend.like(g, x).")
    return g


def _lr_fn(lr) -> Callable[[int], float]:
    if callable(lr):
        return lr
    lr = check_positive(lr, "lr", allow_zero=True)
    return lambda t: lr


def _check_common(lr, weight_decay):
    if not callable(lr):
        check_positive(lr, "lr", allow_zero=True)
    check_positive(weight_decay, "weight_decay", allow_zero=True)


def _beta(value, name):
    return check_in_range(value, name, 0.0, 1.0, high_open=True)


def _zeros(x):
    return namespace(x).zeros_like(x)


# -- SGD ------------------------------------------------------------------------------------------
class SGDState(NamedTuple):
    step: int
    buf: Any  # momentum buffer (None before the first step or without momentum)


def sgd(lr=1e-3, momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0,
        nesterov: bool = False, maximize: bool = False) -> Optimizer:
    """SGD with heavy-ball or Nesterov momentum, as ``torch.optim.SGD``.

    Update (g_t the stochastic gradient, t = 1, 2, ...)::

        g   <- g_t + weight_decay * x                       (L2 penalty, folded into the gradient)
        b_t  = g  if t = 1  else  momentum * b_{t-1} + (1 - dampening) * g
        d    = g + momentum * b_t  (nesterov)  or  b_t  (momentum > 0)  or  g
        x   <- x - lr_t * d

    Guarantee: with momentum 0 this is SGD; on a convex f with E||g||^2 <= G^2 and a constant
    step, the average of x_0..x_{T-1} satisfies E f(xbar) - f* <= ||x0 - x*||^2/(2 lr T) + lr G^2/2
    (Nemirovski, Juditsky, Lan, Shapiro 2009; Bubeck 2015, Thm 6.1). Heavy ball is Polyak (1964);
    the Nesterov form is Sutskever et al. (2013), as in torch.

    Args:
        lr: step size, or a schedule t -> lr_t. momentum: in [0, 1). dampening: in [0, 1].
        weight_decay: L2 coefficient (>= 0). nesterov: needs momentum > 0 and dampening = 0.
        maximize: ascend instead of descend.
    Returns:
        An :class:`Optimizer` whose state is :class:`SGDState`.
    """
    _check_common(lr, weight_decay)
    momentum = _beta(momentum, "momentum")
    dampening = check_in_range(dampening, "dampening", 0.0, 1.0)
    if nesterov and (momentum <= 0 or dampening != 0):
        raise CourseError(f"nesterov=True needs momentum > 0 and dampening = 0, got momentum={momentum}, "
                          f"dampening={dampening}. Set momentum=0.9, dampening=0.")
    lr_t = _lr_fn(lr)

    def init(x):
        return SGDState(0, None)

    def update(g, state, x):
        t = state.step + 1
        g = -g if maximize else g
        if weight_decay != 0:
            g = g + weight_decay * x
        buf = state.buf
        if momentum != 0:
            buf = g if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        return x - lr_t(t) * g, SGDState(t, buf)

    return _lift("sgd", dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                             nesterov=nesterov, maximize=maximize), init, update)


# -- Adagrad --------------------------------------------------------------------------------------
class AdagradState(NamedTuple):
    step: int
    sum: Any  # running sum of squared gradients


def adagrad(lr=1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
            eps: float = 1e-10, maximize: bool = False) -> Optimizer:
    """Adagrad (diagonal), as ``torch.optim.Adagrad``.

    Update::

        g   <- g_t + weight_decay * x
        s_t  = s_{t-1} + g * g               (s_0 = initial_accumulator_value)
        x   <- x - lr_t / (1 + (t - 1) lr_decay) * g / (sqrt(s_t) + eps)

    Guarantee: on convex losses with ||x - x*||_inf <= D, regret after T rounds is
    O(D sum_i ||g_{1:T,i}||_2) (Duchi, Hazan, Singer 2011, Thm 5), at most O(D sqrt(d T) G_inf).

    Args:
        lr: step size or schedule. lr_decay: >= 0. weight_decay: >= 0.
        initial_accumulator_value: >= 0. eps: > 0 added to sqrt(s). maximize: ascend.
    Returns:
        An :class:`Optimizer` with state :class:`AdagradState`.
    """
    _check_common(lr, weight_decay)
    check_positive(lr_decay, "lr_decay", allow_zero=True)
    check_positive(initial_accumulator_value, "initial_accumulator_value", allow_zero=True)
    check_positive(eps, "eps", allow_zero=True)
    lr_t = _lr_fn(lr)

    def init(x):
        return AdagradState(0, _zeros(x) + initial_accumulator_value)

    def update(g, state, x):
        t = state.step + 1
        g = -g if maximize else g
        if weight_decay != 0:
            g = g + weight_decay * x
        s = state.sum + g * g
        clr = lr_t(t) / (1 + (t - 1) * lr_decay)
        return x - clr * (g / (namespace(s).sqrt(s) + eps)), AdagradState(t, s)

    return _lift("adagrad", dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                                 initial_accumulator_value=initial_accumulator_value, maximize=maximize),
                 init, update)


# -- RMSprop --------------------------------------------------------------------------------------
class RMSpropState(NamedTuple):
    step: int
    square_avg: Any
    grad_avg: Any  # centred variant only
    buf: Any  # momentum only


def rmsprop(lr=1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
            centered: bool = False, maximize: bool = False) -> Optimizer:
    """RMSprop, plain or centred, with optional momentum, as ``torch.optim.RMSprop``.

    Update::

        g   <- g_t + weight_decay * x
        v_t  = alpha v_{t-1} + (1 - alpha) g^2                   (v_0 = 0)
        m_t  = alpha m_{t-1} + (1 - alpha) g                     (centred only; m_0 = 0)
        d    = sqrt(v_t - m_t^2) + eps  (centred)  or  sqrt(v_t) + eps
        b_t  = momentum b_{t-1} + g / d,  x <- x - lr_t b_t     (momentum > 0; b_0 = 0)
        x   <- x - lr_t g / d                                    (otherwise)

    Guarantee: none in general (Tieleman & Hinton 2012, lecture 6e; centred form Graves 2013);
    with alpha -> 1 it is Adagrad-like, and Adam without bias correction when momentum is used.

    Args:
        lr: step size or schedule. alpha: smoothing constant in [0, 1). eps: > 0.
        weight_decay: >= 0. momentum: in [0, 1). centered: normalise by an estimate of the
        variance instead of the second moment. maximize: ascend.
    Returns:
        An :class:`Optimizer` with state :class:`RMSpropState`.
    """
    _check_common(lr, weight_decay)
    alpha = _beta(alpha, "alpha")
    momentum = _beta(momentum, "momentum")
    check_positive(eps, "eps", allow_zero=True)
    lr_t = _lr_fn(lr)

    def init(x):
        return RMSpropState(0, _zeros(x), _zeros(x) if centered else None, _zeros(x) if momentum > 0 else None)

    def update(g, state, x):
        xp = namespace(x)
        t = state.step + 1
        g = -g if maximize else g
        if weight_decay != 0:
            g = g + weight_decay * x
        v = alpha * state.square_avg + (1 - alpha) * (g * g)
        m = state.grad_avg
        if centered:
            m = state.grad_avg + (1 - alpha) * (g - state.grad_avg)
            d = xp.sqrt(v - m * m) + eps
        else:
            d = xp.sqrt(v) + eps
        buf = state.buf
        if momentum > 0:
            buf = momentum * buf + g / d
            x = x - lr_t(t) * buf
        else:
            x = x - lr_t(t) * (g / d)
        return x, RMSpropState(t, v, m, buf)

    return _lift("rmsprop", dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                 centered=centered, maximize=maximize), init, update)


# -- Adam, AdamW, AMSGrad -------------------------------------------------------------------------
class AdamState(NamedTuple):
    step: int
    m: Any  # first moment (exp_avg)
    v: Any  # second moment (exp_avg_sq)
    v_max: Any  # running max of v (amsgrad only)


def _betas(betas) -> tuple[float, float]:
    """Check Adam-style (beta1, beta2), each in [0, 1)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise CourseError(f"betas must be a pair (beta1, beta2), got {betas!r}. Try betas=(0.9, 0.999).")
    return _beta(betas[0], "betas[0]"), _beta(betas[1], "betas[1]")


def _weight_decay(g, x, lr_now, weight_decay, decoupled):
    """L2 weight decay (g + wd x) or decoupled decay (x (1 - lr wd), AdamW), as torch.optim applies them."""
    if weight_decay == 0:
        return g, x
    if decoupled:
        return g, x * (1 - lr_now * weight_decay)
    return g + weight_decay * x, x


def adam(lr=1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
         amsgrad: bool = False, maximize: bool = False, decoupled_weight_decay: bool = False) -> Optimizer:
    """Adam (and AMSGrad, AdamW), as ``torch.optim.Adam``.

    Update (beta1, beta2 = betas)::

        x   <- (1 - lr_t weight_decay) x                 (decoupled_weight_decay, i.e. AdamW)
        g   <- g_t + weight_decay * x                    (otherwise: L2 penalty in the gradient)
        m_t  = beta1 m_{t-1} + (1 - beta1) g,   v_t = beta2 v_{t-1} + (1 - beta2) g^2
        u_t  = max(u_{t-1}, v_t)  (amsgrad)  or  v_t
        x   <- x - lr_t / (1 - beta1^t) * m_t / (sqrt(u_t) / sqrt(1 - beta2^t) + eps)

    Guarantee: Adam itself can fail to converge even on convex online problems (Reddi, Kale,
    Kumar 2018, Thm 1); AMSGrad (amsgrad=True) has O(sqrt(T)) regret on convex problems with
    lr_t = lr/sqrt(t) (ibid., Thm 4). Kingma & Ba (2015) introduced Adam; Loshchilov & Hutter
    (2019) the decoupled weight decay.

    Args:
        lr: step size or schedule. betas: (beta1, beta2), each in [0, 1). eps: > 0.
        weight_decay: >= 0. amsgrad: use the running max of v. maximize: ascend.
        decoupled_weight_decay: shrink x directly (AdamW) instead of adding an L2 gradient.
    Returns:
        An :class:`Optimizer` with state :class:`AdamState`.
    """
    _check_common(lr, weight_decay)
    beta1, beta2 = _betas(betas)
    check_positive(eps, "eps", allow_zero=True)
    lr_t = _lr_fn(lr)

    def init(x):
        return AdamState(0, _zeros(x), _zeros(x), _zeros(x) if amsgrad else None)

    def update(g, state, x):
        xp = namespace(x)
        t = state.step + 1
        lr_now = lr_t(t)
        g, x = _weight_decay(-g if maximize else g, x, lr_now, weight_decay, decoupled_weight_decay)
        m = state.m + (1 - beta1) * (g - state.m)
        v = beta2 * state.v + (1 - beta2) * (g * g)
        u = v_max = xp.maximum(state.v_max, v) if amsgrad else v
        denom = xp.sqrt(u) / math.sqrt(1 - beta2**t) + eps
        x = x - (lr_now / (1 - beta1**t)) * (m / denom)
        return x, AdamState(t, m, v, v_max if amsgrad else None)

    name = "adamw" if decoupled_weight_decay else ("amsgrad" if amsgrad else "adam")
    return _lift(name, dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                            maximize=maximize, decoupled_weight_decay=decoupled_weight_decay), init, update)


def adamw(lr=1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
          amsgrad: bool = False, maximize: bool = False) -> Optimizer:
    """AdamW, as ``torch.optim.AdamW``: :func:`adam` with decoupled weight decay (default 1e-2).

    Update: x <- (1 - lr_t weight_decay) x, then the Adam step with the raw gradient
    (Loshchilov & Hutter, *Decoupled weight decay regularization*, ICLR 2019).

    Args / Returns: as :func:`adam`.
    """
    return adam(lr, betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay=True)


def amsgrad(lr=1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
            maximize: bool = False) -> Optimizer:
    """AMSGrad: :func:`adam` with ``amsgrad=True`` (normalise by the running max of v_t).

    Guarantee: O(sqrt(T)) regret on online convex problems with lr_t = lr / sqrt(t)
    (Reddi, Kale, Kumar, *On the convergence of Adam and beyond*, ICLR 2018, Thm 4).

    Args / Returns: as :func:`adam`.
    """
    return adam(lr, betas, eps, weight_decay, amsgrad=True, maximize=maximize)


# -- NAdam ----------------------------------------------------------------------------------------
class NAdamState(NamedTuple):
    step: int
    mu_product: float
    m: Any
    v: Any


def nadam(lr=2e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
          momentum_decay: float = 4e-3, decoupled_weight_decay: bool = False, maximize: bool = False) -> Optimizer:
    """NAdam (Adam with Nesterov momentum), as ``torch.optim.NAdam``.

    Update, with the momentum schedule mu_t = beta1 (1 - 0.96^(t momentum_decay) / 2)::

        (weight decay as in :func:`adam`)
        m_t = beta1 m_{t-1} + (1 - beta1) g,   v_t = beta2 v_{t-1} + (1 - beta2) g^2
        P_t = mu_1 ... mu_t,   d = sqrt(v_t / (1 - beta2^t)) + eps
        x  <- x - lr_t (1 - mu_t) / (1 - P_t) * g / d - lr_t mu_{t+1} / (1 - P_t mu_{t+1}) * m_t / d

    Guarantee: none beyond Adam's; Dozat (2016), *Incorporating Nesterov momentum into Adam*.

    Args:
        lr: step size or schedule. betas: (beta1, beta2) in [0, 1). eps: > 0. weight_decay: >= 0.
        momentum_decay: >= 0 (torch's psi). decoupled_weight_decay: AdamW-style decay. maximize: ascend.
    Returns:
        An :class:`Optimizer` with state :class:`NAdamState`.
    """
    _check_common(lr, weight_decay)
    beta1, beta2 = _betas(betas)
    check_positive(eps, "eps", allow_zero=True)
    check_positive(momentum_decay, "momentum_decay", allow_zero=True)
    lr_t = _lr_fn(lr)

    def init(x):
        return NAdamState(0, 1.0, _zeros(x), _zeros(x))

    def update(g, state, x):
        xp = namespace(x)
        t = state.step + 1
        lr_now = lr_t(t)
        g, x = _weight_decay(-g if maximize else g, x, lr_now, weight_decay, decoupled_weight_decay)
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        prod = state.mu_product * mu
        m = state.m + (1 - beta1) * (g - state.m)
        v = beta2 * state.v + (1 - beta2) * (g * g)
        d = xp.sqrt(v / (1 - beta2**t)) + eps
        x = x + (-lr_now * (1 - mu) / (1 - prod)) * (g / d)
        x = x + (-lr_now * mu_next / (1 - prod * mu_next)) * (m / d)
        return x, NAdamState(t, prod, m, v)

    return _lift("nadam", dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay,
                               momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
                               maximize=maximize), init, update)


# -- helpers --------------------------------------------------------------------------------------
def state_numel(state) -> int:
    """The number of floats an optimizer state holds (the memory cost beyond the parameters).

    SGD holds 0 (1 set of buffers with momentum), Adam 2 (m, v), AMSGrad 3: for a model with
    P parameters, Adam's state is 2P floats. Works on any state returned by ``init``/``update``.
    """
    if state is None or isinstance(state, (int, float)):
        return 0
    if isinstance(state, (list, tuple)):  # NamedTuples and lists of per-parameter states
        return sum(state_numel(s) for s in state)
    shape = getattr(state, "shape", None)
    return int(math.prod(tuple(shape))) if shape is not None else 0


class TorchOptimizer:
    """The update rules of this module driving a torch ``nn.Module``'s parameters.

    A drop-in for ``torch.optim`` in a training loop::

        opt = TorchOptimizer(adam(lr=1e-3), model.parameters())
        opt.zero_grad(); loss.backward(); opt.step()

    ``step`` reads each parameter's ``.grad``, calls the pure ``update`` and copies the new values
    into the parameters (under ``torch.no_grad()``). Parameters without a gradient are skipped,
    like torch.optim does.

    Args:
        optimizer: an :class:`Optimizer` from this module.
        params: an iterable of torch tensors with ``requires_grad`` (e.g. ``model.parameters()``).
    """

    def __init__(self, optimizer: Optimizer, params):
        if not all(hasattr(optimizer, a) for a in ("init", "update")):
            raise CourseError(f"optimizer must be an Optimizer of course_lib.optimizers (init, update), got "
                              f"{type(optimizer).__name__} {optimizer!r:.40}. Try TorchOptimizer(adam(lr=1e-3), params).")
        self.optimizer = optimizer
        self.params = list(params)
        if not self.params or not all(is_torch(p) for p in self.params):
            raise CourseError("TorchOptimizer needs a non-empty iterable of torch tensors, e.g. model.parameters().")
        self.state = [optimizer.init(p.detach()) for p in self.params]

    def zero_grad(self) -> None:
        """Forget the gradients (sets ``.grad`` to None, like torch.optim's default)."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        import torch

        with torch.no_grad():
            for i, p in enumerate(self.params):
                if p.grad is None:
                    continue
                new, self.state[i] = self.optimizer.update(p.grad.detach(), self.state[i], p.detach())
                p.copy_(new)

    def state_numel(self) -> int:
        """Floats held in the optimizer state (see :func:`state_numel`)."""
        return state_numel(self.state)
