"""Objectives of the course: value, gradient, Hessian / Hessian-vector product and known constants.

Each problem knows what the theory needs: the smoothness constant ``L`` (largest Hessian
eigenvalue bound), the strong-convexity constant ``mu`` (0 when only convex, ``None`` when not
convex), the minimiser ``x_star`` and the optimal value ``f_star`` where they exist. Finite sums
``f(x) = (1/n) sum_i f_i(x) + (lam/2)||x||^2`` also give minibatch gradients
(:meth:`FiniteSum.grad_batch`) and the per-example smoothness ``L_max`` for chapter 2.

Problems hold their data on one backend (NumPy or torch, CPU or CUDA); ``problem.to("torch")``
moves them. All methods are written once with the array API, so they run on every backend.

Example:
    >>> from course_lib.problems import Quadratic
    >>> import numpy as np
    >>> q = Quadratic(np.diag([1.0, 10.0]), np.array([1.0, 1.0]))
    >>> q.L, q.mu, q.condition_number
    (10.0, 1.0, 10.0)
"""
from __future__ import annotations

import copy
from functools import cached_property

import numpy as np

from .backend import Backend, asarray, backend_of, get_backend, namespace, sigmoid, to_float, to_numpy
from .validation import CourseError, check_array, check_index, check_int, check_labels_pm1, check_positive, check_real

__all__ = ["Problem", "FiniteSum", "Quadratic", "LeastSquares", "Ridge", "LogisticRegression", "Rosenbrock"]


class Problem:
    """Base class: an objective f on R^dim.

    Subclasses define ``value`` and ``grad`` and, where they can, ``hess`` or ``hvp``.

    Attributes:
        dim: number of variables.
        L: smoothness constant (sup of the Hessian's spectral norm), or None if unbounded.
        mu: strong-convexity constant; 0 for convex, None for nonconvex problems.
        convex: whether f is convex.
        backend: where the data lives.
    """

    name = "problem"
    dim: int
    L: float | None = None
    mu: float | None = None
    backend: Backend = Backend("numpy")

    @property
    def convex(self) -> bool:
        return self.mu is not None

    @property
    def condition_number(self) -> float:
        """kappa = L / mu (inf when mu = 0)."""
        if self.L is None or self.mu is None:
            raise CourseError(f"{self.name}: the condition number needs L and mu, which are not known here.")
        return float("inf") if self.mu == 0 else self.L / self.mu

    @property
    def x_star(self):
        """The minimiser, on the problem's backend (None when not known)."""
        return None

    @property
    def f_star(self) -> float | None:
        """The optimal value (None when not known)."""
        x = self.x_star
        return None if x is None else to_float(self.value(x))

    def value(self, x):
        raise NotImplementedError

    def grad(self, x):
        raise NotImplementedError

    def hess(self, x):
        raise NotImplementedError(f"{self.name} has no explicit Hessian; use hvp(x, v).")

    def hvp(self, x, v):
        """Hessian-vector product nabla^2 f(x) v (default: the explicit Hessian times v)."""
        return self.hess(x) @ v

    def value_and_grad(self, x):
        """(f(x), grad f(x))."""
        return self.value(x), self.grad(x)

    # -- backend helpers -------------------------------------------------------------------
    def asarray(self, data):
        """``data`` as a float64 array on this problem's backend."""
        return self.backend.asarray(data)

    def zeros(self):
        """The zero vector of R^dim on this problem's backend (a common starting point)."""
        return self.backend.asarray(np.zeros(self.dim))

    def check_x(self, x, name: str = "x"):
        """Check a point: an array of shape (dim,), floating, finite, on this backend."""
        check_array(x, name, shape=(self.dim,))
        if backend_of(x) != self.backend:
            raise CourseError(
                f"{name} lives on backend {backend_of(x)} but {self.name} lives on {self.backend}. "
                f"Use problem.asarray({name}) or problem.to('{backend_of(x)}')."
            )
        return x

    def to(self, backend) -> "Problem":
        """A copy of this problem with its data on ``backend`` ("numpy", "torch", "torch:cuda")."""
        b = get_backend(backend)
        new = copy.copy(self)
        new.__dict__ = {k: v for k, v in self.__dict__.items() if k not in self._cached}
        for key, val in self.__dict__.items():
            if key in self._data_fields:
                new.__dict__[key] = b.asarray(val) if val is not None else None
        new.backend = b
        return new

    _data_fields: tuple[str, ...] = ()
    _cached: tuple[str, ...] = ("x_star", "_x_star_np")

    def __repr__(self) -> str:
        L = "?" if self.L is None else f"{self.L:.4g}"
        mu = "nonconvex" if self.mu is None else f"{self.mu:.4g}"
        return f"{type(self).__name__}(dim={self.dim}, L={L}, mu={mu}, backend={self.backend})"


