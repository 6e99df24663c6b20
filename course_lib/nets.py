"""Chapter 4, small nonconvex models: matrix factorisation and a small MLP on scikit-learn's digits.

Both are Problems over ONE flat parameter vector, written with the array API (so they run on NumPy
and on torch, CPU or CUDA): the MLP's gradient is hand-written backpropagation (checked against
torch autograd in the tests), its Hessian-vector products come from double backprop on torch and
from finite differences of gradients on NumPy. Every chapter-4 tool (sharpness, SAM, IHT pruning,
loss-landscape slices) therefore applies to them unchanged. Training is minibatch SGD, SAM or
ASAM with seeded batches, and returns a Trace.
"""
from __future__ import annotations

import numpy as np

from .backend import RNG, backend_of, get_backend, hvp_autograd, is_torch, namespace, to_float, to_numpy
from .datasets import load_dataset, train_test_split
from .nonconvex import fd_hvp, sam_perturbation
from .problems import FiniteSum, Problem
from .trace import Recorder, Trace
from .validation import (CourseError, check_array, check_has, check_in_range, check_int, check_positive, check_seed,
                         check_start)

__all__ = ["MatrixFactorization", "MLP", "load_digits", "noisy_labels", "train", "accuracy",
           "random_direction", "landscape_1d", "landscape_2d"]


class MatrixFactorization(Problem):
    """f(U, V) = 1/2 ||U V^T - M||_F^2 over x = (vec U, vec V), U in R^(m x r), V in R^(n x r).

    grad_U = R V, grad_V = R^T U with R = U V^T - M; the Hessian-vector product along (dU, dV) is
    (dR V + R dV, dR^T U + R^T dU) with dR = dU V^T + U dV^T. Nonconvex with a saddle at 0 whose
    Hessian eigenvalues are +-sigma_i(M) (each r times) and 0; every local minimum is global, with
    f* = 1/2 sum_{i > r} sigma_i(M)^2 (Eckart-Young; Baldi & Hornik, Neural Networks 1989). Not
    globally smooth (L = None).

    Args:
        M: target (m, n) matrix. rank: r.
    """

    name = "matrix_factorization"
    _data_fields = ("M",)

    def __init__(self, M, rank: int, backend=None):
        self.backend = get_backend(backend) if backend is not None else backend_of(M)
        self.M = self.backend.asarray(M)
        check_array(self.M, "M", ndim=2)
        self.m, self.n = (int(s) for s in self.M.shape)
        self.rank = check_int(rank, "rank", 1)
        self.dim = (self.m + self.n) * self.rank
        self.L, self.mu = None, None
        self.singular_values = np.linalg.svd(to_numpy(self.M), compute_uv=False)

    @classmethod
    def random(cls, m: int, n: int, rank: int, seed: int = 0, backend=None) -> "MatrixFactorization":
        """A problem whose target is a random rank-``rank`` matrix M = A B^T / sqrt(rank) (so f* = 0)."""
        m, n, rank = check_int(m, "m", 1), check_int(n, "n", 1), check_int(rank, "rank", 1)
        rng = np.random.default_rng(check_seed(seed))
        M = rng.standard_normal((m, rank)) @ rng.standard_normal((n, rank)).T / np.sqrt(rank)
        return cls(M, rank, backend=backend)

    def factors(self, x):
        """(U, V) from the flat vector x."""
        xp = namespace(x)
        k = self.m * self.rank
        return xp.reshape(x[:k], (self.m, self.rank)), xp.reshape(x[k:], (self.n, self.rank))

    def _flat(self, A, B):
        xp = namespace(A)
        return xp.concat([xp.reshape(A, (-1,)), xp.reshape(B, (-1,))])

    def value(self, x):
        U, V = self.factors(x)
        R = U @ V.T - self.M
        return 0.5 * namespace(x).sum(R * R)

    def grad(self, x):
        U, V = self.factors(x)
        R = U @ V.T - self.M
        return self._flat(R @ V, R.T @ U)

    def hvp(self, x, v):
        U, V = self.factors(x)
        dU, dV = self.factors(v)
        R = U @ V.T - self.M
        dR = dU @ V.T + U @ dV.T
        return self._flat(dR @ V + R @ dV, dR.T @ U + R.T @ dU)

    @property
    def f_star(self) -> float:
        return 0.5 * float(np.sum(self.singular_values[self.rank:] ** 2))

    def init(self, scale: float = 0.1, seed: int = 0):
        """A small random start x0 ~ N(0, scale^2 I) (near the saddle at 0)."""
        return RNG(seed, self.backend).normal((self.dim,), scale=check_positive(scale, "scale"))


