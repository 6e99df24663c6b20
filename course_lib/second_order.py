"""Second-order methods for the project kit: Newton-CG, L-BFGS, K-FAC and Shampoo.

* :func:`newton_cg` -- truncated Newton: the Newton system H p = -g solved inexactly by conjugate
  gradients on Hessian-vector products (no Hessian is formed), then an Armijo line search.
* :func:`lbfgs` -- ``torch.optim.LBFGS`` with the strong-Wolfe line search on a course_lib Problem,
  returning a Trace (checked against SciPy's L-BFGS-B in the tests).
* :class:`KFAC` -- Kronecker-factored approximate curvature for the ``nn.Linear`` layers of a model:
  the Fisher block of layer l is approximated by A_l (x) G_l with A = E[a a^T] (layer inputs, with a 1
  for the bias) and G = E[g g^T] (gradients of the loss w.r.t. the layer's outputs).
* :class:`Shampoo` -- a left and a right preconditioner per weight matrix, L = eps I + sum G G^T,
  R = eps I + sum G^T G, step W -= lr L^(-1/4) G R^(-1/4).

K-FAC and Shampoo are ``torch.optim.Optimizer`` subclasses, so the experiment harness and any
training loop use them like ``torch.optim.Adam``.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .backend import namespace, to_float
from .convex import backtracking
from .trace import Recorder, Trace
from .validation import CourseError, check_int, check_positive

__all__ = ["conjugate_gradient", "newton_cg", "lbfgs", "KFAC", "Shampoo", "matrix_power_sym",
           "newton_method", "newton_cg_method", "lbfgs_method", "state_numel"]


def conjugate_gradient(hvp, b, tol: float = 1e-10, max_iter: int | None = None):
    """Solve H p = b by conjugate gradients using only products v -> H v (Nocedal & Wright, Alg. 5.2).

    For symmetric positive definite H, CG reaches the solution in at most dim steps in exact arithmetic
    and ||p_k - p*||_H decreases like 2 ((sqrt(kappa) - 1)/(sqrt(kappa) + 1))^k (N&W Thm 5.5). It stops
    early when the residual is below ``tol * ||b||`` or when a direction of non-positive curvature
    appears (then the iterate so far is returned, as truncated Newton does: N&W Alg. 7.1).

    Args:
        hvp: function v -> H v. b: right-hand side. tol: relative residual tolerance.
        max_iter: at most this many CG steps (default 2 len(b): exact arithmetic needs len(b), rounding
            costs a few more).
    Returns:
        (p, number of Hessian-vector products).
    """
    xp = namespace(b)
    max_iter = 2 * b.shape[0] if max_iter is None else check_int(max_iter, "max_iter", 1)
    p = 0 * b
    r = b
    d = r
    rr = to_float(xp.sum(r * r))
    stop = (tol * math.sqrt(rr)) ** 2
    n = 0
    for _ in range(max_iter):
        if rr <= stop:
            break
        Hd = hvp(d)
        n += 1
        curv = to_float(xp.sum(d * Hd))
        if curv <= 0:
            if n == 1:
                p = b
            break
        alpha = rr / curv
        p = p + alpha * d
        r = r - alpha * Hd
        rr_new = to_float(xp.sum(r * r))
        d = r + (rr_new / rr) * d
        rr = rr_new
    return p, n


def newton_cg(problem, x0, tol: float = 1e-10, max_iter: int = 50, cg_tol: float | None = None,
              record_every: int = 1, on_divergence: str = "raise") -> Trace:
    """Truncated (inexact) Newton: solve H(x) p = -g(x) by CG on HVPs, x+ = x + t p with Armijo backtracking.

    With the forcing sequence eta_k = min(0.5, sqrt(||g_k||)) as CG's relative tolerance, the iterates
    converge superlinearly near a minimiser with positive definite Hessian (Nocedal & Wright, Thm 7.2);
    each step costs one gradient plus the CG steps' Hessian-vector products.

    Args:
        problem: a Problem with ``value``, ``grad`` and ``hvp``. x0: start.
        tol: stop once ||grad|| <= tol. max_iter: Newton iterations. cg_tol: fixed CG tolerance instead
        of the forcing sequence. record_every, on_divergence: as in gradient_descent.
    Returns:
        The Trace; ``info["cg_steps"]`` holds the CG steps of each iteration; ``calls`` counts gradient
        evaluations and Hessian-vector products.
    """
    x = problem.check_x(x0, "x0")
    tol = check_positive(tol, "tol", allow_zero=True)
    xp = namespace(x)
    rec = Recorder("newton_cg", x, max_iter, params={"tol": tol}, tol=tol, record_every=record_every,
                   on_divergence=on_divergence)
    fx, g = problem.value(x), problem.grad(x)
    go = rec.record(0, x, f=fx, grad=g, calls=2)
    for k in range(1, check_int(max_iter, "max_iter") + 1):
        if not go:
            break
        gnorm = to_float(xp.linalg.vector_norm(g))
        eta = cg_tol if cg_tol is not None else min(0.5, math.sqrt(gnorm))
        p, n_hvp = conjugate_gradient(lambda v: problem.hvp(x, v), -g, tol=eta)
        t, x, fx, n_val = backtracking(problem.value, x, fx, g, p, t0=1.0, c=1e-4, beta=0.5)
        g = problem.grad(x)
        go = rec.record(k, x, f=fx, grad=g, calls=1 + n_hvp + n_val, cg_steps=n_hvp, step_size=t)
    return rec.finish(x)


def lbfgs(problem, x0, history_size: int = 10, max_iter: int = 200, tol: float = 1e-10,
          record_every: int = 1) -> Trace:
    """L-BFGS with strong-Wolfe line search: ``torch.optim.LBFGS`` driven on a course_lib Problem.

    The two-loop recursion applies the inverse-Hessian approximation built from the last m pairs
    (s_k, y_k) = (x_{k+1} - x_k, g_{k+1} - g_k) (Nocedal & Wright, Alg. 7.4); with a Wolfe line search
    L-BFGS converges R-linearly on strongly convex functions (Liu & Nocedal 1989, Thm 7.1).

    Args:
        problem: a Problem (NumPy or torch). x0: start. history_size: m. max_iter: outer iterations
        (one LBFGS.step with max_iter=1 each). tol: stop once ||grad|| <= tol.
    Returns:
        The Trace; ``calls`` counts function-and-gradient evaluations (LBFGS's closure calls).
    """
    x = problem.check_x(x0, "x0")
    xp = namespace(x)
    x_t = torch.nn.Parameter(torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x,
                                             dtype=torch.float64).clone())
    # one LBFGS iteration per step(); max_eval must cover the line search (its default, 5/4 max_iter, is 1 here)
    opt = torch.optim.LBFGS([x_t], lr=1, max_iter=1, max_eval=25,
                            history_size=check_int(history_size, "history_size", 1),
                            tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
    like = problem.asarray if hasattr(problem, "asarray") else (lambda a: a)
    calls = [0]

    def as_problem(t):
        return like(t.detach().clone()) if torch.is_tensor(x) else like(t.detach().numpy().copy())

    def closure():
        opt.zero_grad()
        calls[0] += 1
        xv = as_problem(x_t)
        fv, gv = problem.value(xv), problem.grad(xv)
        x_t.grad = torch.as_tensor(np.asarray(gv) if not torch.is_tensor(gv) else gv, dtype=torch.float64).clone()
        return torch.as_tensor(to_float(fv), dtype=torch.float64)

    rec = Recorder("lbfgs", x, max_iter, params={"history_size": history_size}, tol=tol, record_every=record_every)
    go = rec.record(0, x, f=problem.value(x), grad=problem.grad(x), calls=1)
    for k in range(1, check_int(max_iter, "max_iter") + 1):
        if not go:
            break
        before = calls[0]
        opt.step(closure)
        xv = as_problem(x_t)
        go = rec.record(k, xv, f=problem.value(xv), grad=problem.grad(xv), calls=calls[0] - before)
    return rec.finish(as_problem(x_t))


def matrix_power_sym(M: torch.Tensor, power: float, eps: float = 0.0) -> torch.Tensor:
    """(M + eps I)^power for a symmetric PSD matrix, by its eigendecomposition (eigenvalues clipped at 0)."""
    lam, Q = torch.linalg.eigh(M + eps * torch.eye(M.shape[0], dtype=M.dtype, device=M.device))
    return (Q * lam.clamp_min(0.0).pow(power)) @ Q.T


class KFAC(torch.optim.Optimizer):
    """K-FAC (Martens & Grosse, ICML 2015) for the ``nn.Linear`` layers of a model, as a torch optimizer.

    For a layer s = W a + b, the Fisher block of vec([W b]) is approximated by A (x) G with
    A = E[a~ a~^T] (a~ = [a; 1]) and G = E[g g^T], g = dloss/ds per example (scaled by the batch size so
    that G estimates the per-example statistic). Both are running averages with ``decay``. The step is
    the preconditioned gradient (G + sqrt(damping) I)^(-1) grad_[W b] (A + sqrt(damping) I)^(-1) (the
    factored Tikhonov damping of Sec. 6.3), followed by plain SGD with momentum on it. Parameters that
    are not in a Linear layer get the plain gradient.

    With a batch of one example, A (x) G is *exactly* that example's Fisher block (tests/test_second_order.py).

    Args:
        params: the model (an ``nn.Module``: its Linear layers are hooked) or its parameters with ``model=``
            (the experiment harness passes both). lr: step size. damping: lambda (> 0). decay: running-average weight of old statistics in [0, 1).
        momentum: heavy-ball momentum on the preconditioned step. update_every: refresh the inverses every T steps.
    """

    def __init__(self, params, lr: float = 1e-2, damping: float = 1e-3, decay: float = 0.95,
                 momentum: float = 0.0, update_every: int = 1, model: torch.nn.Module | None = None):
        if isinstance(params, torch.nn.Module):
            model, params = params, None
        if model is None:
            raise CourseError("KFAC needs the model itself (it hooks its nn.Linear layers): KFAC(model, ...) or "
                              "KFAC(params, model=model).")
        params = list(model.parameters()) if params is None else list(params)
        check_positive(lr, "lr")
        check_positive(damping, "damping")
        if not 0 <= decay < 1:
            raise CourseError(f"decay must lie in [0, 1), got {decay!r}.")
        self.layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        if not self.layers:
            raise CourseError("KFAC found no nn.Linear layer in the model; use it on MLPs/transformers "
                              "(or Shampoo, which works on any weight matrix).")
        super().__init__(params, dict(lr=lr, damping=damping, decay=decay, momentum=momentum))
        self.update_every = check_int(update_every, "update_every", 1)
        self.stats: dict = {}
        self._steps = 0
        self._handles = []
        for layer in self.layers:
            self._handles.append(layer.register_forward_hook(self._save_input))

    def _save_input(self, layer, inputs, output):
        """Forward hook: keep the layer's input a~ and hook the gradient of its output."""
        if torch.is_grad_enabled() and output.requires_grad:
            a = inputs[0].detach().reshape(-1, layer.in_features)
            if layer.bias is not None:
                a = torch.cat([a, torch.ones_like(a[:, :1])], dim=1)
            output.register_hook(lambda grad, layer=layer, a=a: self._save_grad(layer, a, grad))

    def _save_grad(self, layer, a, grad_output):
        g = grad_output.detach().reshape(-1, layer.out_features) * a.shape[0]
        decay = self.param_groups[0]["decay"]
        A_new, G_new = a.T @ a / a.shape[0], g.T @ g / g.shape[0]
        st = self.stats.setdefault(layer, {"A": A_new, "G": G_new, "n": 0})
        if st["n"] > 0:
            st["A"] = decay * st["A"] + (1 - decay) * A_new
            st["G"] = decay * st["G"] + (1 - decay) * G_new
        st["n"] += 1

    def factors(self, layer):
        """(A, G) of a layer: the running input and output-gradient second moments."""
        st = self.stats[layer]
        return st["A"], st["G"]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        group = self.param_groups[0]
        self._steps += 1
        refresh = (self._steps - 1) % self.update_every == 0
        done = set()
        for layer in self.layers:
            if layer not in self.stats or layer.weight.grad is None:
                continue
            st = self.stats[layer]
            if refresh or "A_inv" not in st:
                root = math.sqrt(group["damping"])
                st["A_inv"] = torch.linalg.inv(st["A"] + root * torch.eye(st["A"].shape[0], dtype=st["A"].dtype))
                st["G_inv"] = torch.linalg.inv(st["G"] + root * torch.eye(st["G"].shape[0], dtype=st["G"].dtype))
            grad = layer.weight.grad
            if layer.bias is not None:
                grad = torch.cat([grad, layer.bias.grad[:, None]], dim=1)
            nat = st["G_inv"] @ grad @ st["A_inv"]
            pairs = [(layer.weight, nat[:, :layer.in_features])]
            if layer.bias is not None:
                pairs.append((layer.bias, nat[:, -1]))
            for p, d in pairs:
                self._apply(p, d, group)
                done.add(p)
        for p in group["params"]:
            if p.grad is not None and p not in done:
                self._apply(p, p.grad, group)
        return loss

    def _apply(self, p, direction, group):
        if group["momentum"]:
            buf = self.state[p].get("momentum")
            buf = direction.clone() if buf is None else buf.mul_(group["momentum"]).add_(direction)
            self.state[p]["momentum"] = buf
            direction = buf
        p.add_(direction, alpha=-group["lr"])

    def remove_hooks(self):
        """Detach the forward/backward hooks from the model."""
        for h in self._handles:
            h.remove()


class Shampoo(torch.optim.Optimizer):
    """Shampoo (Gupta, Koren & Singer, ICML 2018) as a torch optimizer.

    For a weight matrix W with gradient G_t: L_t = L_{t-1} + G_t G_t^T, R_t = R_{t-1} + G_t^T G_t
    (L_0 = R_0 = eps I) and W_{t+1} = W_t - lr L_t^(-1/4) G_t R_t^(-1/4). For a vector parameter the
    single factor is the full AdaGrad matrix H_t = eps I + sum g g^T and the step is H_t^(-1/2) g
    (Alg. 1 with k = 1). Regret O(sqrt(T)) for online convex optimisation (Thm 3 of the paper).
    Tensors with more than two dimensions are treated as matrices (first dimension x the rest).

    Args:
        params: parameters. lr: step size. eps: initial diagonal. update_every: recompute roots every T steps.
    """

    def __init__(self, params, lr: float = 1e-1, eps: float = 1e-4, update_every: int = 1):
        check_positive(lr, "lr")
        check_positive(eps, "eps")
        super().__init__(params, dict(lr=lr, eps=eps))
        self.update_every = check_int(update_every, "update_every", 1)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                G = p.grad.reshape(p.shape[0], -1) if p.dim() >= 2 else p.grad.reshape(-1, 1)
                st = self.state[p]
                if not st:
                    st["step"] = 0
                    st["L"] = group["eps"] * torch.eye(G.shape[0], dtype=G.dtype, device=G.device)
                    st["R"] = group["eps"] * torch.eye(G.shape[1], dtype=G.dtype, device=G.device)
                st["step"] += 1
                st["L"] += G @ G.T
                st["R"] += G.T @ G
                vector = p.dim() < 2
                if (st["step"] - 1) % self.update_every == 0 or "L_root" not in st:
                    st["L_root"] = matrix_power_sym(st["L"], -0.5 if vector else -0.25)
                    st["R_root"] = None if vector else matrix_power_sym(st["R"], -0.25)
                step = st["L_root"] @ G if vector else st["L_root"] @ G @ st["R_root"]
                p.add_(step.reshape(p.shape), alpha=-group["lr"])
        return loss


def state_numel(optimizer: torch.optim.Optimizer) -> int:
    """Numbers an optimizer keeps between steps: every tensor in ``optimizer.state`` (and K-FAC's factors).

    Adam keeps 2 per parameter (m, v); SGD with momentum 1; K-FAC (d_in + 1)^2 + d_out^2 per layer for the
    factors and as many again for their inverses; Shampoo d_out^2 + d_in^2 per matrix and as many for its roots.
    """
    def count(obj):
        if torch.is_tensor(obj):
            return obj.numel() if obj.dim() > 0 else 0
        if isinstance(obj, dict):
            return sum(count(v) for v in obj.values())
        if isinstance(obj, (list, tuple)):
            return sum(count(v) for v in obj)
        return 0

    return count(dict(optimizer.state)) + count(getattr(optimizer, "stats", {}))


# -- methods for the experiment harness (kind = "algorithm": f(oracle, x0, *, seed, **hp)) ------------------
def _cap(oracle, calls_per_step: float) -> int:
    from .experiments.methods import max_steps

    return min(max_steps(oracle, calls_per_step), 20_000)


class _HessianFromHVPs:
    """A problem view whose Hessian is assembled from dim Hessian-vector products (each one counted)."""

    def __init__(self, problem):
        self._p = problem
        self.name = getattr(problem, "name", "problem")

    def __getattr__(self, item):
        return getattr(self._p, item)

    def hess(self, x):
        xp = namespace(x)
        eye = xp.eye(x.shape[0], dtype=x.dtype)
        H = xp.stack([self._p.hvp(x, eye[i]) for i in range(x.shape[0])])
        return (H + H.T) / 2


def newton_method(oracle, x0, *, seed: int = 0, alpha: float = 0.25, beta: float = 0.5):
    """course_lib.newton.newton with the Hessian built from dim HVPs per iteration (they are counted as hvps)."""
    from .newton import newton

    return newton(_HessianFromHVPs(oracle), x0, alpha=alpha, beta=beta, tol=0.0, max_iter=_cap(oracle, 2),
                  record_every=_cap(oracle, 2), keep_x=False)


def newton_cg_method(oracle, x0, *, seed: int = 0, cg_tol: float | None = None):
    """:func:`newton_cg` until the budget is spent (one gradient + CG's HVPs per iteration)."""
    return newton_cg(oracle, x0, tol=0.0, max_iter=_cap(oracle, 1), cg_tol=cg_tol, record_every=_cap(oracle, 1))


def lbfgs_method(oracle, x0, *, seed: int = 0, history_size: int = 10):
    """:func:`lbfgs` (torch.optim.LBFGS, strong Wolfe) until the budget is spent."""
    return lbfgs(oracle, x0, history_size=int(history_size), max_iter=_cap(oracle, 1), tol=0.0,
                 record_every=_cap(oracle, 1))
