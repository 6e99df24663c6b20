"""Fine-tuning the MiniLM line classifier: training loop, accuracy, embedding cache, memory probes.

The workload of the LoRA and zeroth-order kits: :func:`course_lib.pretrained.genre_data` lines,
:class:`course_lib.pretrained.MiniLMClassifier`, and a fine-tuning mode from :mod:`course_lib.lora`
(full, linear probe, bias-only, LoRA). Training is AdamW on the cross-entropy over seeded minibatches
(dropout off, so a run is a deterministic function of its seed on one machine).

Frozen-encoder work (linear probes, hyperparameter searches, MeZO on the head) reads sentence embeddings
from a cache file (:func:`embedding_cache`), rebuilt by::

    python -m course_lib.finetune cache projects/data/minilm_genre.npz

and the peak-memory table of the zeroth-order and LoRA kits by::

    python -m course_lib.finetune memory projects/zeroth_order/results/memory.json

Memory probes (:func:`backprop_step`, :func:`mezo_full_step`, :func:`inference_step`) are factories for
:func:`course_lib.memory.peak_memory`: one training step of the full model by backpropagation (AdamW), by MeZO,
and a plain forward pass, on the same batch.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from . import lora, pretrained
from .validation import CourseError, check_int, check_positive

__all__ = ["make_model", "train", "accuracy", "embed", "embedding_cache", "backprop_step", "mezo_full_step",
           "inference_step", "main"]


def make_model(mode: str = "lora", seed: int = 0, **lora_kwargs):
    """A MiniLM classifier configured for ``mode`` (see :func:`course_lib.lora.set_trainable`).

    Returns:
        (model, n_trainable).
    """
    model = pretrained.MiniLMClassifier(seed=seed)
    n = lora.set_trainable(model, mode, **lora_kwargs)
    return model, n


def accuracy(model, ids, mask, y, batch_size: int = 128) -> float:
    """Classification accuracy of ``model`` on token ids / masks / labels (no grad, eval mode)."""
    import torch

    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch_size):
            pred = model(ids[i:i + batch_size], mask[i:i + batch_size]).argmax(-1)
            correct += int((pred == y[i:i + batch_size]).sum())
    return correct / max(len(y), 1)


def train(model, data, epochs: float = 1.0, batch_size: int = 32, step_size: float = 1e-3, weight_decay: float = 0.0,
          seed: int = 0, eval_every: int = 0, progress: bool = False) -> dict:
    """AdamW on the trainable parameters of ``model`` for ``epochs`` passes over ``data``'s training split.

    Args:
        model: a MiniLM classifier (from :func:`make_model`). data: a :class:`~course_lib.pretrained.GenreData`.
        epochs: passes (fractions allowed; the budget is epochs * n_train examples). batch_size, step_size,
            weight_decay: AdamW settings. seed: minibatch order. eval_every: validation accuracy every k steps
            (0: at the end only). progress: tqdm bar.
    Returns:
        dict: val_accuracy, test_accuracy, seconds, steps, examples, trainable, curve (list of (examples, loss)),
        val_curve (list of (examples, accuracy)).
    """
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise CourseError("The model has no trainable parameter; configure it with lora.set_trainable first.")
    n = data.size("train")
    bs = check_int(batch_size, "batch_size", 1)
    steps = max(1, int(round(check_positive(epochs, "epochs") * n / bs)))
    opt = torch.optim.AdamW(params, lr=check_positive(step_size, "step_size"), weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(int(seed))
    order = torch.cat([torch.randperm(n, generator=gen) for _ in range(int(np.ceil(steps * bs / n)) + 1)])
    curve, val_curve = [], []
    start = time.perf_counter()
    it = range(steps)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="fine-tune", unit="step")
    for k in it:
        model.train()
        idx = order[k * bs:(k + 1) * bs]
        loss = torch.nn.functional.cross_entropy(model(data.ids["train"][idx], data.mask["train"][idx]),
                                                 data.y["train"][idx])
        if not torch.isfinite(loss):
            raise CourseError(f"fine-tuning diverged at step {k}: loss = {float(loss)}; try a smaller step_size "
                              f"than {step_size:g}.")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        curve.append(((k + 1) * bs, float(loss.detach())))
        if eval_every and (k + 1) % eval_every == 0:
            val_curve.append(((k + 1) * bs, accuracy(model, data.ids["val"], data.mask["val"], data.y["val"])))
    seconds = time.perf_counter() - start
    return {"val_accuracy": accuracy(model, data.ids["val"], data.mask["val"], data.y["val"]),
            "test_accuracy": accuracy(model, data.ids["test"], data.mask["test"], data.y["test"]),
            "seconds": seconds, "steps": steps, "examples": steps * bs, "trainable": lora.count_trainable(model),
            "curve": curve, "val_curve": val_curve}


def embed(model, ids, mask, batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Mean-pooled sentence embeddings (float32 NumPy, shape (n, 384)) of the frozen encoder."""
    import torch

    out = []
    it = range(0, ids.shape[0], batch_size)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="embed", unit="batch")
    model.eval()
    with torch.no_grad():
        for i in it:
            out.append(model.embed(ids[i:i + batch_size], mask[i:i + batch_size]).numpy())
    return np.concatenate(out).astype(np.float32)


