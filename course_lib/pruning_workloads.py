"""Workloads and methods of the pruning kit (projects/pruning): real layers, real calibration data.

Two sources of layers, both built from installed packages only:

* ``"mlp_digits"`` -- a 64-128-64-10 tanh MLP trained (seeded, float64, full-batch Adam) on scikit-learn's
  digits; calibration inputs are the training images' activations;
* ``"minilm"`` -- the pretrained all-MiniLM-L6-v2 encoder of :mod:`course_lib.pretrained`; calibration
  inputs are token activations of Shakespeare lines (:func:`course_lib.datasets.shakespeare_lines`).

:func:`layer_reconstruction` turns one layer into a harness workload (``kind = "algorithm"`` methods): the
problem is :class:`course_lib.pruning.LayerReconstruction`, the start is the magnitude-pruned layer (k
nonzeros, so every method knows k), and the tracked metric is the relative reconstruction error of the
method's point after keeping its k largest entries -- so a dense iterate is never credited.
:func:`sparsity_sweep` prunes whole models with every method of :data:`course_lib.pruning.METHODS` and
measures accuracy, the kit notebook's figure (``python -m course_lib.pruning_workloads`` rebuilds its cache).
"""
from __future__ import annotations

import functools
import json

import numpy as np

from .pruning import LayerReconstruction, METHODS, keep_count, prune_linear_layers
from .sparsity import accelerated_iht, hard_threshold, iht
from .validation import CourseError, check_in_range, check_int

__all__ = ["trained_digits_mlp", "minilm_calibration", "layer_data", "layer_reconstruction", "magnitude",
           "iht_method", "accelerated_iht_method", "sparsity_sweep", "SOURCES"]

SOURCES = ("mlp_digits", "minilm")


@functools.lru_cache(maxsize=2)
def trained_digits_mlp(seed: int = 0, steps: int = 150):
    """A 64-128-64-10 tanh MLP trained on 70% of the digits; returns (model, (Xtr, ytr), (Xte, yte)) as tensors."""
    import torch

    from .datasets import load_dataset, train_test_split

    torch.manual_seed(seed)
    X, y = load_dataset("digits")
    Xtr, Xte, ytr, yte = (torch.as_tensor(a) for a in train_test_split(X, y, 0.3, seed=seed))
    ytr, yte = ytr.long(), yte.long()
    model = torch.nn.Sequential(torch.nn.Linear(64, 128, dtype=torch.float64), torch.nn.Tanh(),
                                torch.nn.Linear(128, 64, dtype=torch.float64), torch.nn.Tanh(),
                                torch.nn.Linear(64, 10, dtype=torch.float64))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(check_int(steps, "steps", 1)):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(Xtr), ytr).backward()
        opt.step()
    model.requires_grad_(False)
    return model, (Xtr, ytr), (Xte, yte)


