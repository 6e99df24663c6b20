"""Workload factories and optimizer factories of the Adam-variants and SAM-variants project kits.

Workloads (``[[workload]] factory = "course_lib.kit_workloads:NAME"``), each a
:class:`course_lib.experiments.TorchWorkload` on data shipped in installed packages, with the
metric and target its kit's studies use for time-to-target:

* :func:`softmax_regression` -- multinomial logistic regression on the 8x8 digits: a *convex* loss
  (target: ``val_loss <= 0.2``);
* ``course_lib.experiments.workloads:mlp_digits`` -- the harness's tanh MLP on the digits (target:
  ``val_accuracy >= 0.9``);
* :func:`char_shakespeare` -- :class:`course_lib.char_transformer.CharTransformer` on a play's text
  (target: ``val_loss <= 2.45`` nats per character; the unigram entropy of The Tempest is 3.3);
* :func:`noisy_digits` -- a tanh MLP on the digits with symmetric label noise in the training and
  validation labels (test labels clean), with the SAM kit's extra metrics: ``sharpness``, ``ece``,
  ``weight_noise_accuracy``, ``input_noise_accuracy``, ``train_accuracy`` and ``generalization_gap``
  (target: ``test_accuracy >= 0.75`` at 40% noise).

Optimizer factories (``kind = "optimizer"``): :func:`adam_variant` (any rule of
:mod:`course_lib.optimizers` or :mod:`course_lib.adam_variants`, Adam-mini partitioned by the
model's parameter names) and :func:`sam_variant` (:class:`course_lib.sam.SAM`; ``closure = true``).
"""
from __future__ import annotations

import math

import numpy as np

from .validation import CourseError, check_in_range, check_int

__all__ = ["softmax_regression", "char_shakespeare", "noisy_digits", "adam_variant", "sam_variant",
           "digits_splits"]


def digits_splits(val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0):
    """Standardised 8x8 digits split by a seeded permutation: ((X, y) train, val, test) as NumPy arrays."""
    from .datasets import load_dataset

    X, y = load_dataset("digits")
    X, y = np.asarray(X), np.asarray(y).astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(y))
    n_te, n_va = int(round(test_fraction * len(y))), int(round(val_fraction * len(y)))
    te, va, tr = perm[:n_te], perm[n_te:n_te + n_va], perm[n_te + n_va:]
    return (X[tr], y[tr]), (X[va], y[va]), (X[te], y[te])


def _tensors(pair, dtype):
    import torch

    return torch.as_tensor(pair[0], dtype=getattr(torch, dtype)), torch.as_tensor(pair[1])


def _seeded_init(net, seed: int):
    """Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights from a generator seeded by the run seed."""
    import torch

    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for p in net.parameters():
            bound = 1.0 / math.sqrt(p.shape[-1]) if p.ndim > 1 else 0.1
            p.uniform_(-bound, bound, generator=gen)
    return net


def softmax_regression(batch_size: int = 64, eval_every: int = 10, dtype: str = "float32", seed: int = 0):
    """Multinomial logistic regression (one linear layer, cross-entropy) on the digits: a convex problem.

    Args:
        batch_size, eval_every: the harness loop's. dtype: "float32" or "float64". seed: the split.
    Returns:
        A TorchWorkload (metrics train/val/test loss and val/test accuracy).
    """
    import torch

    from .experiments import TorchWorkload

    tr, va, te = digits_splits(seed=seed)

    def model(run_seed: int):
        return _seeded_init(torch.nn.Linear(64, 10).to(getattr(torch, dtype)), run_seed)

    return TorchWorkload(model=model, train=_tensors(tr, dtype), val=_tensors(va, dtype), test=_tensors(te, dtype),
                         loss=torch.nn.functional.cross_entropy, batch_size=check_int(batch_size, "batch_size", 1),
                         eval_every=check_int(eval_every, "eval_every", 1))


def char_shakespeare(play: str = "tempest", block_size: int = 32, d_model: int = 32, n_heads: int = 2,
                     n_layers: int = 1, max_chars: int | None = None, batch_size: int = 32, eval_every: int = 25,
                     seed: int = 0):
    """A character-level causal transformer on a Shakespeare play (``course_lib.datasets.shakespeare_text``).

    Text split by position: 80% train, 10% validation, 10% test; windows of ``block_size``.
    Metrics: train/val/test loss in nats per character.

    Args:
        play: the play's name. block_size, d_model, n_heads, n_layers: the model's. max_chars: use
        only the start of the text. batch_size, eval_every: the harness loop's. seed: unused (the
        split is by position), accepted as every factory is.
    Returns:
        A TorchWorkload with ``classification=False``.
    """
    from .char_transformer import CharTransformer, char_data, lm_loss
    from .datasets import shakespeare_text
    from .experiments import TorchWorkload

    data = char_data(shakespeare_text(play), block_size=block_size, max_chars=max_chars)
    vocab = len(data.vocab)

    def model(run_seed: int):
        return CharTransformer(vocab, block_size, d_model, n_heads, n_layers, seed=run_seed)

    return TorchWorkload(model=model, train=data.train, val=data.val, test=data.test, loss=lm_loss,
                         batch_size=check_int(batch_size, "batch_size", 1),
                         eval_every=check_int(eval_every, "eval_every", 1), classification=False)