class MLP(FiniteSum):
    """A multilayer perceptron with tanh hidden layers and softmax cross-entropy, on one flat vector.

    f(theta) = (1/n) sum_i [logsumexp(z_i) - z_{i, y_i}] + (lam/2)||theta||^2, z_i = logits of x_i.
    Layer l maps h -> h W_l + b_l (W_l of shape (in, out), stored row-major, then b_l); hidden layers
    apply tanh. The gradient is backpropagation (dZ = (softmax(Z) - Y)/n, dW = H^T dZ, db = 1^T dZ,
    dH = dZ W^T, through tanh: dZ = dH (1 - H^2)); smooth (tanh), so Hessians exist everywhere.

    Args:
        X: (n, d_in) inputs. y: (n,) integer class labels 0..C-1. hidden: hidden widths.
        n_classes: C (default max(y) + 1). lam: weight decay.
    """

    name = "mlp"
    _data_fields = ("X", "y", "Y")

    def __init__(self, X, y, hidden=(32,), n_classes: int | None = None, lam: float = 0.0, backend=None):
        self.backend = get_backend(backend) if backend is not None else backend_of(X)
        self.X = self.backend.asarray(X)
        check_array(self.X, "X", ndim=2)
        y_np = to_numpy(y).astype(float).reshape(-1)
        if y_np.shape[0] != self.X.shape[0] or np.any(y_np != np.round(y_np)) or y_np.min() < 0:
            raise CourseError(f"y must hold {self.X.shape[0]} integer class labels >= 0 (one per row of X), "
                              f"got shape {y_np.shape} with values like {np.unique(y_np)[:5]}.")
        self.n_classes = int(y_np.max()) + 1 if n_classes is None else check_int(n_classes, "n_classes", 2)
        if y_np.max() >= self.n_classes:
            raise CourseError(f"y holds the class label {int(y_np.max())} but n_classes={self.n_classes}; labels must "
                              f"lie in 0..n_classes-1. Pass n_classes >= {int(y_np.max()) + 1} (or leave it None).")
        if isinstance(hidden, (int, np.integer)) or not isinstance(hidden, (list, tuple)):
            raise CourseError(f"hidden must be a tuple of hidden-layer widths, e.g. hidden=(32,), got {hidden!r}.")
        self.y = self.backend.asarray(y_np)
        self.Y = self.backend.asarray(np.eye(self.n_classes)[y_np.astype(int)])
        self.n = int(self.X.shape[0])
        self.sizes = (int(self.X.shape[1]), *(check_int(h, "hidden width", 1) for h in hidden), self.n_classes)
        self.lam = check_positive(lam, "lam", allow_zero=True)
        self.L, self.mu, self.L_max = None, None, None
        self._offsets = []
        start = 0
        for a, b in zip(self.sizes[:-1], self.sizes[1:]):
            self._offsets.append((start, start + a * b, start + a * b + b))
            start += a * b + b
        self.dim = start

    def params(self, theta):
        """[(W_l, b_l)] views of the flat vector theta."""
        xp = namespace(theta)
        return [(xp.reshape(theta[s:w], (a, b)), theta[w:e])
                for (s, w, e), a, b in zip(self._offsets, self.sizes[:-1], self.sizes[1:])]

    def weight_mask(self, layer: int):
        """Boolean mask of the weights W_layer inside theta (for pruning that layer)."""
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or \
                not -len(self._offsets) <= layer < len(self._offsets):
            raise CourseError(f"layer must be in 0..{len(self._offsets) - 1}, got {layer!r}.")
        s, w, _ = self._offsets[layer]
        mask = np.zeros(self.dim, dtype=bool)
        mask[s:w] = True
        return self.backend.asarray(mask, dtype="bool")

    def init(self, seed: int = 0):
        """LeCun-normal weights W ~ N(0, 1/fan_in), zero biases, as a flat vector on the backend."""
        rng = RNG(seed, self.backend)
        xp = self.backend.xp
        parts = []
        for a, b in zip(self.sizes[:-1], self.sizes[1:]):
            parts += [rng.normal((a * b,), scale=1 / np.sqrt(a)), self.backend.asarray(np.zeros(b))]
        return xp.concat(parts)

    def _forward(self, theta, X):
        xp = namespace(theta)
        hs, h = [X], X
        layers = self.params(theta)
        for l, (W, b) in enumerate(layers):
            z = h @ W + b
            h = xp.tanh(z) if l < len(layers) - 1 else z
            hs.append(h)
        return hs

    def logits(self, theta, X=None):
        """The network's outputs z = f_theta(X) (on the training X by default)."""
        return self._forward(theta, self.X if X is None else X)[-1]

    def _log_softmax(self, Z):
        xp = namespace(Z)
        m = xp.max(Z, axis=1, keepdims=True)
        return Z - m - xp.log(xp.sum(xp.exp(Z - m), axis=1, keepdims=True))

    def _loss(self, theta, idx):
        xp = namespace(theta)
        Z = self.logits(theta, self._rows(self.X, idx))
        return -xp.sum(self._log_softmax(Z) * self._rows(self.Y, idx), axis=1)

    def _loss_grad(self, theta, idx):
        xp = namespace(theta)
        X, Y = self._rows(self.X, idx), self._rows(self.Y, idx)
        hs = self._forward(theta, X)
        dZ = (xp.exp(self._log_softmax(hs[-1])) - Y) / X.shape[0]
        grads = []
        for l, (W, _) in reversed(list(enumerate(self.params(theta)))):
            grads = [xp.reshape(hs[l].T @ dZ, (-1,)), xp.sum(dZ, axis=0)] + grads
            if l > 0:
                dZ = (dZ @ W.T) * (1 - hs[l] ** 2)
        return xp.concat(grads)

    def hvp(self, x, v):
        """H(x) v: double backprop on torch (exact), central differences of gradients on NumPy."""
        return hvp_autograd(self.value, x, v) if is_torch(x) else fd_hvp(self.grad, x, v)

    def predict(self, theta, X=None):
        """Predicted classes argmax_c z_c (as float64 labels)."""
        xp = namespace(theta)
        return xp.astype(xp.argmax(self.logits(theta, X), axis=1), theta.dtype)


