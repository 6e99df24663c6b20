"""Analyses of the Adam-variants and SAM-variants kits, on top of the harness's stored results.

* :func:`state_memory` -- optimizer-state floats per parameter of a model (e.g. the pretrained MiniLM):
  the question behind Adam's "more than double the memory" and the memory-saving variants;
* :func:`rotation_experiment` -- GD and Adam on a quadratic and on the same quadratic in a rotated
  basis: GD's losses are identical (it is rotation-equivariant), Adam's are not (its per-coordinate
  scaling depends on the basis);
* :func:`ranking_by_trials` -- the ranking of methods when each gets only the first k of its tuning
  trials (read from the stored tuning runs: random search's first k draws do not depend on how many
  follow), which shows how a ranking changes with the tuning budget (Choi et al., 2019);
* :func:`retrain_final_runs` / :func:`flatness_of_final_runs` -- rebuild the final models of a study
  (the harness's runs are bit-reproducible) and measure them with :mod:`course_lib.flatness`.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .validation import CourseError, check_int, check_positive

__all__ = ["state_memory", "rotation_experiment", "ranking_by_trials", "retrain_final_runs",
           "flatness_of_final_runs"]


def state_memory(model, optimizers: dict) -> dict:
    """Optimizer-state floats divided by the number of parameters, for each optimizer.

    Args:
        model: an nn.Module. optimizers: name -> factory(model) returning an object with
            ``state_numel()`` (:class:`course_lib.optimizers.TorchOptimizer`,
            :class:`course_lib.adam_variants.TorchOptimizerGroups`). The state is allocated at
            construction, so no step is needed.
    Returns:
        {"parameters": P, name: state floats / P, ...}.
    """
    P = sum(p.numel() for p in model.parameters() if p.requires_grad)
    out = {"parameters": int(P)}
    for name, make in optimizers.items():
        opt = make(model)
        out[name] = opt.state_numel() / P
        del opt
    return out


def rotation_experiment(dim: int = 50, cond: float = 100.0, steps: int = 500, adam_lr: float = 0.05,
                        seed: int = 0) -> dict:
    """GD and Adam on f(x) = 1/2 x^T D x and on g(y) = 1/2 y^T Q D Q^T y (y = Q x: the same problem rotated).

    D = diag(geomspace(1, cond)), Q a random orthogonal matrix (scipy.stats.ortho_group, seeded),
    x0 = ones and y0 = Q x0. GD's iterates satisfy y_k = Q x_k, so its losses agree to rounding
    (rotation equivariance); Adam's coordinate-wise normalisation does not commute with Q.

    Returns:
        {"gd": (loss axis-aligned, loss rotated), "adam": (...)} after ``steps`` steps (GD with step 1/L),
        and "curves": {name: (array, array)} of the losses at every step.
    """
    from scipy.stats import ortho_group

    from .convex import gradient_descent
    from .optimizers import adam
    from .problems import Quadratic

    dim = check_int(dim, "dim", 2)
    cond = check_positive(cond, "cond")
    D = np.diag(np.geomspace(1.0, cond, dim))
    Q = ortho_group.rvs(dim, random_state=np.random.default_rng(seed))
    axis, rotated = Quadratic(D), Quadratic((Q @ D @ Q.T + (Q @ D @ Q.T).T) / 2)
    x0 = np.ones(dim)
    starts = (x0, Q @ x0)
    curves = {}
    for name, problem, start in (("axis", axis, starts[0]), ("rotated", rotated, starts[1])):
        tr = gradient_descent(problem, start, step_size=1.0 / cond, max_iter=steps, keep_x=False)
        curves[f"gd_{name}"] = np.asarray(tr.f)
        opt, x = adam(lr=adam_lr), start
        state, fs = opt.init(x), [float(problem.value(x))]
        for _ in range(steps):
            x, state = opt.update(problem.grad(x), state, x)
            fs.append(float(problem.value(x)))
        curves[f"adam_{name}"] = np.asarray(fs)
    return {"gd": (float(curves["gd_axis"][-1]), float(curves["gd_rotated"][-1])),
            "adam": (float(curves["adam_axis"][-1]), float(curves["adam_rotated"][-1])),
            "curves": {"gd": (curves["gd_axis"], curves["gd_rotated"]),
                       "adam": (curves["adam_axis"], curves["adam_rotated"])}}


def _records(results) -> list:
    path = Path(results) / "runs.jsonl"
    if not path.is_file():
        raise CourseError(f"no runs.jsonl in {results}; run the study first (course experiment run STUDY).")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ranking_by_trials(study, results, workload: str, trials=None) -> dict:
    """For k = 1..trials: each method's best validation score among its first k tuning trials, and the ranking.

    Args:
        study: a Study or its path. results: the results folder. workload: the workload's name.
        trials: the k values (default 1..study's trials).
    Returns:
        {"k": [...], "scores": {method: [best score after k trials]}, "ranking": [[methods best first] per k]}.
        Failed or diverged trials count as the worst score; "best" follows the validation metric's goal.
    """
    from .experiments import load_study

    study = load_study(study)
    w = next((w for w in study.workloads if w.name == workload), None)
    if w is None:
        raise CourseError(f"workload {workload!r} is not in the study; it has "
                          f"{', '.join(x.name for x in study.workloads)}.")
    ks = list(range(1, study.trials + 1)) if trials is None else [check_int(k, "k", 1) for k in trials]
    from .experiments.runs import build_workload

    wl = build_workload(w.to_dict(), str(study.dir))
    goal = wl.goal(w.validation_metric or wl.validation_metric(w.metric))
    sign = 1.0 if goal == "min" else -1.0
    recs = [r for r in _records(results) if r["phase"] == "tune" and r["workload"] == workload]
    scores = {}
    for m in study.methods:
        by_trial = {}
        for r in recs:
            if r["method"] == m.name:
                v = r["validation_metric"] if r["status"] == "ok" and r["validation_metric"] is not None else math.inf
                by_trial.setdefault(int(r["trial"]), []).append(sign * v)
        if not by_trial:
            continue
        mean = [float(np.mean(by_trial[t])) for t in sorted(by_trial)]
        scores[m.name] = [sign * min(mean[:k]) for k in ks]
    ranking = [sorted(scores, key=lambda name: sign * scores[name][i]) for i in range(len(ks))]
    return {"k": ks, "scores": scores, "ranking": ranking}


def retrain_final_runs(study, results, workload: str, methods=None, phases=("final",)):
    """Rebuild the models of stored runs (bit-identical to the harness's: same seed, config and budget).

    Args:
        study, results: the study and its results folder. workload: its name. methods: only these.
        phases: ("final",) by default; ("final", "tune") also rebuilds the tuning runs (more
            configurations, e.g. for a correlation across hyperparameters).
    Yields:
        (record, workload object, trained model) for each ok run of ``workload``.
    """
    from .experiments import load_study
    from .experiments.methods import resolve
    from .experiments.oracle import Budget, Curve
    from .experiments.runs import _setup_worker, build_workload
    from .experiments.training import train_torch

    study = load_study(study)
    w = next((w for w in study.workloads if w.name == workload), None)
    if w is None:
        raise CourseError(f"workload {workload!r} is not in the study; it has "
                          f"{', '.join(x.name for x in study.workloads)}.")
    _setup_worker()
    wl = build_workload(w.to_dict(), str(study.dir))
    methods_by_name = {m.name: m for m in study.methods}
    for r in _records(results):
        if r["phase"] not in phases or r["workload"] != workload or r["status"] != "ok":
            continue
        if methods is not None and r["method"] not in methods:
            continue
        m = methods_by_name[r["method"]]
        budget = Budget(study.unit, study.amount, wl.n_examples)
        curve = Curve(goal=w.goal or wl.goal(w.metric), target=w.target)
        model, _ = train_torch(wl, resolve(m.target), dict(r["config"]), r["seed"], budget, curve, w.metric,
                               use_closure=m.closure)
        yield r, wl, model


def flatness_of_final_runs(study, results, workload: str, metrics=("sharpness", "ece", "weight_noise_accuracy",
                                                                   "input_noise_accuracy", "train_accuracy",
                                                                   "test_accuracy", "generalization_gap"),
                           cache: str | None = "flatness.json", phases=("final", "tune")) -> list[dict]:
    """Measure every rebuilt model of ``workload`` with the workload's metrics; cached as ``results/<cache>``.

    Returns:
        One dict per run: phase, method, seed, config, the harness's final metric and each metric
        (they are recomputed from the rebuilt model, so ``test_accuracy`` equals the harness's when it
        is the tracked metric: a check that the rebuild is exact).
    """
    path = Path(results) / cache if cache else None
    if path is not None and path.is_file():
        rows = json.loads(path.read_text())
        if rows and all(k in rows[0] for k in metrics):
            return rows
    rows = []
    for r, wl, model in retrain_final_runs(study, results, workload, phases=phases):
        row = {"phase": r["phase"], "method": r["method"], "seed": r["seed"], "config": r["config"],
               "harness_metric": r["final_metric"]}
        for k in metrics:
            row[k] = float(wl.evaluate(k, model))
        rows.append(row)
    if path is not None:
        path.write_text(json.dumps(rows, indent=1))
    return rows
