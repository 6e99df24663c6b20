"""Layer-wise pruning as optimization: min_{W'} ||X W - X W'||_F^2 subject to ||W'||_0 <= k.

One layer y = X W (X: n x d_in calibration activations, W: d_in x d_out weights, the convention of
:class:`course_lib.nets.MLP`; a torch ``nn.Linear`` stores W^T) is pruned so that its outputs on the
calibration data change as little as possible. With the Gram matrix G = X^T X the objective is

    f(W') = 1/2 tr((W' - W)^T G (W' - W)),   grad f = G (W' - W),   L = lambda_max(G),

which decouples over output columns. The methods, from cheapest to strongest:

* magnitude: keep the largest |W_ij| (one-shot; ignores X);
* Wanda: keep the largest |W_ij| * ||X_:,i||_2 per output (Sun, Liu, Bair & Kolter, "A Simple and
  Effective Pruning Approach for Large Language Models", ICLR 2024);
* least-squares refit of the kept weights on any mask (the optimal W' for a fixed support);
* IHT / accelerated IHT on f (course_lib.sparsity, the hard-thresholding line of chapter 4);
* ADMM on the split W' = Z, Z k-sparse, with the closed-form W'-update and an increasing penalty
  (Boza, "Fast and Effective Weight Update for Pruned Large Language Models", TMLR 2024), then a refit.

Everything is plain NumPy/array-API linear algebra on one layer, so it applies unchanged to a layer of
an MLP on digits or to the linear layers of a pretrained transformer.
"""
from __future__ import annotations

import numpy as np

from .backend import to_numpy
from .problems import Problem
from .sparsity import accelerated_iht, iht
from .validation import CourseError, check_array, check_in_range, check_int, check_positive

__all__ = ["LayerReconstruction", "keep_count", "magnitude_mask", "wanda_mask", "refit", "prune_iht",
           "admm_prune", "reconstruction_error", "prune_layer_weights", "prune_linear_layers", "METHODS"]

METHODS = ("magnitude", "wanda", "magnitude+refit", "wanda+refit", "iht", "admm")


def _layer(W, X):
    W = np.asarray(to_numpy(W), dtype=float)
    X = np.asarray(to_numpy(X), dtype=float)
    check_array(W, "W", ndim=2)
    check_array(X, "X", ndim=2)
    if X.shape[1] != W.shape[0]:
        raise CourseError(f"X has {X.shape[1]} columns but W has {W.shape[0]} rows; X must be the layer's input "
                          f"activations (n, d_in) for W of shape (d_in, d_out).")
    return W, X


def keep_count(n_weights: int, sparsity: float) -> int:
    """Weights kept at a sparsity (fraction of zeros): k = round((1 - sparsity) * n_weights)."""
    return int(round((1 - check_in_range(sparsity, "sparsity", 0.0, 1.0)) * check_int(n_weights, "n_weights", 1)))


def _top_mask(score, sparsity: float, per_output: bool):
    """Boolean mask keeping the largest scores, per output column or over the whole layer."""
    if per_output:
        k = keep_count(score.shape[0], sparsity)
        order = np.argsort(-score, axis=0, kind="stable")[:k]
        mask = np.zeros(score.shape, dtype=bool)
        np.put_along_axis(mask, order, True, axis=0)
        return mask
    k = keep_count(score.size, sparsity)
    mask = np.zeros(score.size, dtype=bool)
    mask[np.argsort(-score.reshape(-1), kind="stable")[:k]] = True
    return mask.reshape(score.shape)


def magnitude_mask(W, sparsity: float, per_output: bool = False):
    """Mask of magnitude pruning: keep the round((1 - sparsity) n) largest |W_ij| (of the layer or of each output).

    Args:
        W: (d_in, d_out) weights. sparsity: fraction of zeros in [0, 1].
        per_output: rank within each output column (same sparsity per neuron) instead of the whole layer.
    Returns:
        Boolean (d_in, d_out) mask of kept weights.
    """
    W = np.asarray(to_numpy(W), dtype=float)
    check_array(W, "W", ndim=2)
    return _top_mask(np.abs(W), sparsity, per_output)