def accuracy(problem: MLP, theta, X=None, y=None) -> float:
    """Fraction of correctly classified examples (the training set by default)."""
    xp = namespace(theta)
    y = problem.y if y is None else problem.backend.asarray(y)
    n_rows = int(problem.X.shape[0] if X is None else X.shape[0])
    if tuple(y.shape) != (n_rows,):
        raise CourseError(f"y must hold one label per row of X: shape ({n_rows},), got {tuple(y.shape)}.")
    return to_float(xp.mean(xp.astype(problem.predict(theta, X) == y, theta.dtype)))


def noisy_labels(y, fraction: float, n_classes: int, seed: int = 0):
    """Replace a ``fraction`` of labels by a uniformly drawn *different* class (symmetric label noise).

    Returns:
        (noisy labels on y's backend, boolean NumPy mask of the flipped examples).
    """
    fraction = check_in_range(fraction, "fraction", 0.0, 1.0)
    n_classes = check_int(n_classes, "n_classes", 2)
    y_float = np.asarray(to_numpy(y), dtype=float).reshape(-1)
    if np.any(y_float != np.round(y_float)) or y_float.min() < 0 or y_float.max() >= n_classes:
        raise CourseError(f"y must hold integer class labels in 0..{n_classes - 1}, got values like "
                          f"{np.unique(y_float)[:5]}.")
    y_np = y_float.astype(int)
    rng = np.random.default_rng(seed)
    flip = rng.random(y_np.shape[0]) < fraction
    shift = rng.integers(1, n_classes, y_np.shape[0])
    noisy = np.where(flip, (y_np + shift) % n_classes, y_np)
    return backend_of(y).asarray(noisy.astype(float)), flip


