"""The wire format between the trusted grader and the sandboxed student process: plain data only.

Messages are length-prefixed JSON. Values are encoded as JSON with tagged forms for tuples,
dicts, non-finite floats and arrays (raw bytes in base64 with a numeric dtype and a shape).
There is no pickle anywhere: :func:`decode` on the trusted side can only ever produce None,
bools, ints, floats, complex numbers, strings, lists, tuples, dicts and NumPy arrays of numeric
dtype, so nothing the student's code returns can run code or lie in a comparison
(``__eq__``, ``__lt__``, ``__array__`` ...) once it has crossed.

Only the trusted side may send references to importable functions and course_lib objects
(``allow_refs=True`` when decoding in the sandbox): a test can pass ``problem.grad`` or
``np.sin`` to a student function.
"""
from __future__ import annotations

import base64
import dataclasses
import importlib
import json
import math
import os
import select
import struct
import time

import numpy as np

MAX_MESSAGE = 256 * 1024 * 1024  # bytes; a bigger reply is refused
_NUMERIC_KINDS = "biufc"
__all__ = ["encode", "decode", "send", "recv", "ProtocolError", "MAX_MESSAGE"]


class ProtocolError(RuntimeError):
    """A malformed, oversized or unexpected message."""


def _is_torch(x) -> bool:
    mod = type(x).__module__
    return mod.startswith("torch") and type(x).__name__ in ("Tensor", "Parameter")


def _enc_array(arr: np.ndarray, torch: bool = False) -> dict:
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(f"arrays of dtype {arr.dtype} cannot be sent; use numbers")
    arr = np.ascontiguousarray(arr)
    out = {"__ndarray__": base64.b64encode(arr.tobytes()).decode("ascii"), "dtype": arr.dtype.str,
           "shape": list(arr.shape)}
    if torch:
        out["torch"] = True
    return out


def encode(value, _depth: int = 0, allow_refs: bool = False):
    """Encode a value as JSON-able plain data (raises TypeError for anything else).

    Args:
        value: numbers, strings, None, lists/tuples/dicts, NumPy arrays and scalars, torch tensors,
            dataclass instances (sent as dicts); with ``allow_refs`` also importable functions,
            bound methods and course_lib objects.
    """
    if _depth > 50:
        raise TypeError("value is nested too deeply")
    d = _depth + 1
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else {"__float__": repr(v)}
    if isinstance(value, (complex, np.complexfloating)):
        return {"__complex__": [encode(value.real, d), encode(value.imag, d)]}
    if isinstance(value, np.ndarray):
        return _enc_array(value)
    if _is_torch(value):
        return _enc_array(value.detach().cpu().numpy(), torch=True)
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, d, allow_refs) for v in value]}
    if isinstance(value, list):
        return [encode(v, d, allow_refs) for v in value]
    if isinstance(value, dict):
        return {"__dict__": [[encode(k, d), encode(v, d, allow_refs)] for k, v in value.items()]}
    if allow_refs and type(value).__module__.startswith("course_lib."):
        return _encode_ref(value, d)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__dict__": [[f.name, encode(getattr(value, f.name), d, allow_refs)]
                             for f in dataclasses.fields(value)]}
    if allow_refs:
        return _encode_ref(value, d)
    raise TypeError(
        f"a value of type {type(value).__module__}.{type(value).__qualname__} cannot be graded; "
        "return numbers, NumPy arrays (or torch tensors), or tuples/lists/dicts of those"
    )


def _encode_ref(value, depth):
    import inspect

    if inspect.ismethod(value):
        return {"__method__": _encode_ref(value.__self__, depth), "name": value.__name__}
    if callable(value) and hasattr(value, "__module__") and hasattr(value, "__qualname__") and \
            not isinstance(value, type) and "<" not in value.__qualname__:
        module = value.__module__ or ""
        if module in ("__main__", "builtins") or module.startswith("test_") or module.startswith("__"):
            if module != "builtins":
                raise TypeError(f"function {value.__qualname__} is defined in the test itself; pass a "
                                "function importable from a module (e.g. course_lib, numpy)")
        return {"__callable__": f"{module}:{value.__qualname__}"}
    if isinstance(value, np.ufunc):
        return {"__callable__": f"numpy:{value.__name__}"}
    cls = type(value)
    if cls.__module__.startswith("course_lib.") and hasattr(value, "__dict__"):
        state = {k: v for k, v in vars(value).items()}
        return {"__object__": f"{cls.__module__}:{cls.__qualname__}",
                "state": encode(state, depth, allow_refs=True)}
    raise TypeError(f"cannot send {cls.__qualname__} to a student function: pass plain data, arrays, "
                    "course_lib objects or importable functions (no lambdas or closures)")


