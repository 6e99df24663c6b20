"""Gradient compression: pure operators, error feedback, and DDP communication hooks that count bytes.

Operators act on a 1-D tensor ``x`` of length d and return a :class:`Message`: the tensors that go on the
wire (``payload``), their size in bytes, and the decompressed vector C(x) (``dense``).

* ``top_k(x, k)``: keep the k entries of largest magnitude (values + int32 indices: k (b + 4) bytes,
  b = bytes per value). Biased, a contraction: ||x - C(x)||^2 <= (1 - k/d) ||x||^2
  (Stich, Cordonnier & Jaggi, NeurIPS 2018, Lemma A.1).
* ``random_k(x, k, generator)``: k coordinates chosen uniformly without replacement, scaled by d/k, so that
  E C(x) = x; the indices come from a generator seeded alike on every worker, so only the k values are sent.
* ``scaled_sign(x)``: (||x||_1 / d) sign(x): 1 bit per entry + one scale. Biased; exactly
  ||x - C(x)||^2 = (1 - ||x||_1^2 / (d ||x||_2^2)) ||x||^2 (Karimireddy et al., ICML 2019, Lemma 8).
* ``qsgd(x, levels, generator)``: stochastic quantisation to s = ``levels`` levels of |x_i| / ||x||
  (Alistarh et al., NeurIPS 2017): unbiased, E ||C(x) - x||^2 <= min(d / s^2, sqrt(d) / s) ||x||^2 (Lemma 3.1);
  sent as int8 levels with signs + the norm.

Error feedback (Seide et al. 2014; Stich et al. 2018; Karimireddy et al. 2019) compresses the gradient plus the
residual of earlier steps:  p = g + e,  m = C(p),  e <- p - m.  So ``m + e_new == g + e`` at every step and, summed
over steps, what was sent plus the final residual equals the accumulated gradient: nothing is lost, only delayed.

Hooks: :func:`make_hook` returns ``(state, hook)`` for ``DistributedDataParallel.register_comm_hook``; the state's
``bytes_sent`` counts this worker's payload bytes. Besides the operators above it wraps torch's own hooks
(allreduce, fp16, bf16 and PowerSGD, Vogels et al., NeurIPS 2019), counting their bytes too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..validation import CourseError, check_int

__all__ = ["Message", "top_k", "random_k", "scaled_sign", "qsgd", "decode", "error_feedback", "HookState",
           "make_hook", "HOOKS"]


@dataclass
class Message:
    """A compressed vector: what is sent (``payload``), its size, and its decompression C(x).

    Attributes:
        dense: C(x), a tensor like x.
        payload: the tensors sent over the network.
        kind: the operator's name (decides how :func:`decode` reads the payload).
        d: the length of x.
        meta: shared data that is not sent (random-k's indices, derived from a shared seed; QSGD's levels).
    """

    dense: object
    payload: tuple
    kind: str
    d: int
    meta: dict = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes of the payload."""
        return int(sum(t.numel() * t.element_size() for t in self.payload))


def _check_x(x):
    if getattr(x, "ndim", None) != 1:
        raise CourseError(f"x must be a 1-D tensor, got shape {tuple(getattr(x, 'shape', ()))}; flatten it first.")
    return x


def _check_k(k, d):
    k = check_int(k, "k", 1)
    if k > d:
        raise CourseError(f"k must be at most d = {d}, got k={k}.")
    return k


def top_k(x, k: int) -> Message:
    """C(x) keeps the k entries of largest |x_i| and zeroes the others.

    Args:
        x: 1-D tensor of length d.
        k: how many entries to keep (1 <= k <= d).
    Returns:
        a Message with payload (values, int32 indices).
    """
    import torch

    d = _check_x(x).numel()
    idx = torch.topk(x.abs(), _check_k(k, d), sorted=False).indices
    dense = torch.zeros_like(x)
    dense[idx] = x[idx]
    return Message(dense, (x[idx].clone(), idx.to(torch.int32)), "top_k", d)


def random_k(x, k: int, generator) -> Message:
    """C(x) = (d/k) x_S on a uniformly random set S of k coordinates (drawn from ``generator``); E C(x) = x.

    Args:
        x: 1-D tensor of length d.
        k: how many coordinates to send.
        generator: a seeded ``torch.Generator``; seeded alike on every worker, all choose the same S.
    Returns:
        a Message with payload (the k scaled values,); the indices are in ``meta`` (not sent).
    """
    import torch

    d = _check_x(x).numel()
    k = _check_k(k, d)
    idx = torch.randperm(d, generator=generator)[:k].to(x.device)
    vals = x[idx] * (d / k)
    dense = torch.zeros_like(x)
    dense[idx] = vals
    return Message(dense, (vals,), "random_k", d, {"indices": idx})


_POW2 = (128, 64, 32, 16, 8, 4, 2, 1)