CACHE_DEFAULTS = dict(n_train=512, n_val=256, n_test=256, max_length=32, seed=0)


def embedding_cache(path, rebuild: bool = False, progress: bool = False, **sizes) -> dict:
    """Sentence embeddings of the genre task's splits, read from ``path`` or computed and written there.

    The file (``.npz``) holds X_<split>, y_<split>, the lines, and the settings it was built with; a file built
    with other settings is rebuilt.

    Args:
        path: the .npz file. rebuild: recompute even if the file matches. progress: tqdm bar.
        **sizes: n_train, n_val, n_test, max_length, seed (defaults: ``CACHE_DEFAULTS``).
    Returns:
        dict with X_train, y_train, X_val, y_val, X_test, y_test (NumPy) and lines_<split> (lists of str).
    """
    settings = {**CACHE_DEFAULTS, **sizes}
    unknown = set(sizes) - set(CACHE_DEFAULTS)
    if unknown:
        raise CourseError(f"Unknown cache settings {sorted(unknown)}; use {sorted(CACHE_DEFAULTS)}.")
    path = Path(path)
    if path.is_file() and not rebuild:
        with np.load(path, allow_pickle=False) as z:
            if json.loads(str(z["settings"])) == settings:
                return {k: (z[k].tolist() if k.startswith("lines_") else z[k]) for k in z.files if k != "settings"}
    data = pretrained.genre_data(**settings)
    model = pretrained.MiniLMClassifier(seed=0)
    out = {}
    for split in ("train", "val", "test"):
        out[f"X_{split}"] = embed(model, data.ids[split], data.mask[split], progress=progress)
        out[f"y_{split}"] = data.y[split].numpy()
        out[f"lines_{split}"] = data.lines[split]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, settings=json.dumps(settings),
                        **{k: (np.array(v) if k.startswith("lines_") else v) for k, v in out.items()})
    return out


def _batch(batch_size: int, max_length: int, seed: int = 0):
    data = pretrained.genre_data(n_train=batch_size, n_val=2, n_test=2, max_length=max_length, seed=seed)
    return data.ids["train"], data.mask["train"], data.y["train"]


def backprop_step(batch_size: int = 32, max_length: int = 32, mode: str = "full", steps: int = 1):
    """Memory probe: ``steps`` AdamW steps by backpropagation on the full (or ``mode``) model, one batch."""
    import torch

    model, _ = make_model(mode)
    ids, mask, y = _batch(batch_size, max_length)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step():
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(model(ids, mask), y)
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()

    return step