@functools.lru_cache(maxsize=2)
def minilm_calibration(n_lines: int = 64, seed: int = 0, max_length: int = 24):
    """The MiniLM encoder and tokenised calibration lines: (encoder, input_ids, attention_mask)."""
    import torch

    from .datasets import shakespeare_lines
    from .pretrained import load_encoder, tokenize

    lines, _, _ = shakespeare_lines(max_lines_per_play=max(1, check_int(n_lines, "n_lines", 1) // 20 + 1),
                                    seed=seed)
    pick = np.random.default_rng(seed).choice(len(lines), size=min(n_lines, len(lines)), replace=False)
    ids, mask = tokenize([lines[i] for i in sorted(pick)], max_length=max_length)
    encoder = load_encoder()
    encoder.requires_grad_(False)
    torch.manual_seed(seed)
    return encoder, ids, mask


def layer_data(source: str = "mlp_digits", layer: str = "0", max_rows: int = 2048, seed: int = 0):
    """The dense weights W (d_in, d_out) and calibration inputs X (n, d_in) of one Linear layer.

    Args:
        source: "mlp_digits" (layers "0", "2", "4") or "minilm" (module names such as
            "encoder.layer.0.intermediate.dense" or "encoder.layer.3.attention.self.query").
        layer: the module name inside the model. max_rows: most calibration rows (seeded subset).
    Returns:
        (W, X) float64 NumPy arrays.
    """
    import torch

    if source not in SOURCES:
        raise CourseError(f"source must be one of {', '.join(SOURCES)}; got {source!r}.")
    if source == "mlp_digits":
        model, (Xtr, _), _ = trained_digits_mlp(seed)
        run = lambda m: m(Xtr)  # noqa: E731
    else:
        model, ids, mask = minilm_calibration(seed=seed)
        run = lambda m: m(input_ids=ids, attention_mask=mask)  # noqa: E731
    modules = dict(model.named_modules())
    if layer not in modules or not isinstance(modules[layer], torch.nn.Linear):
        names = [n for n, m in modules.items() if isinstance(m, torch.nn.Linear)]
        raise CourseError(f"layer {layer!r} is not a Linear layer of {source}; choose one of: "
                          f"{', '.join(names[:8])}{' ...' if len(names) > 8 else ''}")
    seen = []
    hook = modules[layer].register_forward_hook(
        lambda m, inp, out: seen.append(inp[0].detach().reshape(-1, m.in_features).double()))
    try:
        with torch.no_grad():
            run(model)
    finally:
        hook.remove()
    X = torch.cat(seen).numpy()
    if X.shape[0] > max_rows:
        X = X[np.sort(np.random.default_rng(seed).choice(X.shape[0], size=max_rows, replace=False))]
    return modules[layer].weight.detach().double().numpy().T.copy(), X


def layer_reconstruction(source: str = "mlp_digits", layer: str = "0", sparsity: float = 0.7,
                         max_rows: int = 2048, seed: int = 0):
    """A harness workload: prune one real layer to ``sparsity`` by minimising ||X W - X W'||^2.

    The start is H_k(vec W) (magnitude pruning, k = round((1 - sparsity) d_in d_out) nonzeros). Metric
    ``reconstruction_error``: ||X(W - H_k(w'))||^2 / ||X W||^2 at the method's point w' (goal min; 0 is a lower
    bound that pruning never reaches).

    Returns:
        A :class:`course_lib.experiments.VectorWorkload`.
    """
    from .experiments import VectorWorkload

    sparsity = check_in_range(sparsity, "sparsity", 0.0, 1.0)
    W, X = layer_data(source, layer, max_rows=max_rows, seed=seed)
    problem = LayerReconstruction(W, X)
    k = keep_count(problem.dim, sparsity)
    start = hard_threshold(W.reshape(-1), k)

    total = max(float(np.sum(W * (problem.G @ W))), 1e-300)

    def error(x):   # ||X(W - W')||^2 / ||XW||^2 = tr(D^T G D) / tr(W^T G W): d_in^2 d_out flops, not n d_in d_out
        D = W - hard_threshold(np.asarray(x, dtype=float), k).reshape(W.shape)
        return float(np.sum(D * (problem.G @ D))) / total

    return VectorWorkload(problem, {"reconstruction_error": error}, x0=lambda s: start.copy(),
                          bounds={"reconstruction_error": (0.0, None)})


# -- methods (kind = "algorithm": f(oracle, x0, *, seed, **hp)); k is the number of nonzeros of x0 -------------------
def _k(x0) -> int:
    return int(np.count_nonzero(np.asarray(x0)))


def _cap(oracle, per_step: int) -> int:
    from .experiments.methods import max_steps

    return min(max_steps(oracle, per_step), 100_000)


def magnitude(oracle, x0, *, seed: int = 0):
    """Magnitude pruning: the start itself (no oracle call)."""
    return x0


def iht_method(oracle, x0, *, seed: int = 0, step_scale: float = 1.0):
    """course_lib.sparsity.iht with step step_scale / L (monotone for step_scale <= 1), from the magnitude start."""
    return iht(oracle, x0, _k(x0), step_size=step_scale / oracle.L, max_iter=_cap(oracle, 1),
               record_every=_cap(oracle, 1))


def accelerated_iht_method(oracle, x0, *, seed: int = 0, step_scale: float = 1.0):
    """course_lib.sparsity.accelerated_iht (momentum candidate + plain IHT candidate; 2 gradients per step)."""
    return accelerated_iht(oracle, x0, _k(x0), step_size=step_scale / oracle.L, max_iter=_cap(oracle, 2),
                           record_every=_cap(oracle, 2))


# -- whole-model sweeps for the notebook ------------------------------------------------------------------------
def _minilm_genre_probe(seed: int = 0):
    """MiniLM embeddings of comedy/tragedy lines and a logistic-regression probe fitted on the dense ones."""
    from sklearn.linear_model import LogisticRegression as SkLogReg

    from .pretrained import genre_data

    data = genre_data(n_train=256, n_val=2, n_test=256, max_length=24, seed=seed)

    def embed(encoder, split):
        import torch

        with torch.no_grad():
            h = encoder(input_ids=data.ids[split], attention_mask=data.mask[split]).last_hidden_state
            m = data.mask[split].unsqueeze(-1).to(h.dtype)
            return ((h * m).sum(1) / m.sum(1)).numpy()

    return data, embed, SkLogReg(max_iter=2000)


def sparsity_sweep(source: str = "mlp_digits", sparsities=(0.5, 0.7, 0.9), methods=METHODS, seed: int = 0,
                   max_rows: int = 2048, minilm_layers: str = "attention", progress=None):
    """Prune every Linear layer of a model with each method at each sparsity; measure reconstruction and accuracy.

    ``mlp_digits``: test accuracy of the pruned classifier (all 3 layers). ``minilm``: the comedy-vs-tragedy
    accuracy of a logistic probe fitted on the *dense* encoder's embeddings, applied to the pruned encoder's
    embeddings (one-shot, no retraining). On MiniLM the 24 attention projections (query, key, value, output;
    384 x 384) are pruned by default; ``minilm_layers="all"`` adds the six 384 x 1536 feed-forward pairs, whose
    least-squares refits take minutes each on a 2-core CPU.

    Returns:
        {"source", "dense_accuracy", "rows": [{"method", "sparsity", "accuracy", "mean_reconstruction_error",
        "seconds"}]} (JSON-ready).
    """
    import copy
    import time

    import torch

    if source not in SOURCES:
        raise CourseError(f"source must be one of {', '.join(SOURCES)}; got {source!r}.")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise CourseError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}.")
    if source == "mlp_digits":
        model, (Xtr, _), (Xte, yte) = trained_digits_mlp(seed)
        calibrate = lambda m: m(Xtr)  # noqa: E731

        def accuracy(m):
            with torch.no_grad():
                return float((m(Xte).argmax(1) == yte).double().mean())
    else:
        model, ids, mask = minilm_calibration(seed=seed)
        calibrate = lambda m: m(input_ids=ids, attention_mask=mask)  # noqa: E731
        if minilm_layers not in ("attention", "all"):
            raise CourseError(f"minilm_layers must be 'attention' or 'all', got {minilm_layers!r}.")
        layers = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)
                  and (minilm_layers == "all" or ".attention." in n)]
        data, embed, probe = _minilm_genre_probe(seed)
        probe.fit(embed(model, "train"), data.y["train"].numpy())

        def accuracy(m):
            return float(probe.score(embed(m, "test"), data.y["test"].numpy()))
    if source == "mlp_digits":
        layers = None
    out = {"source": source, "dense_accuracy": accuracy(model), "layers": layers, "rows": []}
    for s in sparsities:
        for method in methods:
            pruned = copy.deepcopy(model)
            t = time.perf_counter()
            report = prune_linear_layers(pruned, calibrate, s, method, max_rows=max_rows, layers=layers, seed=seed)
            row = {"method": method, "sparsity": float(s), "accuracy": accuracy(pruned),
                   "mean_reconstruction_error": float(np.mean([r["reconstruction_error"] for r in report])),
                   "seconds": time.perf_counter() - t}
            out["rows"].append(row)
            if progress:
                progress(row)
    return out


def main(argv=None) -> int:
    """``python -m course_lib.pruning_workloads [--out FILE] [--source S ...]``: rebuild the kit's sweep cache."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m course_lib.pruning_workloads",
                                     description="Prune whole models at several sparsities with every method.")
    parser.add_argument("--out", default="projects/pruning/results/sweep.json")
    parser.add_argument("--source", action="append", choices=SOURCES, help="default: both")
    parser.add_argument("--sparsity", action="append", type=float, help="default: 0.5, 0.7, 0.9")
    parser.add_argument("--method", action="append", choices=METHODS, help="default: every method")
    parser.add_argument("--max-rows", type=int, default=2048, help="most calibration rows per layer")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = {}
    for source in args.source or SOURCES:
        result[source] = sparsity_sweep(source, sparsities=tuple(args.sparsity or (0.5, 0.7, 0.9)),
                                        methods=tuple(args.method or METHODS), seed=args.seed,
                                        max_rows=args.max_rows, progress=lambda r, s=source: print(
            f"{s:<11} {r['method']:<16} sparsity {r['sparsity']:.0%}: accuracy {r['accuracy']:.3f}, "
            f"reconstruction error {r['mean_reconstruction_error']:.3f} ({r['seconds']:.1f} s)", flush=True))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