def scaled_sign(x) -> Message:
    """C(x) = (||x||_1 / d) sign(x), with sign(0) = +1; sent as d packed bits and one scale.

    Args:
        x: 1-D tensor of length d.
    Returns:
        a Message with payload (uint8 packed sign bits, the scale as a 1-element tensor).
    """
    import torch

    d = _check_x(x).numel()
    scale = x.abs().sum() / d
    bits = (x >= 0).to(torch.uint8)
    padded = torch.cat([bits, bits.new_zeros((-d) % 8)]).view(-1, 8)
    packed = (padded * torch.tensor(_POW2, dtype=torch.uint8, device=x.device)).sum(1).to(torch.uint8)
    dense = torch.where(x >= 0, scale, -scale)
    return Message(dense, (packed, scale.reshape(1)), "scaled_sign", d)


def qsgd(x, levels: int, generator) -> Message:
    """Stochastic quantisation: C(x)_i = ||x|| sign(x_i) l_i / s, with l_i = floor(s |x_i|/||x||) + Bernoulli(frac).

    Args:
        x: 1-D tensor of length d.
        levels: s, the number of levels (1 <= s <= 127, sent as int8).
        generator: a seeded ``torch.Generator`` for the rounding.
    Returns:
        a Message with payload (int8 signed levels, the norm as a 1-element tensor); E C(x) = x.
    """
    import torch

    d = _check_x(x).numel()
    s = check_int(levels, "levels", 1)
    if s > 127:
        raise CourseError(f"levels must be at most 127 (int8 on the wire), got {levels}.")
    norm = torch.linalg.vector_norm(x)
    if float(norm) == 0.0:
        q = torch.zeros(d, dtype=torch.int8, device=x.device)
    else:
        r = x.abs() / norm * s
        low = torch.floor(r)
        u = torch.rand(d, generator=generator, dtype=x.dtype).to(x.device)
        q = ((low + (u < r - low).to(x.dtype)) * torch.sign(x)).to(torch.int8)
    dense = norm * q.to(x.dtype) / s
    return Message(dense, (q, norm.reshape(1)), "qsgd", d, {"levels": s})


def decode(kind: str, payload, like: Message):
    """The dense vector a receiver rebuilds from another worker's ``payload`` (``like``: the local Message)."""
    import torch

    ref = like.dense
    if kind == "top_k":
        vals, idx = payload
        return torch.zeros_like(ref).index_add_(0, idx.long(), vals)
    if kind == "random_k":
        out = torch.zeros_like(ref)
        out[like.meta["indices"]] = payload[0]
        return out
    if kind == "scaled_sign":
        packed, scale = payload
        bits = (packed.unsqueeze(1) & torch.tensor(_POW2, dtype=torch.uint8, device=ref.device)).ne(0)
        bits = bits.reshape(-1)[:like.d]
        return torch.where(bits, scale[0], -scale[0]).to(ref.dtype)
    if kind == "qsgd":
        q, norm = payload
        return norm[0] * q.to(ref.dtype) / like.meta["levels"]
    raise CourseError(f"unknown message kind {kind!r}.")


def error_feedback(compress, grad, residual, **options):
    """One step of error feedback:  p = grad + residual,  m = C(p),  residual <- p - m.

    Args:
        compress: an operator of this module (``top_k``, ``random_k``, ``scaled_sign``, ``qsgd``).
        grad: this step's gradient (1-D tensor).
        residual: the residual e carried from earlier steps (zeros at the start).
        **options: the operator's arguments (``k``, ``levels``, ``generator``).
    Returns:
        (message, new_residual), with message.dense + new_residual == grad + residual.
    """
    p = grad + residual
    msg = compress(p, **options)
    return msg, p - msg.dense


# -- DDP communication hooks -----------------------------------------------------------------------
class HookState:
    """State of a counted communication hook.

    Attributes:
        name: the hook's name; process_group: the group it reduces over (None: the default group).
        bytes_sent: payload bytes this worker has sent so far; calls: buckets communicated.
        options: the operator's arguments; error_feedback: whether residuals are kept.
        residuals: the error-feedback residual of each parameter (keyed by ``id(parameter)``); see
            :meth:`residual`.
    """

    def __init__(self, name, process_group=None, error_feedback=False, seed=0, inner=None, **options):
        import torch

        self.name, self.process_group, self.error_feedback = name, process_group, bool(error_feedback)
        self.options, self.inner = options, inner
        self.bytes_sent, self.calls = 0, 0
        self.residuals: dict = {}
        self.generator = torch.Generator().manual_seed(int(seed))


    def residual(self, params):
        """This worker's error-feedback residual for ``params``, concatenated in their order (zeros if none yet)."""
        import torch

        return torch.cat([self.residuals[id(p)] if id(p) in self.residuals else torch.zeros_like(p).reshape(-1)
                          for p in params])