def mezo_full_step(batch_size: int = 32, max_length: int = 32, steps: int = 1):
    """Memory probe: ``steps`` MeZO steps on every parameter of the full model, same batch."""
    import torch

    from .zeroth_order import mezo_step

    model, _ = make_model("full")
    ids, mask, y = _batch(batch_size, max_length)
    params = list(model.parameters())

    def loss():
        return float(torch.nn.functional.cross_entropy(model(ids, mask), y))

    def step():
        with torch.no_grad():
            for k in range(steps):
                mezo_step(params, loss, eps=1e-3, step_size=1e-6, seed=k)

    return step


def inference_step(batch_size: int = 32, max_length: int = 32):
    """Memory probe: one forward pass of the full model without gradients (the floor MeZO aims at)."""
    import torch

    model, _ = make_model("full")
    ids, mask, _ = _batch(batch_size, max_length)

    def step():
        with torch.no_grad():
            model(ids, mask)

    return step


MEMORY_PROBES = {
    "inference (no grad)": ("inference_step", {}),
    "MeZO, all parameters": ("mezo_full_step", {}),
    "backprop AdamW, full fine-tuning": ("backprop_step", {"mode": "full"}),
    "backprop AdamW, LoRA r=8 (query, value)": ("backprop_step", {"mode": "lora"}),
    "backprop AdamW, bias only": ("backprop_step", {"mode": "bias_only"}),
    "backprop AdamW, linear probe": ("backprop_step", {"mode": "linear_probe"}),
}


def memory_table(batch_size: int = 32, max_length: int = 32, progress: bool = False) -> dict:
    """Peak memory of one step of each fine-tuning route on the full MiniLM, same batch, each in a fresh process.

    Returns:
        dict name -> :func:`course_lib.memory.peak_memory` output, plus "ratio backprop/MeZO" (full fine-tuning's
        peak over MeZO's) and the settings.
    """
    from .memory import peak_memory

    out = {"settings": {"batch_size": batch_size, "max_length": max_length}}
    items = list(MEMORY_PROBES.items())
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc="memory probes", unit="probe")
    for name, (factory, kwargs) in items:
        out[name] = peak_memory(f"course_lib.finetune:{factory}", batch_size=batch_size, max_length=max_length,
                                **kwargs)
    out["ratio backprop/MeZO"] = (out["backprop AdamW, full fine-tuning"]["peak_mb"]
                                  / out["MeZO, all parameters"]["peak_mb"])
    return out


def main(argv=None) -> int:
    """``python -m course_lib.finetune cache PATH [--rebuild]`` builds the kits' embedding cache;
    ``python -m course_lib.finetune memory OUT.json`` measures the fine-tuning routes' peak memory."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m course_lib.finetune", description=main.__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cache", help="compute the MiniLM embeddings of the genre task and write them to PATH")
    c.add_argument("path")
    c.add_argument("--rebuild", action="store_true", help="recompute even if PATH matches the settings")
    for name, value in CACHE_DEFAULTS.items():
        c.add_argument(f"--{name.replace('_', '-')}", type=int, default=value)
    c.add_argument("--debug", action="store_true")
    m = sub.add_parser("memory", help="peak memory of MeZO, backprop and PEFT steps on the full model (JSON)")
    m.add_argument("path")
    m.add_argument("--batch-size", type=int, default=32)
    m.add_argument("--max-length", type=int, default=32)
    m.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    if args.cmd == "memory":
        try:
            table = memory_table(args.batch_size, args.max_length, progress=True)
        except CourseError as exc:
            if args.debug:
                raise
            print(f"error: {exc}", file=sys.stderr)
            return 2
        Path(args.path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.path).write_text(json.dumps(table, indent=1))
        print(f"memory {args.path}: full fine-tuning peaks at {table['ratio backprop/MeZO']:.2f}x MeZO's memory")
        return 0
    sizes = {k: getattr(args, k) for k in CACHE_DEFAULTS}
    try:
        start = time.perf_counter()
        out = embedding_cache(args.path, rebuild=args.rebuild, progress=True, **sizes)
        n = sum(len(out[f"y_{s}"]) for s in ("train", "val", "test"))
        print(f"cache {args.path}: {n} lines embedded ({out['X_train'].shape[1]} dims) in "
              f"{time.perf_counter() - start:.1f} s")
        return 0
    except CourseError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