def _import(path: str):
    module, _, qual = path.partition(":")
    obj = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


def _dec_array(obj: dict) -> np.ndarray:
    dtype = np.dtype(obj["dtype"])
    if dtype.kind not in _NUMERIC_KINDS or dtype.hasobject:
        raise ProtocolError(f"refused array dtype {obj['dtype']!r}")
    shape = tuple(int(s) for s in obj["shape"])
    if any(s < 0 for s in shape):
        raise ProtocolError("negative array dimension")
    raw = base64.b64decode(obj["__ndarray__"], validate=True)
    if len(raw) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise ProtocolError("array bytes do not match its shape")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def decode(obj, allow_refs: bool = False, _depth: int = 0):
    """Decode :func:`encode`'s output into plain Python/NumPy values (torch tensors where sent, in the sandbox)."""
    if _depth > 60:
        raise ProtocolError("message nested too deeply")
    d = _depth + 1
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, list):
        return [decode(v, allow_refs, d) for v in obj]
    if not isinstance(obj, dict):
        raise ProtocolError(f"unexpected JSON value of type {type(obj).__name__}")
    if "__ndarray__" in obj:
        arr = _dec_array(obj)
        if obj.get("torch") and allow_refs:
            import torch

            return torch.from_numpy(arr)
        return arr
    if "__float__" in obj:
        text = obj["__float__"]
        if text not in ("nan", "inf", "-inf"):
            raise ProtocolError(f"bad float {text!r}")
        return float(text)
    if "__complex__" in obj:
        re, im = obj["__complex__"]
        return complex(float(decode(re, False, d)), float(decode(im, False, d)))
    if "__tuple__" in obj:
        return tuple(decode(v, allow_refs, d) for v in obj["__tuple__"])
    if "__dict__" in obj:
        out = {}
        for k, v in obj["__dict__"]:
            key = decode(k, False, d)
            if not isinstance(key, (str, int, float, bool, tuple)) and key is not None:
                raise ProtocolError("unhashable dict key")
            out[key] = decode(v, allow_refs, d)
        return out
    if allow_refs:
        if "__callable__" in obj:
            return _import(obj["__callable__"])
        if "__method__" in obj:
            return getattr(decode(obj["__method__"], True, d), obj["name"])
        if "__object__" in obj:
            cls = _import(obj["__object__"])
            inst = cls.__new__(cls)
            inst.__dict__.update(decode(obj["state"], True, d))
            return inst
    raise ProtocolError(f"unexpected tagged value with keys {sorted(obj)[:4]}")


def send(fd: int, message: dict) -> None:
    """Write one length-prefixed JSON message to a file descriptor."""
    data = json.dumps(message, allow_nan=False).encode("utf-8")
    payload = struct.pack(">Q", len(data)) + data
    view = memoryview(payload)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int, deadline: float | None = None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the connection")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv(fd: int, deadline: float | None = None) -> dict:
    """Read one length-prefixed JSON message (refusing oversized ones).

    Args:
        fd: the file descriptor to read from.
        deadline: a ``time.monotonic()`` time by which the whole message must have arrived (None: wait).
    Raises:
        TimeoutError: the deadline passed first. EOFError: the other side closed the connection.
        ProtocolError, ValueError: oversized, not JSON, or not a JSON object.
    """
    (n,) = struct.unpack(">Q", _read_exact(fd, 8, deadline))
    if n > MAX_MESSAGE:
        raise ProtocolError(f"message of {n} bytes is larger than the limit of {MAX_MESSAGE}")
    msg = json.loads(_read_exact(fd, n, deadline).decode("utf-8"))
    if not isinstance(msg, dict):
        raise ProtocolError("a message must be a JSON object")
    return msg