class Quadratic(Problem):
    """f(x) = 1/2 x^T A x - b^T x + c with A symmetric.

    grad f(x) = A x - b, Hessian A. L = lambda_max(A); mu = lambda_min(A) when A is PSD
    (mu = None otherwise: f is not convex). For A positive definite, x* = A^{-1} b and
    f* = c - 1/2 b^T A^{-1} b.

    Args:
        A: symmetric (dim, dim) matrix (NumPy or torch).
        b: linear term (dim,), zero by default.
        c: constant offset.
        backend: where to keep the data (default: A's backend).
    """

    name = "quadratic"
    _data_fields = ("A", "b")

    def __init__(self, A, b=None, c: float = 0.0, backend=None):
        self.backend = get_backend(backend) if backend is not None else backend_of(A)
        A = self.backend.asarray(A)
        check_array(A, "A", ndim=2)
        n = A.shape[0]
        check_array(A, "A", shape=(n, n))
        A_np = to_numpy(A)
        if not np.allclose(A_np, A_np.T, rtol=1e-10, atol=1e-12):
            raise CourseError("A must be symmetric; got max |A - A^T| = "
                              f"{np.abs(A_np - A_np.T).max():.3g}. Use (A + A.T) / 2.")
        self.A = A
        self.b = self.backend.asarray(np.zeros(n) if b is None else b)
        check_array(self.b, "b", shape=(n,))
        self.c = check_real(c, "c")
        self.dim = n
        eig = np.linalg.eigvalsh(A_np)
        self.eigenvalues = eig
        self.L = float(max(abs(eig[0]), abs(eig[-1])))
        tol = 1e-12 * max(1.0, abs(eig[-1]))
        self.mu = float(max(eig[0], 0.0)) if eig[0] >= -tol else None

    @classmethod
    def random(cls, dim: int, cond: float = 10.0, seed: int = 0, backend=None, mu: float = 1.0) -> "Quadratic":
        """A random strongly convex quadratic with eigenvalues spread log-uniformly on [mu, cond * mu].

        The extreme eigenvalues are exactly mu and cond * mu, so L / mu = cond.
        """
        from .datasets import random_spd

        A = random_spd(dim, cond=cond, seed=seed, mu=mu)
        b = np.random.default_rng(seed + 1).standard_normal(dim)
        return cls(A, b, backend=backend)

    def value(self, x):
        return 0.5 * (x @ (self.A @ x)) - self.b @ x + self.c  # inner products of 1-D arrays: any backend

    def grad(self, x):
        return self.A @ x - self.b

    def hess(self, x):
        return self.A

    def hvp(self, x, v):
        return self.A @ v

    @cached_property
    def x_star(self):
        if self.mu is None or self.mu == 0:
            return None
        return self.backend.asarray(np.linalg.solve(to_numpy(self.A), to_numpy(self.b)))


class FiniteSum(Problem):
    """f(x) = (1/n) sum_i f_i(x) + (lam/2) ||x||^2, with minibatch access.

    Subclasses define ``_loss(x, idx)`` (per-example losses at rows idx, or all rows when idx is
    None) and ``_loss_grad(x, idx)`` (the mean gradient of those losses). The regulariser is
    added here, so ``grad_batch`` is an unbiased estimate of ``grad`` for uniformly drawn idx.

    Attributes:
        n: number of terms.
        lam: l2 regularisation weight.
        L_max: max_i of the smoothness constants of f_i + (lam/2)||x||^2 (for SGD step sizes).
    """

    lam: float = 0.0
    n: int
    L_max: float

    def _rows(self, M, idx):
        return M if idx is None else namespace(M).take(M, idx, axis=0)

    def _check_idx(self, idx):
        if isinstance(idx, (list, tuple, range)) or backend_of(idx) != self.backend:
            idx_np = np.asarray(to_numpy(idx))
            if idx_np.size == 0:
                raise CourseError("idx is empty: a minibatch needs at least one index.")
            check_index(idx_np, self.n)
            return self.backend.asarray(idx_np, dtype="int64")  # e.g. a NumPy index array for a torch problem
        return check_index(idx, self.n)

    def value(self, x):
        xp = namespace(x)
        return xp.mean(self._loss(x, None)) + 0.5 * self.lam * xp.sum(x * x)

    def grad(self, x):
        return self._loss_grad(x, None) + self.lam * x

    def value_batch(self, x, idx):
        """(1/|B|) sum_{i in B} f_i(x) + (lam/2)||x||^2 for index array idx = B."""
        xp = namespace(x)
        return xp.mean(self._loss(x, self._check_idx(idx))) + 0.5 * self.lam * xp.sum(x * x)

    def grad_batch(self, x, idx):
        """The minibatch gradient (1/|B|) sum_{i in B} grad f_i(x) + lam x (unbiased for uniform B)."""
        return self._loss_grad(x, self._check_idx(idx)) + self.lam * x


