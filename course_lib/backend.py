"""Array backends: one algorithm, NumPy or PyTorch (CPU or CUDA).

Every algorithm in course_lib is written once against the array API standard: it asks
``xp = namespace(x)`` for the namespace of its input and uses ``xp.*`` functions only.
``array_api_compat`` supplies that namespace for NumPy arrays and torch tensors alike.
Everything that truly differs between backends (creating arrays on a device, random
numbers, moving data back to NumPy) lives in this module.

Backends are named by strings: ``"numpy"``, ``"torch"`` (CPU), ``"torch:cuda"`` or
``"torch:cuda:1"``. The default dtype is float64 everywhere, so NumPy and torch agree
to ~1e-12 on every function of the library.

Example:
    >>> from course_lib import backend
    >>> x = backend.asarray([1.0, 2.0], backend="numpy")
    >>> backend.namespace(x).sum(x)
    np.float64(3.0)
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

DEFAULT_DTYPE = "float64"

__all__ = [
    "Backend", "get_backend", "namespace", "asarray", "to_numpy", "to_float",
    "like", "RNG", "is_torch", "backend_of", "available_backends", "hvp_autograd",
]


def _torch():
    try:
        import torch
    except ImportError as err:  # pragma: no cover - torch is part of the course environment
        raise ImportError(
            "The torch backend needs PyTorch. Install the course environment with `make test` "
            "(or `pip install -e '.[torch]' -c constraints.txt`)."
        ) from err
    return torch


@dataclass(frozen=True)
class Backend:
    """A named array backend: ``name`` is ``"numpy"`` or ``"torch"``, ``device`` e.g. ``"cpu"``."""

    name: str
    device: str = "cpu"

    def __str__(self) -> str:
        return self.name if self.name == "numpy" or self.device == "cpu" else f"{self.name}:{self.device}"

    @property
    def xp(self):
        """The array-API namespace of this backend."""
        if self.name == "numpy":
            return array_api_compat.array_namespace(np.empty(0))
        return array_api_compat.array_namespace(_torch().empty(0))

    def asarray(self, data, dtype: str | None = DEFAULT_DTYPE):
        """Convert ``data`` (lists, NumPy arrays, tensors) to this backend, on its device."""
        if self.name == "numpy":
            arr = _checked(to_numpy(data), data, dtype)
            return arr.astype(dtype, copy=False) if dtype is not None else arr
        torch = _torch()
        tdtype = getattr(torch, dtype) if dtype is not None else None
        if isinstance(data, torch.Tensor):
            if data.is_complex() and dtype is not None and "complex" not in dtype:
                _checked(np.asarray([1j]), data, dtype)
            return data.to(device=self.device, dtype=tdtype or data.dtype)
        arr = _checked(np.asarray(data), data, dtype)
        if tdtype is None and arr.dtype.kind == "f":
            tdtype = getattr(torch, str(arr.dtype))
        return torch.as_tensor(arr, dtype=tdtype, device=self.device)


def _checked(arr: np.ndarray, data, dtype) -> np.ndarray:
    """``arr`` (= np.asarray(data)) unless it cannot become a real array: None, strings, objects, complex."""
    from .validation import CourseError

    if data is None or arr.dtype.kind in "USOV":
        raise CourseError(f"data must be numbers (a list, NumPy array or tensor of reals), got "
                          f"{type(data).__name__} {data!r:.60}.")
    if arr.dtype.kind == "c" and dtype is not None and "complex" not in str(dtype):
        raise CourseError(f"data holds complex numbers but dtype {dtype} is real: the imaginary parts would be "
                          "dropped. Pass data.real (or np.abs(data)) explicitly.")
    return arr


def get_backend(spec: "str | Backend | None" = None) -> Backend:
    """Parse a backend name: ``None``/"numpy", "torch", "torch:cpu", "torch:cuda", "torch:cuda:1".

    Raises:
        CourseError (a ValueError): for an unknown name, or "torch:cuda" on a machine without CUDA.
    """
    from .validation import CourseError  # a ValueError

    if isinstance(spec, Backend):
        return spec
    if spec is None or spec == "numpy":
        return Backend("numpy")
    if not isinstance(spec, str) or not spec.startswith("torch"):
        raise CourseError(
            f"Unknown backend {spec!r}. Use 'numpy', 'torch', 'torch:cpu' or 'torch:cuda'."
        )
    head, _, device = spec.partition(":")
    device = device or "cpu"
    if head != "torch" or not (device == "cpu" or re.fullmatch(r"cuda(:\d+)?", device)):
        raise CourseError(
            f"Unknown backend {spec!r}. Use 'numpy', 'torch', 'torch:cpu' or 'torch:cuda'."
        )
    if device.startswith("cuda"):
        torch = _torch()
        if not torch.cuda.is_available():
            raise CourseError(
                f"Backend {spec!r} asks for a CUDA device, but torch.cuda.is_available() is False. "
                "Use 'torch' (CPU) here, or install the CUDA build of torch (README, 'Running on a GPU')."
            )
        if device == "cuda":  # name the index, as tensor.device does, so backend_of(x) == get_backend(...)
            device = f"cuda:{torch.cuda.current_device()}"
    return Backend("torch", device)


def available_backends() -> list[str]:
    """Backends usable on this machine: numpy, torch (if installed) and torch:cuda (if a GPU is)."""
    names = ["numpy"]
    try:
        torch = _torch()
    except ImportError:  # pragma: no cover
        return names
    names.append("torch")
    if torch.cuda.is_available():
        names.append("torch:cuda")
    return names


def is_torch(x) -> bool:
    """True if ``x`` is a torch tensor."""
    return array_api_compat.is_torch_array(x)


def backend_of(x) -> Backend:
    """The Backend an array lives on."""
    if is_torch(x):
        dev = x.device
        return Backend("torch", "cpu" if dev.type == "cpu" else str(dev))
    return Backend("numpy")


_NAMESPACE_BY_TYPE: dict[type, object] = {}  # exact array type -> its namespace (NumPy and torch arrays)


def namespace(*arrays):
    """The array-API namespace of ``arrays`` (``array_api_compat.array_namespace``).

    Python scalars and ``None`` are ignored; with no arrays at all the NumPy namespace is returned.
    Arrays that are all plain ``np.ndarray`` or all ``torch.Tensor`` get the cached namespace (the
    lookup costs ~2 us per call, a tenth of the time of one GD step on a 2-D problem).
    """
    if arrays:
        kind = type(arrays[0])
        ns = _NAMESPACE_BY_TYPE.get(kind)
        if ns is not None and all(type(a) is kind for a in arrays):
            return ns
    arrs = [a for a in arrays if a is not None and not isinstance(a, (int, float, bool))]
    if not arrs:
        return array_api_compat.array_namespace(np.empty(0))
    ns = array_api_compat.array_namespace(*arrs)
    kind = type(arrs[0])
    if len(arrs) == len(arrays) and all(type(a) is kind for a in arrs) and (
            kind is np.ndarray or (kind.__module__ == "torch" and kind.__name__ == "Tensor")):
        _NAMESPACE_BY_TYPE[kind] = ns
    return ns


def asarray(data, backend: "str | Backend | None" = None, dtype: str | None = DEFAULT_DTYPE, like=None):
    """Convert ``data`` to an array of ``backend`` (or of the backend and device of ``like``).

    Args:
        data: list, scalar, NumPy array or torch tensor.
        backend: backend name (see :func:`get_backend`); ignored when ``like`` is given.
        dtype: dtype name, float64 by default; ``None`` keeps the input's dtype.
        like: an existing array whose backend and device to use.
    Returns:
        An array of the requested backend, device and dtype.
    """
    b = backend_of(like) if like is not None else get_backend(backend)
    return b.asarray(data, dtype=dtype)


def like(data, ref, dtype: str | None = None):
    """``data`` converted to the backend, device and (by default) dtype of array ``ref``."""
    if dtype is None:
        dtype = str(ref.dtype).replace("torch.", "")
    return asarray(data, like=ref, dtype=dtype)


def sigmoid(z):
    """The logistic function sigma(z) = 1 / (1 + exp(-z)), elementwise, without overflow, full relative precision.

    torch: ``torch.sigmoid`` (one fused kernel: on several threads, one parallel region instead of five).
    Other arrays: with e = exp(-|z|) in (0, 1], sigma(z) = 1 / (1 + e) for z >= 0 and e / (1 + e) for z < 0.

    Args:
        z: an array of any backend.
    Returns:
        sigma(z), same shape, backend and dtype.
    """
    if is_torch(z):
        return _torch().sigmoid(z)
    xp = namespace(z)
    e = xp.exp(-xp.abs(z))
    r = 1 / (1 + e)
    return xp.where(z >= 0, r, e * r)


def to_numpy(x) -> np.ndarray:
    """A NumPy copy/view of an array from any backend (moves CUDA tensors to the CPU)."""
    if isinstance(x, np.ndarray):
        return x
    if is_torch(x):
        return x.detach().cpu().numpy()
    if isinstance(x, (list, tuple)) and any(is_torch(v) for v in x):
        return np.asarray([to_numpy(v) for v in x])
    return np.asarray(x)


def to_float(x) -> float:
    """A Python float from a 0-d array or scalar of any backend."""
    kind = type(x)
    if kind is float or kind is np.float64 or kind is np.ndarray:
        return float(x)
    if is_torch(x):
        return float(x.detach().cpu().item())
    return float(x)


class RNG:
    """A seeded random number generator that produces arrays of a given backend.

    By default numbers are drawn with NumPy's PCG64 and moved to the backend, so the same
    seed gives the same numbers on NumPy, torch CPU and torch CUDA (runs agree across
    backends). ``native=True`` draws with a ``torch.Generator`` on the device instead,
    which is faster for large GPU draws but gives different numbers from NumPy.

    Args:
        seed: an int seed (required: every random thing in the course is seeded).
        backend: backend name or Backend.
        native: draw with the backend's own generator (torch only).
    """

    def __init__(self, seed: int, backend: "str | Backend | None" = None, native: bool = False):
        from .validation import check_seed

        self.seed = check_seed(seed)
        self.backend = get_backend(backend)
        self.native = bool(native) and self.backend.name == "torch"
        self._np = np.random.default_rng(self.seed)
        if self.native:
            torch = _torch()
            self._gen = torch.Generator(device=self.backend.device).manual_seed(self.seed)

    @staticmethod
    def _shape(shape):
        """A shape (int or tuple of ints >= 0), checked: negative or fractional sizes are refused."""
        from .validation import check_int

        dims = (shape,) if not isinstance(shape, (tuple, list)) else tuple(shape)
        return tuple(check_int(d, "shape", 0) for d in dims)

    def _out(self, arr, dtype=DEFAULT_DTYPE):
        return self.backend.asarray(arr, dtype=dtype)

    def normal(self, shape, scale: float = 1.0, dtype: str = DEFAULT_DTYPE):
        """Standard normal samples times ``scale``."""
        shape = self._shape(shape)
        if self.native:
            torch = _torch()
            return scale * torch.randn(shape, generator=self._gen, device=self.backend.device,
                                       dtype=getattr(torch, dtype))
        return self._out(scale * self._np.standard_normal(shape), dtype)

    def uniform(self, shape, low: float = 0.0, high: float = 1.0, dtype: str = DEFAULT_DTYPE):
        """Uniform samples on [low, high)."""
        shape = self._shape(shape)
        if self.native:
            torch = _torch()
            u = torch.rand(shape, generator=self._gen, device=self.backend.device, dtype=getattr(torch, dtype))
            return low + (high - low) * u
        return self._out(self._np.uniform(low, high, shape), dtype)

    def integers(self, low: int, high: int, shape):
        """Integers in [low, high) as an int64 array of the backend."""
        if self.native:
            torch = _torch()
            return torch.randint(low, high, tuple(np.atleast_1d(shape)) if not isinstance(shape, tuple) else shape,
                                 generator=self._gen, device=self.backend.device)
        return self._out(self._np.integers(low, high, shape), "int64")

    def permutation(self, n: int):
        """A random permutation of range(n) (int64)."""
        if self.native:
            torch = _torch()
            return torch.randperm(n, generator=self._gen, device=self.backend.device)
        return self._out(self._np.permutation(n), "int64")

    def choice(self, n: int, size: int, replace: bool = True):
        """``size`` indices from range(n), with or without replacement (int64)."""
        if not replace and size > n:
            from .validation import CourseError

            raise CourseError(f"Cannot draw size={size} indices without replacement from n={n}; "
                             "use replace=True or a smaller size.")
        if self.native:
            return self.integers(0, n, (size,)) if replace else self.permutation(n)[:size]
        return self._out(self._np.choice(n, size=size, replace=replace), "int64")

    def spawn(self, k: int) -> "list[RNG]":
        """``k`` independent child generators (NumPy's SeedSequence spawning)."""
        seqs = np.random.SeedSequence(self.seed).spawn(k)
        return [RNG(int(s.generate_state(1)[0]), self.backend, self.native) for s in seqs]

    def __repr__(self) -> str:
        return f"RNG(seed={self.seed}, backend={str(self.backend)!r}, native={self.native})"


def hvp_autograd(f, x, v):
    """Hessian-vector product nabla^2 f(x) v by double backprop (torch tensors only).

    Computes g(x) = grad f(x) with ``create_graph=True`` and then grad of <g(x), v>, which is
    exactly H(x) v (Pearlmutter, "Fast exact multiplication by the Hessian", 1994) at the cost of
    about two gradients. On NumPy, Hessian-vector products come from a problem's ``hvp`` or from
    finite differences of gradients instead (course_lib.nonconvex.hvp).

    Args:
        f: callable taking a 1-D tensor to a scalar tensor (written with torch operations).
        x: the point, a 1-D floating torch tensor. v: the direction, same shape as x.
    Returns:
        H(x) v as a detached tensor shaped like x.
    """
    torch = _torch()
    if not (is_torch(x) and is_torch(v)):
        raise TypeError("hvp_autograd needs torch tensors x and v (autograd); on NumPy use the problem's hvp "
                        "or finite differences of gradients (course_lib.nonconvex.hvp).")
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(f(x), x, create_graph=True)
        if not g.requires_grad:  # f is affine in x: its Hessian is zero
            return torch.zeros_like(x).detach()
        (hv,) = torch.autograd.grad(g, x, grad_outputs=v, allow_unused=True)
    return torch.zeros_like(x).detach() if hv is None else hv.detach()