def load_digits(test_fraction: float = 0.25, label_noise: float = 0.0, seed: int = 0, backend=None):
    """scikit-learn's 8x8 digits (1797 images, 10 classes), standardised, split, optional train-label noise.

    Returns:
        (X_train, X_test, y_train, y_test) on ``backend``; labels are floats 0..9, only y_train is noisy.
    """
    label_noise = check_in_range(label_noise, "label_noise", 0.0, 1.0)
    X, y = load_dataset("digits", standardize=True, backend=backend)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_fraction=test_fraction, seed=seed)
    if label_noise > 0:
        y_tr, _ = noisy_labels(y_tr, label_noise, 10, seed=seed + 1)
    return X_tr, X_te, y_tr, y_te


def train(problem: FiniteSum, theta0, method: str = "sgd", step_size: float = 0.1, rho: float = 0.05,
          batch_size: int = 64, epochs: int = 10, seed: int = 0, eta: float = 0.01, test=None,
          on_divergence: str = "raise") -> Trace:
    """Minibatch training: SGD, SAM or ASAM, one shuffled pass over the data per epoch.

    sgd:  theta <- theta - step_size g_B(theta)
    sam:  theta <- theta - step_size g_B(theta + eps), eps = rho g_B/||g_B|| (Foret et al., ICLR 2021)
    asam: the same with eps = rho T^2 g_B/||T g_B||, T = |theta| + eta (Kwon et al., ICML 2021)
    with g_B the minibatch gradient (the same batch for the ascent and the descent step). Batches
    come from a seeded permutation per epoch (course_lib.backend.RNG), so runs are reproducible and
    agree across backends. One record per epoch: full training loss and gradient norm (the
    quantity nonconvex guarantees bound), ``info["train_acc"]`` and, with ``test=(X, y)``,
    ``info["test_acc"]``.

    Args:
        problem: a FiniteSum with grad_batch (e.g. :class:`MLP`). theta0: start.
        method: "sgd", "sam" or "asam". step_size, rho, eta: as above. batch_size, epochs: loop sizes.
        seed: shuffling seed. test: optional (X_test, y_test). on_divergence: see Recorder.
    Returns:
        The Trace (iteration = epoch; oracle_calls counts minibatch gradients).
    """
    if method not in ("sgd", "sam", "asam"):
        raise CourseError(f"method must be 'sgd', 'sam' or 'asam', got {method!r}.")
    check_has(problem, "problem", ("grad_batch", "n", "value", "grad", "check_x", "predict"), "a classification "
              "finite sum", "Use course_lib.nets.MLP(X, y, hidden=(32,)).")
    theta = check_start(problem, theta0, name="theta0")
    step_size, epochs = check_positive(step_size, "step_size"), check_int(epochs, "epochs", 0)
    rho = check_positive(rho, "rho", allow_zero=True)
    eta = check_positive(eta, "eta")
    if test is not None and not (isinstance(test, (list, tuple)) and len(test) == 2):
        raise CourseError(f"test must be a pair (X_test, y_test), got {type(test).__name__} of length "
                          f"{len(test) if hasattr(test, '__len__') else '?'}.")
    batch_size = min(check_int(batch_size, "batch_size", 1), problem.n)
    rng = RNG(seed, backend_of(theta))
    rec = Recorder(method, theta, epochs, params={"step_size": step_size, "rho": rho, "batch_size": batch_size,
                   "seed": seed}, keep_x=False, on_divergence=on_divergence)

    def log(epoch, calls):
        extra = {"train_acc": accuracy(problem, theta)}
        if test is not None:
            extra["test_acc"] = accuracy(problem, theta, *test)
        return rec.record(epoch, theta, f=problem.value(theta), grad=problem.grad(theta), calls=calls, **extra)

    if log(0, 0):
        for epoch in range(1, epochs + 1):
            perm, calls = rng.permutation(problem.n), 0
            for start in range(0, problem.n, batch_size):
                idx = perm[start:start + batch_size]
                g = problem.grad_batch(theta, idx)
                if method != "sgd":
                    e = sam_perturbation(g, theta, rho, adaptive=method == "asam", eta=eta)
                    g = problem.grad_batch(theta + e, idx)
                    calls += 1
                theta = theta - step_size * g
                calls += 1
            if not log(epoch, calls):
                break
    return rec.finish(theta)