class LeastSquares(FiniteSum):
    """f(x) = 1/(2n) ||A x - b||^2 + (lam/2)||x||^2 = (1/n) sum_i 1/2 (a_i^T x - b_i)^2 + (lam/2)||x||^2.

    grad f(x) = A^T (A x - b) / n + lam x; Hessian A^T A / n + lam I.
    L = lambda_max(A^T A)/n + lam, mu = lambda_min(A^T A)/n + lam, L_max = max_i ||a_i||^2 + lam.
    x* solves (A^T A / n + lam I) x = A^T b / n (the least-norm solution when singular and lam = 0).

    Args:
        A: (n, dim) design matrix. b: (n,) targets. lam: ridge weight (>= 0).
    """

    name = "least_squares"
    _data_fields = ("A", "b")

    def __init__(self, A, b, lam: float = 0.0, backend=None):
        self.backend = get_backend(backend) if backend is not None else backend_of(A)
        self.A = self.backend.asarray(A)
        check_array(self.A, "A", ndim=2)
        self.n, self.dim = (int(s) for s in self.A.shape)
        self.b = self.backend.asarray(b)
        check_array(self.b, "b", shape=(self.n,))
        self.lam = check_positive(lam, "lam", allow_zero=True)
        A_np = to_numpy(self.A)
        eig = np.linalg.eigvalsh(A_np.T @ A_np / self.n)
        self.L = float(eig[-1]) + self.lam
        self.mu = float(max(eig[0], 0.0)) + self.lam
        self.L_max = float(np.max(np.sum(A_np**2, axis=1))) + self.lam

    def _loss(self, x, idx):
        r = self._rows(self.A, idx) @ x - self._rows(self.b, idx)
        return 0.5 * r * r

    def _loss_grad(self, x, idx):
        A = self._rows(self.A, idx)
        return A.T @ (A @ x - self._rows(self.b, idx)) / A.shape[0]

    def hess(self, x):
        xp = namespace(self.A)
        return self.A.T @ self.A / self.n + self.lam * xp.eye(self.dim, dtype=self.A.dtype, device=getattr(self.A, "device", None))

    def hvp(self, x, v):
        return self.A.T @ (self.A @ v) / self.n + self.lam * v

    @cached_property
    def x_star(self):
        A, b = to_numpy(self.A), to_numpy(self.b)
        if self.lam > 0:
            x = np.linalg.solve(A.T @ A / self.n + self.lam * np.eye(self.dim), A.T @ b / self.n)
        else:
            x = np.linalg.lstsq(A, b, rcond=None)[0]
        return self.backend.asarray(x)


class Ridge(LeastSquares):
    """Ridge regression f(x) = 1/(2n)||A x - b||^2 + (lam/2)||x||^2 with lam > 0 (strongly convex).

    The same objective as :class:`LeastSquares` with a required positive ``lam``; scikit-learn's
    ``Ridge(alpha=n * lam, fit_intercept=False)`` has the same minimiser.
    """

    name = "ridge"

    def __init__(self, A, b, lam: float = 1.0, backend=None):
        super().__init__(A, b, lam=check_positive(lam, "lam"), backend=backend)