def _done(tensor):
    import torch

    fut = torch.futures.Future()
    fut.set_result(tensor)
    return fut


def _compressed_hook(operator):
    def hook(state: HookState, bucket):
        import torch
        import torch.distributed as dist

        g = bucket.buffer()
        group = state.process_group
        ws = dist.get_world_size(group)
        opts = dict(state.options)
        if operator in (random_k, qsgd):
            opts["generator"] = state.generator
        if state.error_feedback:
            # residuals are kept per parameter: DDP may rebuild (reorder) its buckets after the first step
            params = bucket.parameters()
            e = torch.cat([state.residuals.get(id(p), torch.zeros(p.numel(), dtype=g.dtype, device=g.device))
                           for p in params])
            msg, e = error_feedback(operator, g, e, **opts)
            for p, chunk in zip(params, torch.split(e, [p.numel() for p in params])):
                state.residuals[id(p)] = chunk
        else:
            msg = operator(g, **opts)
        gathered = []
        for t in msg.payload:
            parts = [torch.empty_like(t) for _ in range(ws)]
            dist.all_gather(parts, t.contiguous(), group=group)
            gathered.append(parts)
        total = sum(decode(msg.kind, [parts[r] for parts in gathered], msg) for r in range(ws))
        state.bytes_sent += msg.nbytes
        state.calls += 1
        return _done(total / ws)

    hook.__name__ = f"{operator.__name__}_hook"
    return hook


def _torch_hook(which):
    def hook(state: HookState, bucket):
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks, powerSGD_hook

        buf = bucket.buffer()
        state.calls += 1
        if which == "powersgd":
            inner = state.inner
            before, vanilla = inner.total_numel_after_compression, inner.iter < inner.start_powerSGD_iter
            fut = powerSGD_hook.powerSGD_hook(inner, bucket)
            n = buf.numel() if vanilla else inner.total_numel_after_compression - before
            state.bytes_sent += n * buf.element_size()
            return fut
        if which == "allreduce":
            state.bytes_sent += buf.numel() * buf.element_size()
            return default_hooks.allreduce_hook(state.process_group, bucket)
        state.bytes_sent += buf.numel() * 2
        fn = default_hooks.fp16_compress_hook if which == "fp16" else default_hooks.bf16_compress_hook
        return fn(state.process_group, bucket)

    hook.__name__ = f"{which}_hook"
    return hook


HOOKS = ("allreduce", "fp16", "bf16", "powersgd", "top_k", "random_k", "scaled_sign", "qsgd")


def make_hook(name: str, process_group=None, error_feedback: bool = False, seed: int = 0, **options):
    """A counted DDP communication hook and its state: ``ddp_model.register_comm_hook(state, hook)``.

    Args:
        name: one of "allreduce", "fp16", "bf16", "powersgd" (torch's hooks) or "top_k", "random_k",
            "scaled_sign", "qsgd" (this module's operators, exchanged with all_gather and averaged).
        process_group: the group to reduce over (None: the default group).
        error_feedback: keep per-bucket residuals (this module's operators; PowerSGD has its own, on by default).
        seed: seed of the random operators' generator (the same on every rank).
        **options: ``k`` (top_k, random_k), ``levels`` (qsgd), ``rank`` and ``start_iter`` (powersgd).
    Returns:
        (state, hook); ``state.bytes_sent`` is this worker's payload bytes so far.
    """
    if name not in HOOKS:
        raise CourseError(f"hook must be one of {', '.join(HOOKS)}; got {name!r}.")
    if name == "powersgd":
        from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook

        inner = powerSGD_hook.PowerSGDState(process_group=process_group,
                                            matrix_approximation_rank=check_int(options.get("rank", 1), "rank", 1),
                                            start_powerSGD_iter=check_int(options.get("start_iter", 2), "start_iter", 2),
                                            min_compression_rate=options.get("min_compression_rate", 2),
                                            random_seed=int(seed))
        return HookState(name, process_group, inner=inner), _torch_hook(name)
    if name in ("allreduce", "fp16", "bf16"):
        return HookState(name, process_group), _torch_hook(name)
    operator = {"top_k": top_k, "random_k": random_k, "scaled_sign": scaled_sign, "qsgd": qsgd}[name]
    need = {"top_k": ("k",), "random_k": ("k",), "qsgd": ("levels",), "scaled_sign": ()}[name]
    missing = [o for o in need if o not in options]
    if missing:
        raise CourseError(f"the {name} hook needs {', '.join(missing)}=...; e.g. make_hook({name!r}, "
                          + ", ".join(f"{o}=10" for o in need) + ").")
    return HookState(name, process_group, error_feedback, seed, **options), _compressed_hook(operator)


def compression_ratio(d: int, nbytes: int, element_size: int = 8) -> float:
    """How many times fewer bytes than sending the d values uncompressed."""
    return d * element_size / max(1, nbytes) if nbytes else math.inf