def random_direction(problem: MLP, theta, seed: int = 0):
    """A random direction with filter normalisation (Li, Xu, Taylor, Studer & Goldstein, NeurIPS 2018).

    d ~ N(0, I), then each neuron's incoming weights (a column of W_l) are rescaled to the norm of
    the same column of theta; bias directions are set to 0. Slices along such directions are
    comparable between networks whose weights have different scales.
    """
    check_has(problem, "problem", ("params", "dim"), "a course_lib.nets.MLP",
              "Filter normalisation needs the network's layers; on other problems use RNG(seed).normal((dim,)).")
    xp = namespace(theta)
    d = RNG(seed, backend_of(theta)).normal((problem.dim,))
    parts = []
    for (Wd, bd), (W, _) in zip(problem.params(d), problem.params(theta)):
        scale = xp.sqrt(xp.sum(W * W, axis=0)) / xp.sqrt(xp.sum(Wd * Wd, axis=0))
        parts += [xp.reshape(Wd * scale, (-1,)), 0 * bd]
    return xp.concat(parts)


def landscape_1d(f, x, direction, alphas) -> np.ndarray:
    """The 1-D slice alpha -> f(x + alpha d) of a loss (e.g. a problem's ``value``), as a NumPy array.

    With d = x_B - x_A and alphas in [0, 1] this is the linear interpolation between two solutions
    (Goodfellow, Vinyals & Saxe, ICLR 2015).
    """
    check_array(direction, "direction", shape=tuple(x.shape))
    return np.array([to_float(f(x + float(a) * direction)) for a in _grid(alphas, "alphas")])


def _grid(values, name):
    """A 1-D grid of finite step lengths as a float array."""
    try:
        grid = np.asarray(values, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise CourseError(f"{name} must be a list or array of numbers, got {values!r:.60}.") from None
    if not np.all(np.isfinite(grid)):
        raise CourseError(f"{name} must hold finite numbers, got {values!r:.60}.")
    return grid


def landscape_2d(f, x, d1, d2, alphas, betas) -> np.ndarray:
    """The 2-D slice f(x + alpha d1 + beta d2) on a grid: array of shape (len(betas), len(alphas))."""
    check_array(d1, "d1", shape=tuple(x.shape))
    check_array(d2, "d2", shape=tuple(x.shape))
    return np.array([[to_float(f(x + float(a) * d1 + float(b) * d2)) for a in _grid(alphas, "alphas")]
                     for b in _grid(betas, "betas")])