class LogisticRegression(FiniteSum):
    """L2-regularised logistic regression with labels y_i in {-1, +1}.

    f(w) = (1/n) sum_i log(1 + exp(-y_i x_i^T w)) + (lam/2)||w||^2
    grad f(w) = -(1/n) X^T (y * sigma(-y * Xw)) + lam w
    Hessian (1/n) X^T diag(s (1 - s)) X + lam I with s = sigma(Xw).
    L = lambda_max(X^T X)/(4n) + lam (since s(1-s) <= 1/4), mu = lam, L_max = max_i ||x_i||^2/4 + lam.
    The minimiser has no closed form: ``x_star`` runs Newton's method in float64 to ||grad|| < 1e-13.
    scikit-learn's ``LogisticRegression(C=1/(n*lam), fit_intercept=False)`` minimises the same f.

    Args:
        X: (n, dim) features. y: (n,) labels in {-1, +1} (or {0, 1}, mapped to {-1, +1}).
        lam: l2 weight (>= 0; > 0 makes f strongly convex and x* unique).
    """

    name = "logistic_regression"
    _data_fields = ("X", "y")

    def __init__(self, X, y, lam: float = 1e-3, backend=None):
        self.backend = get_backend(backend) if backend is not None else backend_of(X)
        self.X = self.backend.asarray(X)
        check_array(self.X, "X", ndim=2)
        self.n, self.dim = (int(s) for s in self.X.shape)
        y_np = check_labels_pm1(y, "y", self.n, map_01=True)
        self.y = self.backend.asarray(y_np)
        self.lam = check_positive(lam, "lam", allow_zero=True)
        X_np = to_numpy(self.X)
        self.L = float(np.linalg.eigvalsh(X_np.T @ X_np)[-1]) / (4 * self.n) + self.lam
        self.mu = self.lam
        self.L_max = float(np.max(np.sum(X_np**2, axis=1))) / 4 + self.lam

    def _margins(self, x, idx):
        return self._rows(self.y, idx) * (self._rows(self.X, idx) @ x)

    def _loss(self, x, idx):
        xp = namespace(x)
        return xp.logaddexp(xp.zeros_like(x[:1]), -self._margins(x, idx))

    def _loss_grad(self, x, idx):
        s = sigmoid(-self._margins(x, idx))  # one exp per element, no overflow
        X = self._rows(self.X, idx)
        return -(X.T @ (self._rows(self.y, idx) * s)) / X.shape[0]

    def _weights(self, x):
        s = sigmoid(self.X @ x)
        return s * (1 - s)

    def hess(self, x):
        xp = namespace(x)
        D = self._weights(x)
        return (self.X.T * D) @ self.X / self.n + self.lam * xp.eye(self.dim, dtype=x.dtype, device=getattr(x, "device", None))

    def hvp(self, x, v):
        return self.X.T @ (self._weights(x) * (self.X @ v)) / self.n + self.lam * v

    @cached_property
    def x_star(self):
        if self.lam == 0:
            return None  # may not exist (separable data)
        prob = self.to("numpy")
        w = np.zeros(self.dim)
        for _ in range(100):
            g = prob.grad(w)
            if np.linalg.norm(g) < 1e-13:
                break
            w = w - np.linalg.solve(prob.hess(w), g)
        return self.backend.asarray(w)

    def predict(self, x, X=None):
        """Predicted labels sign(X w) in {-1, +1} (on the training X by default)."""
        xp = namespace(x)
        X = self.X if X is None else X
        return xp.where(X @ x >= 0, 1.0, -1.0)


class Rosenbrock(Problem):
    """The Rosenbrock function f(x) = sum_{i<d} b (x_{i+1} - x_i^2)^2 + (a - x_i)^2 (nonconvex).

    Its minimiser is x* = (a, a^2) in 2-D and all ones for a = 1 in any dimension, with f* = 0, at the
    bottom of a curved, badly conditioned valley. Not globally smooth: ``L`` is None; the Hessian at
    x* has condition number ~2500 for a = 1, b = 100 in 2-D.

    Args:
        dim: number of variables (>= 2). a, b: the usual parameters (1, 100).
    """

    name = "rosenbrock"

    def __init__(self, dim: int = 2, a: float = 1.0, b: float = 100.0, backend=None):
        if check_int(dim, "dim", 1) < 2:
            raise CourseError(f"Rosenbrock needs dim >= 2, got {dim!r}.")
        self.dim, self.a, self.b = int(dim), check_real(a, "a"), check_positive(b, "b")
        self.backend = get_backend(backend)
        self.L, self.mu = None, None

    def value(self, x):
        xp = namespace(x)
        t = x[1:] - x[:-1] ** 2
        return xp.sum(self.b * t * t + (self.a - x[:-1]) ** 2)

    def grad(self, x):
        xp = namespace(x)
        t = x[1:] - x[:-1] ** 2
        zero = xp.zeros_like(x[:1])
        head = -4 * self.b * x[:-1] * t - 2 * (self.a - x[:-1])
        return xp.concat([head, zero]) + xp.concat([zero, 2 * self.b * t])

    def hess(self, x):
        xp = namespace(x)
        d, b = self.dim, self.b
        zero = xp.zeros_like(x[:1])
        diag = xp.concat([12 * b * x[:-1] ** 2 - 4 * b * x[1:] + 2, zero]) + xp.concat([zero, 2 * b + 0 * x[1:]])
        off = xp.concat([-4 * b * x[:-1], zero])
        kw = dict(dtype=x.dtype, device=getattr(x, "device", None))
        upper = off[:, None] * xp.eye(d, k=1, **kw)
        return diag[:, None] * xp.eye(d, **kw) + upper + upper.T

    @property
    def x_star(self):
        if self.dim == 2:
            return self.backend.asarray([self.a, self.a**2])
        return self.backend.asarray(np.ones(self.dim)) if self.a == 1 else None

    @property
    def f_star(self) -> float | None:
        return 0.0 if self.x_star is not None else None