def wanda_mask(W, X, sparsity: float):
    """Wanda's mask: per output column, keep the largest |W_ij| * ||X_:,i||_2.

    The score is the size of weight i's contribution to output j on the calibration data; ranking it
    per output is what Sun et al. (ICLR 2024, Sec. 3) found to matter for LLMs.

    Args:
        W: (d_in, d_out) weights. X: (n, d_in) calibration inputs. sparsity: fraction of zeros.
    Returns:
        Boolean (d_in, d_out) mask of kept weights.
    """
    W, X = _layer(W, X)
    return _top_mask(np.abs(W) * np.linalg.norm(X, axis=0)[:, None], sparsity, per_output=True)


def refit(W, X, mask, damping: float = 1e-8, chunk_bytes: int = 64 * 2**20):
    """The best weights on a fixed support: per output j, min ||X W_:j - X_S w_S||^2 over w_S.

    Solution: w_S = (G_SS + eps I)^(-1) (G W)_S,j with G = X^T X and a relative damping eps that only
    guards against a singular G_SS (calibration rank below the support size).

    Speed: output columns with the same support size are solved together by one batched
    ``np.linalg.solve`` (in chunks of at most ``chunk_bytes`` of stacked G_SS), with BLAS held to one
    thread (``threadpoolctl``): thousands of small solves on many threads oversubscribe a small CPU.

    Args:
        W: (d_in, d_out) dense weights. X: (n, d_in) inputs. mask: boolean (d_in, d_out) support.
        damping: eps as a fraction of mean(diag G). chunk_bytes: most memory of one batched solve.
    Returns:
        (d_in, d_out) weights, zero outside the mask.
    """
    from threadpoolctl import threadpool_limits

    W, X = _layer(W, X)
    mask = np.asarray(to_numpy(mask), dtype=bool)
    if mask.shape != W.shape:
        raise CourseError(f"mask has shape {mask.shape} but W has shape {W.shape}; pass one boolean per weight.")
    chunk_bytes = check_int(chunk_bytes, "chunk_bytes", 1)
    G = X.T @ X
    GW = G @ W
    eps = check_positive(damping, "damping", allow_zero=True) * max(float(np.mean(np.diag(G))), 1e-300)
    out = np.zeros_like(W)
    sizes = mask.sum(axis=0)
    with threadpool_limits(1):
        for k in np.unique(sizes[sizes > 0]):
            cols = np.flatnonzero(sizes == k)
            per = max(1, chunk_bytes // (8 * int(k) * int(k)))
            for c in range(0, cols.size, per):
                J = cols[c:c + per]
                S = np.nonzero(mask[:, J].T)[1].reshape(J.size, int(k))   # row indices, ascending, per column
                A = G[S[:, :, None], S[:, None, :]]
                A[:, np.arange(k), np.arange(k)] += eps
                out[S, J[:, None]] = np.linalg.solve(A, GW[S, J[:, None]][..., None])[..., 0]
    return out


def reconstruction_error(W, W_pruned, X, relative: bool = True) -> float:
    """||X W - X W'||_F^2, divided by ||X W||_F^2 when ``relative``."""
    W, X = _layer(W, X)
    Wp = np.asarray(to_numpy(W_pruned), dtype=float)
    err = float(np.sum((X @ (W - Wp)) ** 2))
    return err / float(np.sum((X @ W) ** 2)) if relative else err


class LayerReconstruction(Problem):
    """f(w') = 1/2 ||X W - X W'||_F^2 over w' = vec(W') (row-major), a convex quadratic.

    grad = vec(G (W' - W)), Hessian I (x) G with G = X^T X, so L = lambda_max(G), mu = lambda_min(G),
    x* = vec(W), f* = 0. Used with :func:`course_lib.sparsity.iht` to prune by hard thresholding.

    Args:
        W: (d_in, d_out) dense weights. X: (n, d_in) calibration inputs.
    """

    name = "layer_reconstruction"

    def __init__(self, W, X):
        self.W, X = _layer(W, X)
        self.G = X.T @ X
        self.shape = self.W.shape
        self.dim = self.W.size
        eig = np.linalg.eigvalsh(self.G)
        self.L, self.mu = float(eig[-1]), max(float(eig[0]), 0.0)

    def _D(self, x):
        return np.reshape(x, self.shape) - self.W

    def value(self, x):
        D = self._D(x)
        return 0.5 * float(np.sum(D * (self.G @ D)))

    def grad(self, x):
        return (self.G @ self._D(x)).reshape(-1)

    def hvp(self, x, v):
        return (self.G @ np.reshape(v, self.shape)).reshape(-1)

    @property
    def x_star(self):
        return self.W.reshape(-1).copy()


def prune_iht(W, X, sparsity: float, accelerated: bool = True, max_iter: int = 200):
    """Prune a layer by (accelerated, monotone) IHT on the reconstruction objective, from W, then refit.

    Starts at H_k(vec W) (magnitude pruning) and never ends worse than it: IHT with step 1/L is
    monotone (Blumensath & Davies 2008, Thm 1). The refit on the final support can only lower f.

    Args:
        W, X: the layer and its calibration inputs. sparsity: fraction of zeros (whole layer).
        accelerated: use :func:`course_lib.sparsity.accelerated_iht`. max_iter: iterations.
    Returns:
        (pruned W', the IHT Trace).
    """
    problem = LayerReconstruction(W, X)
    k = keep_count(problem.dim, sparsity)
    run = accelerated_iht if accelerated else iht
    tr = run(problem, problem.W.reshape(-1).copy(), k, max_iter=max_iter)
    support = np.asarray(tr.x_final).reshape(problem.shape) != 0
    return refit(problem.W, X, support), tr


def admm_prune(W, X, sparsity: float, per_output: bool = False, rho: float = 0.1, rho_growth: float = 1.3,
               max_iter: int = 60, refit_support: bool = True):
    """Prune a layer by ADMM on min 1/2||X(W - W')||^2 s.t. W' = Z, ||Z||_0 <= k.

    Scaled-form ADMM (Boyd et al. 2011, Sec. 3.1.1; nonconvex constraint set as in Sec. 9.1):

        W'  = (G + rho I)^(-1) (G W + rho (Z - U))     (closed form: a ridge-like solve)
        Z   = H_k(W' + U)                               (k-sparse projection in the diag(G) metric:
                                                         keep the largest |A_ij| sqrt(G_ii), Wanda's score)
        U  += W' - Z

    with rho multiplied by ``rho_growth`` every iteration, which forces W' and Z together and freezes
    the support (Boza, TMLR 2024). rho is relative to mean(diag G). Z starts at Wanda's support,
    refitted, and the result is never worse than that start. There is no global-optimality guarantee
    (the constraint set is not convex); on 40 random 8-weight layers keeping 3 (tests/test_pruning.py)
    it found the brute-force optimum on 36, was within 1.66x of it on all, and matched or beat
    magnitude pruning with refit on 39.

    Args:
        W: (d_in, d_out) weights. X: (n, d_in) calibration inputs. sparsity: fraction of zeros.
        per_output: the same number of weights per output column (as Wanda) instead of per layer.
        rho, rho_growth, max_iter: penalty, its growth factor (>= 1) and the iterations.
        refit_support: finish with the least-squares refit on Z's support.
    Returns:
        (pruned W', info dict with "objective" (relative error per iteration) and "support_changes").
    """
    W, X = _layer(W, X)
    rho = check_positive(rho, "rho")
    if not rho_growth >= 1:
        raise CourseError(f"rho_growth must be >= 1 (the penalty never shrinks), got {rho_growth!r}.")
    max_iter = check_int(max_iter, "max_iter", 1)
    G = X.T @ X
    scale = max(float(np.mean(np.diag(G))), 1e-300)
    GW = G @ W
    total = max(float(np.sum(W * GW)), 1e-300)

    col = np.sqrt(np.maximum(np.diag(G), 0.0))[:, None]

    def project(A):
        return A * _top_mask(np.abs(A) * col, sparsity, per_output)

    Z = refit(W, X, project(W) != 0)                 # start: the Wanda-scored support, refitted
    start = Z.copy()
    U = np.zeros_like(W)
    objective, changes = [], []
    lam, Q = np.linalg.eigh(G)                        # (G + r I)^(-1) = Q diag(1/(lam + r)) Q^T for every r
    r = rho * scale
    for _ in range(max_iter):
        Wp = Q @ ((Q.T @ (GW + r * (Z - U))) / (lam + r)[:, None])
        Z_new = project(Wp + U)
        changes.append(int(np.sum((Z_new != 0) != (Z != 0))))
        Z = Z_new
        U += Wp - Z
        D = W - Z
        objective.append(float(np.sum(D * (G @ D))) / total)   # ||X(W - Z)||^2 / ||XW||^2 from the Gram matrix
        r *= rho_growth
    out = refit(W, X, Z != 0) if refit_support else Z
    if reconstruction_error(W, start, X) < reconstruction_error(W, out, X):
        out = start                                   # never worse than the refitted starting support
    return out, {"objective": objective, "support_changes": changes}



def prune_layer_weights(W, X, sparsity: float, method: str = "admm"):
    """Prune one layer's (d_in, d_out) weights with one of :data:`METHODS`.

    Args:
        W: weights. X: calibration inputs (n, d_in). sparsity: fraction of zeros.
        method: "magnitude" (whole layer), "wanda" (per output), either with "+refit" (least squares on
            the kept weights), "iht" (accelerated IHT + refit) or "admm" (per layer, + refit).
    Returns:
        The pruned (d_in, d_out) weights as a float64 NumPy array.
    """
    if method not in METHODS:
        raise CourseError(f"method must be one of {', '.join(METHODS)}; got {method!r}.")
    from threadpoolctl import threadpool_limits

    W, X = _layer(W, X)
    base = method.split("+")[0]
    with threadpool_limits(1):          # one BLAS thread: the layer's products are small (see refit)
        if base in ("magnitude", "wanda"):
            mask = magnitude_mask(W, sparsity) if base == "magnitude" else wanda_mask(W, X, sparsity)
            return refit(W, X, mask) if method.endswith("+refit") else W * mask
        if method == "iht":
            return prune_iht(W, X, sparsity)[0]
        return admm_prune(W, X, sparsity)[0]


def prune_linear_layers(model, calibrate, sparsity: float, method: str = "admm", max_rows: int = 4096,
                        layers=None, seed: int = 0):
    """Prune every ``nn.Linear`` of a torch model layer by layer, from one calibration pass.

    The inputs of each Linear layer are recorded while ``calibrate(model)`` runs (for a transformer:
    every token position is a row of X; at most ``max_rows`` rows, a seeded subset, are kept), then each
    layer's weight W^T is replaced by its pruned version (the bias is kept). This is the one-shot,
    post-training setting of Wanda and SparseGPT: no retraining.

    Args:
        model: a torch module. calibrate: function(model) that runs the model on calibration data.
        sparsity: fraction of zeros per layer. method: one of :data:`METHODS`.
        max_rows: most calibration rows per layer. layers: only these module names (default: every Linear).
        seed: seed of the row subset.
    Returns:
        A list of dicts, one per pruned layer: name, shape, sparsity, relative reconstruction error.
    """
    import torch

    sparsity = check_in_range(sparsity, "sparsity", 0.0, 1.0)
    max_rows = check_int(max_rows, "max_rows", 1)
    linears = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)
               and (layers is None or name in layers)}
    if not linears:
        raise CourseError("prune_linear_layers found no nn.Linear layer to prune"
                          + (f" among layers={list(layers)!r}" if layers is not None else "") + ".")
    inputs = {name: [] for name in linears}
    hooks = [m.register_forward_hook(lambda m, inp, out, name=name: inputs[name].append(
        inp[0].detach().reshape(-1, m.in_features).double().cpu())) for name, m in linears.items()]
    try:
        with torch.no_grad():
            calibrate(model)
    finally:
        for h in hooks:
            h.remove()
    rng = np.random.default_rng(seed)
    report = []
    for name, layer in linears.items():
        if not inputs[name]:
            raise CourseError(f"calibrate(model) never ran layer {name!r}; pass calibration data that reaches it.")
        X = torch.cat(inputs[name]).numpy()
        if X.shape[0] > max_rows:
            X = X[np.sort(rng.choice(X.shape[0], size=max_rows, replace=False))]
        W = layer.weight.detach().double().cpu().numpy().T.copy()   # not a view: the layer is overwritten
        Wp = prune_layer_weights(W, X, sparsity, method)
        with torch.no_grad():
            layer.weight.copy_(torch.as_tensor(Wp.T, dtype=layer.weight.dtype))
        report.append({"layer": name, "shape": tuple(W.shape), "sparsity": float(np.mean(Wp == 0)),
                       "reconstruction_error": reconstruction_error(W, Wp, X)})
    return report
