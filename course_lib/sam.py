"""Sharpness-aware minimisation for any ``nn.Module``: SAM, ASAM and GSAM as a torch.optim-style wrapper.

The perturbation is course_lib's own (:func:`course_lib.nonconvex.sam_perturbation`), applied to the
model's parameters seen as one flat vector, so on the same network and batches the wrapper gives
exactly the iterates of the flat-vector :func:`course_lib.nets.train` (tests/test_sam.py, 1e-12 in
float64). Usage, with the same protocol as ``pytorch_optimizer.SAM``::

    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1)
    def closure():
        opt.zero_grad(); loss = loss_fn(model(X), y); loss.backward(); return loss
    closure()            # gradients at w (if you skip this, step calls the closure first)
    opt.step(closure)    # w + eps, the closure again (the 2nd gradient), back to w, base step

Each step costs two gradients.
"""
from __future__ import annotations

from .backend import to_float
from .nonconvex import sam_perturbation
from .validation import CourseError, check_in_range, check_positive

__all__ = ["SAM", "gsam_direction"]


def gsam_direction(g, g_perturbed, alpha: float):
    """GSAM's descent direction: g_p - alpha g_perp, g_perp the part of g orthogonal to g_p.

    g_perp = g - (<g, g_p>/||g_p||^2) g_p. Descending along g_p minimises the perturbed loss f_p;
    ascending along g_perp (orthogonal to g_p, so it leaves f_p unchanged to first order)
    decreases the surrogate gap h = f_p - f, a measure of sharpness (Zhuang et al.,
    *Surrogate gap guided sharpness-aware minimization*, ICLR 2022, Algorithm 1; alpha = 0 is SAM).

    Args:
        g: gradient at w (flat). g_perturbed: gradient at w + eps. alpha: in [0, 1].
    Returns:
        The direction, shaped like g.
    """
    from .backend import namespace

    xp = namespace(g)
    nn = to_float(xp.sum(g_perturbed * g_perturbed))
    if nn == 0:
        return g_perturbed - alpha * g
    return g_perturbed - alpha * (g - (to_float(xp.sum(g * g_perturbed)) / nn) * g_perturbed)


class SAM:
    """SAM (Foret et al., ICLR 2021), ASAM (Kwon et al., ICML 2021) or GSAM (Zhuang et al., ICLR 2022).

    Update, with w all parameters as one vector and g(w) the minibatch gradient::

        eps  = rho g/||g||                      (SAM)     rho T^2 g/||T g||, T = |w| + eta   (ASAM)
        g_p  = g(w + eps)                       (the closure, at the perturbed weights)
        d    = g_p  (SAM, ASAM)   or   g_p - alpha g_perp  (GSAM, :func:`gsam_direction`)
        w   <- base_optimizer step with gradient d

    Guarantee: full-batch SAM with step 1/L reaches min_k ||grad f||^2 <= 2L(f0 - f*)/T + (L rho)^2
    (:func:`course_lib.nonconvex.sam_stationarity_bound`); the variants share it to first order.

    Args:
        params: the model's parameters. base_optimizer: a torch.optim-style class (built here on
            the same parameters with ``**base_kwargs``) or an optimizer instance already built on them.
        rho: radius (>= 0). variant: "sam", "asam" or "gsam". eta: ASAM's offset (> 0).
        alpha: GSAM's weight in [0, 1]. adaptive: GSAM with ASAM's perturbation.
        **base_kwargs: options of the base optimizer (lr, momentum, ...).
    """

    def __init__(self, params, base_optimizer=None, rho: float = 0.05, variant: str = "sam", eta: float = 0.01,
                 alpha: float = 0.4, adaptive: bool = False, **base_kwargs):
        import torch

        self.params = [p for p in params]
        if not self.params or not all(isinstance(p, torch.Tensor) for p in self.params):
            raise CourseError("SAM needs a non-empty iterable of torch tensors, e.g. model.parameters().")
        if variant not in ("sam", "asam", "gsam"):
            raise CourseError(f"variant must be 'sam', 'asam' or 'gsam', got {variant!r}.")
        self.rho = check_positive(rho, "rho", allow_zero=True)
        self.eta = check_positive(eta, "eta")
        self.alpha = check_in_range(alpha, "alpha", 0.0, 1.0)
        self.variant = variant
        self.adaptive = variant == "asam" or bool(adaptive)
        if base_optimizer is None:
            base_optimizer = torch.optim.SGD
        if isinstance(base_optimizer, type) or (callable(base_optimizer) and not hasattr(base_optimizer, "step")):
            self.base = base_optimizer(self.params, **base_kwargs)
        elif hasattr(base_optimizer, "step"):
            if base_kwargs:
                raise CourseError(f"SAM: options {sorted(base_kwargs)} go to the base optimizer's constructor; "
                                  "pass a class, or build the instance with them.")
            self.base = base_optimizer
        else:
            raise CourseError(f"base_optimizer must be an optimizer class or instance, got {base_optimizer!r}.")

    @property
    def param_groups(self):
        """The base optimizer's parameter groups (so learning-rate schedulers work)."""
        return getattr(self.base, "param_groups", [])

    @property
    def state(self):
        return getattr(self.base, "state", {})

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def _flat_grad(self):
        import torch

        return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in self.params])

    def _set_grads(self, flat) -> None:
        i = 0
        for p in self.params:
            n = p.numel()
            p.grad = flat[i:i + n].reshape(p.shape).clone()
            i += n

    def step(self, closure=None):
        """One SAM step. ``closure`` clears the gradients, recomputes the loss and calls backward.

        If no parameter has a gradient yet, the closure is called first for the gradient at w (so
        ``step(closure)`` alone works too); the gradients are cleared after the step.

        Returns:
            The loss the closure returned at the perturbed weights (torch.optim returns the closure's loss).
        """
        import torch

        if closure is None:
            raise CourseError("SAM.step needs a closure that recomputes the loss and its gradients (two gradients per "
                              "step); see the course_lib.sam docstring.")
        if all(p.grad is None for p in self.params):
            with torch.enable_grad():
                closure()
        with torch.no_grad():
            g = self._flat_grad()
            w = torch.cat([p.detach().reshape(-1) for p in self.params])
            eps = sam_perturbation(g, w, self.rho, adaptive=self.adaptive, eta=self.eta)
            saved = [p.detach().clone() for p in self.params]
            i = 0
            for p in self.params:
                n = p.numel()
                p.add_(eps[i:i + n].reshape(p.shape))
                i += n
        with torch.enable_grad():
            loss = closure()
        with torch.no_grad():
            for p, s in zip(self.params, saved):
                p.copy_(s)
            if self.variant == "gsam":
                self._set_grads(gsam_direction(g, self._flat_grad(), self.alpha))
        self.base.step()
        self.zero_grad()  # a later step without a fresh gradient at w recomputes it instead of reusing a stale one
        return loss
