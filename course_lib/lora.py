"""Low-rank adaptation (LoRA) from its definition, and the other parameter-efficient fine-tuning modes.

LoRA (Hu et al., ICLR 2022) freezes a pretrained linear map W (out x in) and learns a rank-r update:

    h = W x + b + (alpha / r) B A x,      A in R^{r x in} (Kaiming-uniform init), B in R^{out x r} (zeros),

so the adapted model equals the pretrained one at initialisation, and only r (in + out) numbers per layer are
trained. Merging for deployment replaces W by W + (alpha / r) B A: the merged linear layer gives the same outputs
with no extra latency. ``tests/test_lora.py`` checks outputs and gradients against ``peft``'s LoRA on the same
weights, and the merged model against the adapted one.

:func:`set_trainable` gives the baselines of the LoRA kit: full fine-tuning, linear probing (head only) and
bias-only tuning (BitFit, Ben Zaken et al., ACL 2022).
"""
from __future__ import annotations

import math

from .validation import CourseError, check_int, check_positive

__all__ = ["LoRALinear", "apply_lora", "merge_lora", "set_trainable", "count_trainable", "lora_parameter_count",
           "peft_lora",
           "MODES"]

MODES = ("full", "linear_probe", "bias_only", "lora")


def _torch():
    import torch

    return torch


def _lora_linear_class():
    torch = _torch()

    class LoRALinear(torch.nn.Module):
        """A frozen ``nn.Linear`` plus its low-rank update: y = W x + b + (alpha / r) B A x.

        Args:
            base: the pretrained linear layer (its weight and bias are frozen).
            r: rank (>= 1). alpha: scaling numerator (the update is scaled by alpha / r).
            seed: seed of A's Kaiming-uniform initialisation (B starts at zero).
        """

        def __init__(self, base, r: int = 8, alpha: float = 16.0, seed: int = 0):
            super().__init__()
            self.base = base
            self.r = check_int(r, "r", 1)
            self.alpha = check_positive(alpha, "alpha")
            self.scaling = self.alpha / self.r
            for p in base.parameters():
                p.requires_grad_(False)
            w = base.weight
            self.A = torch.nn.Parameter(torch.empty(self.r, base.in_features, dtype=w.dtype, device=w.device))
            self.B = torch.nn.Parameter(torch.zeros(base.out_features, self.r, dtype=w.dtype, device=w.device))
            gen = torch.Generator(device="cpu").manual_seed(int(seed))
            # kaiming_uniform_(a=sqrt(5)) on an (r, in) matrix: bound = 1 / sqrt(in)
            bound = 1.0 / math.sqrt(base.in_features)
            with torch.no_grad():
                self.A.copy_(torch.rand(self.A.shape, generator=gen, dtype=w.dtype) * 2 * bound - bound)

        def forward(self, x):
            return self.base(x) + self.scaling * ((x @ self.A.T) @ self.B.T)

        def delta_weight(self):
            """The update (alpha / r) B A, shape (out, in)."""
            return self.scaling * (self.B @ self.A)

        def merged(self):
            """A plain ``nn.Linear`` with weight W + (alpha / r) B A (same outputs, no adapter)."""
            out = torch.nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None,
                                  dtype=self.base.weight.dtype, device=self.base.weight.device)
            with torch.no_grad():
                out.weight.copy_(self.base.weight + self.delta_weight())
                if self.base.bias is not None:
                    out.bias.copy_(self.base.bias)
            return out

    return LoRALinear


def LoRALinear(base, r: int = 8, alpha: float = 16.0, seed: int = 0):
    """Wrap ``base`` (an ``nn.Linear``) in a LoRA layer; see the class docstring for the update."""
    return _lora_linear_class()(base, r=r, alpha=alpha, seed=seed)


def _matches(name: str, targets) -> bool:
    return any(name == t or name.endswith("." + t) for t in targets)


def apply_lora(model, r: int = 8, alpha: float = 16.0, target_modules=("query", "value"), seed: int = 0,
               train_modules=("head",)):
    """Replace every ``nn.Linear`` whose name ends with one of ``target_modules`` by a :func:`LoRALinear`, in place.

    Everything else is frozen except the modules named in ``train_modules`` (the new classification head).

    Args:
        model: a ``torch.nn.Module``. r, alpha: LoRA rank and scale. target_modules: module-name suffixes, e.g.
            ("query", "value") for BERT attention, or ("query", "key", "value", "dense").
        seed: seed of the A matrices (layer i gets seed + i). train_modules: module names kept trainable.
    Returns:
        The list of qualified names that were adapted.
    Raises:
        CourseError: no linear layer matched ``target_modules``.
    """
    torch = _torch()
    targets = tuple(target_modules)
    for p in model.parameters():
        p.requires_grad_(False)
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and _matches(n, targets)
             and not _matches(n, tuple(train_modules))]
    if not names:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
        raise CourseError(f"target_modules={targets!r} matches no linear layer; the model's linear layers end with: "
                          f"{', '.join(linear)}.")
    for i, name in enumerate(names):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), r=r, alpha=alpha, seed=seed + i))
    for name in train_modules:
        for p in model.get_submodule(name).parameters():
            p.requires_grad_(True)
    return names


def merge_lora(model):
    """Replace every LoRA layer of ``model`` by its merged ``nn.Linear`` (W + (alpha/r) B A), in place; returns it."""
    cls = _lora_linear_class()
    for name, module in list(model.named_modules()):
        if type(module).__name__ == cls.__name__ and hasattr(module, "merged"):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.merged())
    return model


def set_trainable(model, mode: str, head: str = "head", **lora_kwargs):
    """Configure which parameters train: one of ``MODES``.

    * "full": every parameter. * "linear_probe": the head only (the encoder is a frozen feature map).
    * "bias_only": every bias plus the head (BitFit). * "lora": :func:`apply_lora` with ``lora_kwargs``.

    Returns:
        The number of trainable parameters.
    """
    if mode not in MODES:
        raise CourseError(f"Unknown fine-tuning mode {mode!r}; choose one of: {', '.join(MODES)}.")
    if mode == "lora":
        apply_lora(model, train_modules=(head,), **lora_kwargs)
        return count_trainable(model)
    for name, p in model.named_parameters():
        p.requires_grad_(mode == "full" or name.startswith(head + ".") or (mode == "bias_only" and
                                                                           name.endswith("bias")))
    return count_trainable(model)


def lora_parameter_count(model, r: int, target_modules=("query", "value"), train_modules=("head",)) -> int:
    """Trainable parameters :func:`apply_lora` would leave, without changing ``model``: r (in + out) per adapted
    linear layer, plus the parameters of ``train_modules``."""
    torch = _torch()
    r = check_int(r, "r", 1)
    targets, keep = tuple(target_modules), tuple(train_modules)
    n = sum(r * (m.in_features + m.out_features) for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and _matches(name, targets) and not _matches(name, keep))
    return int(n + sum(p.numel() for name in keep for p in model.get_submodule(name).parameters()))


def count_trainable(model) -> int:
    """The number of parameters with ``requires_grad``."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def peft_lora(model, r: int = 8, alpha: float = 16.0, target_modules=("query", "value"), head: str = "head"):
    """The same adapter by the ``peft`` library (LoraConfig, no dropout, head trained via modules_to_save)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=check_int(r, "r", 1), lora_alpha=alpha, target_modules=list(target_modules),
                        lora_dropout=0.0, bias="none", modules_to_save=[head])
    return get_peft_model(model, config)