def noisy_digits(label_noise: float = 0.4, hidden: int = 64, batch_size: int = 32, eval_every: int = 20,
                 sharpness_steps: int = 20, noise_sigma: float = 0.5, dtype: str = "float64", seed: int = 0):
    """A tanh MLP on the digits whose training and validation labels carry symmetric label noise.

    A ``label_noise`` fraction of the training and validation labels is replaced by a uniformly drawn
    different class (:func:`course_lib.nets.noisy_labels`); the test labels stay clean, so
    ``test_accuracy`` measures what was learnt despite the noise (Foret et al., ICLR 2021, Sec. 3.3).
    Extra metrics (:mod:`course_lib.flatness`), all on the final model:

    * ``sharpness``: top Hessian eigenvalue of the full training loss (Lanczos, ``sharpness_steps`` HVPs);
    * ``ece``: expected calibration error on the clean test set (15 bins);
    * ``weight_noise_accuracy`` / ``input_noise_accuracy``: clean test accuracy under relative weight noise /
      input noise of size ``noise_sigma`` (mean of 5 draws);
    * ``train_accuracy`` (on the noisy labels) and ``generalization_gap`` = train_accuracy - test_accuracy.

    Args:
        label_noise: fraction in [0, 1). hidden: width. batch_size, eval_every: the loop's.
        sharpness_steps: Lanczos steps. noise_sigma: perturbation size. dtype: float64 (default) or
        float32. seed: the split and the noise.
    Returns:
        A TorchWorkload.
    """
    import torch

    from . import flatness
    from .experiments import TorchWorkload
    from .nets import noisy_labels

    label_noise = check_in_range(label_noise, "label_noise", 0.0, 1.0, high_open=True)
    hidden = check_int(hidden, "hidden", 1)
    tr, va, te = digits_splits(seed=seed)
    if label_noise > 0:
        tr = (tr[0], noisy_labels(tr[1].astype(float), label_noise, 10, seed=seed + 1)[0].astype(np.int64))
        va = (va[0], noisy_labels(va[1].astype(float), label_noise, 10, seed=seed + 2)[0].astype(np.int64))
    dt = getattr(torch, dtype)

    def model(run_seed: int):
        net = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 10))
        return _seeded_init(net.to(dt), run_seed)

    loss = torch.nn.functional.cross_entropy

    def sharpness(m, w):
        return flatness.module_sharpness(m, loss, *w.train, k=sharpness_steps, seed=0)

    def ece(m, w):
        with torch.no_grad():
            probs = torch.softmax(m(w.test[0]), dim=1)
        return flatness.expected_calibration_error(probs, w.test[1])

    def train_accuracy(m, w):
        return flatness.accuracy(m, *w.train)

    def gap(m, w):
        return flatness.accuracy(m, *w.train) - flatness.accuracy(m, *w.test)

    extra = {
        "sharpness": (sharpness, "min"),
        "ece": (ece, "min"),
        "weight_noise_accuracy": (lambda m, w: flatness.weight_noise_accuracy(m, *w.test, noise_sigma)[0], "max"),
        "input_noise_accuracy": (lambda m, w: flatness.input_noise_accuracy(m, *w.test, noise_sigma)[0], "max"),
        "train_accuracy": (train_accuracy, "max"),
        "generalization_gap": (gap, "min"),
    }
    return TorchWorkload(model=model, train=_tensors(tr, dtype), val=_tensors(va, dtype), test=_tensors(te, dtype),
                         loss=loss, batch_size=check_int(batch_size, "batch_size", 1),
                         eval_every=check_int(eval_every, "eval_every", 1), extra_metrics=extra)


# -- optimizer factories ---------------------------------------------------------------------------
def adam_variant(params, *, optimizer: str = "adam", model=None, **hp):
    """A course_lib update rule as a torch optimizer: ``fixed = { optimizer = "lion" }`` in a study.

    Looks ``optimizer`` up in :mod:`course_lib.adam_variants`, then :mod:`course_lib.optimizers`.
    ``"adam_mini"`` needs the model's parameter names (the harness passes ``model``): it uses
    :func:`course_lib.adam_variants.adam_mini_torch` with num_embeds/num_heads read from the model
    (``d_model``/``n_heads`` attributes) when it has them.
    """
    from . import adam_variants, optimizers

    if optimizer == "adam_mini":
        if model is None:
            raise CourseError("adam_variant(optimizer='adam_mini') needs the model (its parameter names).")
        d, h = getattr(model, "d_model", None), getattr(model, "n_heads", None)
        return adam_variants.adam_mini_torch(model, num_embeds=d, num_heads=h, **hp)
    make = getattr(adam_variants, optimizer, None) or getattr(optimizers, optimizer, None)
    if make is None or not callable(make) or optimizer.startswith("_") or optimizer[0].isupper():
        raise CourseError(f"optimizer = {optimizer!r} is not an update rule of course_lib.optimizers or "
                          "course_lib.adam_variants (e.g. 'adamw', 'lion', 'adafactor', 'adam_mini').")
    return optimizers.TorchOptimizer(make(**hp), params)


def sam_variant(params, *, base: str = "torch.optim.SGD", variant: str = "sam", rho: float = 0.05,
                alpha: float = 0.4, eta: float = 0.01, **hp):
    """:class:`course_lib.sam.SAM` around a base optimizer class (import path ``base``); use ``closure = true``.

    ``fixed = { variant = "gsam", base = "torch.optim.SGD", momentum = 0.9 }``; the other keys go to the base.
    """
    from .experiments.methods import resolve
    from .sam import SAM

    return SAM(params, resolve(base, "base"), rho=rho, variant=variant, alpha=alpha, eta=eta, **hp)
