"""A tiny causal transformer for character-level language modelling (nanoGPT-shaped, a few thousand weights).

``CharTransformer(vocab_size, block_size, d_model, n_heads, n_layers)``: token + position
embeddings, ``n_layers`` pre-norm blocks (causal multi-head self-attention with separate
``q_proj``/``k_proj``/``v_proj``/``out_proj``, then a 4x GELU MLP), a final LayerNorm and a linear
``lm_head``; logits of shape (batch, time, vocab). The parameter names follow the conventions that
Adam-mini's partition reads (:func:`course_lib.adam_variants.adam_mini_blocks`): ``*embed*``,
``q_proj``/``k_proj``, ``*norm*``, ``lm_head``.

:func:`char_data` turns a text (e.g. :func:`course_lib.datasets.shakespeare_text`) into
non-overlapping (input, next-character target) windows, split train / validation / test by
position in the text, so no window leaks across splits.

Attention is causal: the output at position t depends only on tokens 0..t (tests/test_char_transformer.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .validation import CourseError, check_in_range, check_int

__all__ = ["CharTransformer", "Block", "CharData", "char_data", "lm_loss", "tag_parameter_names"]


def lm_loss(logits, targets):
    """Mean next-character cross-entropy in nats: logits (B, T, V), targets (B, T)."""
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def tag_parameter_names(model) -> None:
    """Store each parameter's name on it (``p.param_name``), so an optimizer built from
    ``model.parameters()`` alone can still partition by name (Adam-mini)."""
    for name, p in model.named_parameters():
        p.param_name = name


class Block(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then x + MLP(norm(x)); causal multi-head attention."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.attn_norm, self.mlp_norm = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.q_proj, self.k_proj = nn.Linear(d_model, d_model, bias=False), nn.Linear(d_model, d_model, bias=False)
        self.v_proj, self.out_proj = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.fc, self.proj = nn.Linear(d_model, 4 * d_model), nn.Linear(4 * d_model, d_model)

    def forward(self, x):
        B, T, C = x.shape
        h = self.attn_norm(x)

        def heads(z):
            return z.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)
        att = nn.functional.scaled_dot_product_attention(heads(self.q_proj(h)), heads(self.k_proj(h)),
                                                         heads(self.v_proj(h)), is_causal=True)
        x = x + self.out_proj(att.transpose(1, 2).reshape(B, T, C))
        return x + self.proj(nn.functional.gelu(self.fc(self.mlp_norm(x))))


class CharTransformer(nn.Module):
    """Token + position embeddings, ``n_layers`` causal blocks, final LayerNorm, linear head.

    Args:
        vocab_size: number of characters. block_size: longest context. d_model: width (divisible
        by n_heads). n_heads, n_layers: as named. seed: weight seed (GPT-2's init: N(0, 0.02) for
        matrices, zero biases, unit norms). dtype: "float32" or "float64".
    """

    def __init__(self, vocab_size: int, block_size: int = 32, d_model: int = 32, n_heads: int = 2,
                 n_layers: int = 1, seed: int = 0, dtype: str = "float32"):
        super().__init__()
        self.vocab_size, self.block_size = check_int(vocab_size, "vocab_size", 2), check_int(block_size, "block_size", 1)
        self.d_model, self.n_heads = check_int(d_model, "d_model", 1), check_int(n_heads, "n_heads", 1)
        if self.d_model % self.n_heads:
            raise CourseError(f"d_model={d_model} must be divisible by n_heads={n_heads}.")
        self.tok_embed = nn.Embedding(self.vocab_size, self.d_model)
        self.pos_embed = nn.Embedding(self.block_size, self.d_model)
        self.blocks = nn.ModuleList(Block(self.d_model, self.n_heads)
                                    for _ in range(check_int(n_layers, "n_layers", 1)))
        self.ln_f = nn.LayerNorm(self.d_model)
        self.lm_head = nn.Linear(self.d_model, self.vocab_size, bias=False)
        self.to(getattr(torch, dtype))
        gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.ndim > 1:
                    p.copy_(0.02 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
                elif "norm" in name or "ln_f" in name:
                    p.fill_(1.0 if name.endswith("weight") else 0.0)
                else:
                    p.zero_()
        tag_parameter_names(self)

    def forward(self, idx):
        T = idx.shape[1]
        if T > self.block_size:
            raise CourseError(f"sequence length {T} exceeds block_size={self.block_size}.")
        x = self.tok_embed(idx) + self.pos_embed(torch.arange(T, device=idx.device))
        for blk in self.blocks:
            x = blk(x)
        return self.lm_head(self.ln_f(x))


@dataclass
class CharData:
    """Character windows: ``train``/``val``/``test`` are (inputs, targets) int64 tensors of shape (n, block_size);
    ``vocab`` the sorted characters (index = token id)."""

    train: tuple
    val: tuple
    test: tuple
    vocab: str

    def decode(self, ids) -> str:
        return "".join(self.vocab[int(i)] for i in ids)


def char_data(text: str, block_size: int = 32, val_fraction: float = 0.1, test_fraction: float = 0.1,
              max_chars: int | None = None) -> CharData:
    """Split ``text`` by position (train | val | test) and cut each part into non-overlapping windows.

    Args:
        text: the corpus. block_size: window length T. val_fraction, test_fraction: shares of the
        text (taken from its end). max_chars: use only the first this many characters.
    Returns:
        A :class:`CharData`; targets are inputs shifted by one character.
    """
    if not isinstance(text, str) or len(text) < 10:
        raise CourseError("text must be a string of at least 10 characters, e.g. course_lib.datasets."
                          "shakespeare_text('tempest').")
    if max_chars is not None:
        text = text[:check_int(max_chars, "max_chars", 10)]
    T = check_int(block_size, "block_size", 1)
    val_fraction = check_in_range(val_fraction, "val_fraction", 0.0, 0.5, low_open=True)
    test_fraction = check_in_range(test_fraction, "test_fraction", 0.0, 0.5, low_open=True)
    vocab = "".join(sorted(set(text)))
    index = {c: i for i, c in enumerate(vocab)}
    ids = np.array([index[c] for c in text], dtype=np.int64)
    n = len(ids)
    a, b = int(n * (1 - val_fraction - test_fraction)), int(n * (1 - test_fraction))

    def windows(part):
        m = (len(part) - 1) // T
        if m < 1:
            raise CourseError(f"a split of {len(part)} characters is too short for block_size={T}; use more text "
                              "(max_chars) or a smaller block_size.")
        x = part[: m * T].reshape(m, T)
        y = part[1: m * T + 1].reshape(m, T)
        return torch.as_tensor(x), torch.as_tensor(y)

    return CharData(windows(ids[:a]), windows(ids[a:b]), windows(ids[b:]), vocab)
