"""The report: reads the results store only (problem -> study -> runs -> store -> report, no back-arrows).

``report_study(study)`` writes into the results folder:

* ``report.md`` -- the table a paper prints (per workload and method: tuned hyperparameters,
  final metric mean with its 95% bootstrap CI and median, time-to-target median with its 95% CI
  and how many final runs reached the target, tuning cost, diverged/failed counts); the paired
  comparison of every method against the baseline on common seeds; performance profiles when
  there are several workloads; the manifest's reproducibility facts.
* ``curves_<workload>.png`` -- final-run curves on the shared budget axis, mean (geometric mean
  for positive "min" metrics) with a 95% bootstrap band; ``profile.png`` -- performance profiles.
* ``summary.json`` -- the same numbers for programs (returned as a dict as well).

Bootstrap seeds derive from the study, so the report is the same on every rerun.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .runs import build_workload
from .store import ResultsStore
from .study import derive_seed, load_study
from . import stats

__all__ = ["report_study", "summarize", "format_table"]


def _fmt(v, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "∞"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _hp(config: dict, space_names) -> str:
    items = [f"{k}={_fmt(v, 3) if isinstance(v, float) else v}" for k, v in config.items() if k in space_names]
    return ", ".join(items) if items else "(fixed)"


def summarize(study, records: list) -> dict:
    """Every number of the report, from the run records (JSON-ready)."""
    study = load_study(study)
    rows, paired, times = [], [], {}
    for w in study.workloads:
        workload = build_workload(w.to_dict(), str(study.dir))
        goal = w.goal or workload.goal(w.metric)
        finals_by_method = {}
        for m in study.methods:
            recs = [r for r in records if r["workload"] == w.name and r["method"] == m.name]
            tune = [r for r in recs if r["phase"] == "tune"]
            final = sorted((r for r in recs if r["phase"] == "final"), key=lambda r: r["seed_index"])
            ok = [r for r in final if r["status"] == "ok"]
            seed = derive_seed(study.name, w.name, m.name, "report")
            fm = [r["final_metric"] for r in ok if r["final_metric"] is not None]
            lo, hi = stats.bootstrap_ci(fm, seed=seed)
            ttt = [r["time_to_target"] if r["reached"] else math.inf for r in final]
            med, tlo, thi = stats.median_ci(ttt, seed=seed + 1) if w.target is not None else (math.nan,) * 3
            times[(w.name, m.name)] = med if w.target is not None else math.inf
            finals_by_method[m.name] = final
            rows.append({
                "workload": w.name, "method": m.name, "metric": w.metric, "goal": goal, "target": w.target,
                "config": final[0]["config"] if final else None, "space": sorted(m.space),
                "final_runs": len(final), "ok_runs": len(ok),
                "final_mean": float(np.mean(fm)) if fm else math.nan, "final_low": lo, "final_high": hi,
                "final_median": float(np.median(fm)) if fm else math.nan,
                "ttt_median": med, "ttt_low": tlo, "ttt_high": thi,
                "reached": sum(1 for r in final if r["reached"]), "censored": sum(1 for r in ok if not r["reached"]),
                "tuning_trials": len({r["trial"] for r in tune}),
                "tuning_cost": float(sum((r["spent"] or {}).get("spent", 0.0) for r in tune)),
                "diverged_tuning": sum(r["status"] == "diverged" for r in tune),
                "failed_tuning": sum(r["status"] == "failed" for r in tune),
                "diverged_final": sum(r["status"] == "diverged" for r in final),
                "failed_final": sum(r["status"] == "failed" for r in final),
                "messages": sorted({r["message"] for r in recs if r["status"] != "ok" and r["message"]})[:3],
            })
        base = finals_by_method.get(study.baseline, [])
        for m in study.methods:
            if m.name == study.baseline:
                continue
            seed = derive_seed(study.name, w.name, m.name, "paired")
            mine = finals_by_method[m.name]
            d_metric = stats.paired_difference({r["seed_index"]: r["final_metric"] for r in mine},
                                               {r["seed_index"]: r["final_metric"] for r in base}, seed=seed, goal=goal)
            d_ttt = stats.paired_difference({r["seed_index"]: r["time_to_target"] for r in mine if r["reached"]},
                                            {r["seed_index"]: r["time_to_target"] for r in base if r["reached"]},
                                            seed=seed + 1, goal="min")
            paired.append({"workload": w.name, "method": m.name, "baseline": study.baseline,
                           "final_metric": d_metric, "time_to_target": d_ttt})
    out = {"study": study.name, "description": study.description, "unit": study.unit, "amount": study.amount,
           "trials": study.trials, "sampler": study.sampler, "seeds": study.seeds, "baseline": study.baseline,
           "runs": len(records), "rows": rows, "paired": paired}
    if len(study.workloads) > 1 and any(w.target is not None for w in study.workloads):
        names = [m.name for m in study.methods]
        wl = [w.name for w in study.workloads if w.target is not None]
        taus, rho = stats.performance_profile(times, names, wl)
        out["profile"] = {"taus": [float(t) for t in taus], "rho": {k: [float(v) for v in r] for k, r in rho.items()},
                          "workloads": wl}
    return out


def format_table(summary: dict) -> str:
    """The main results table as markdown."""
    unit = summary["unit"]
    lines = [f"| workload | method | tuned hyperparameters | final metric: mean [95% CI] | median | "
             f"time-to-target ({unit}): median [95% CI] | reached | tuning: trials, {unit} | diverged (tune/final) | "
             "failed (tune/final) |", "|" + "---|" * 10]
    for r in summary["rows"]:
        ttt = (f"{_fmt(r['ttt_median'])} [{_fmt(r['ttt_low'])}, {_fmt(r['ttt_high'])}]"
               if r["target"] is not None else "(no target)")
        lines.append(
            f"| {r['workload']} | {r['method']} | {_hp(r['config'] or {}, r['space'])} | "
            f"{_fmt(r['final_mean'])} [{_fmt(r['final_low'])}, {_fmt(r['final_high'])}] | {_fmt(r['final_median'])} | "
            f"{ttt} | {r['reached']}/{r['final_runs']} | {r['tuning_trials']}, {_fmt(r['tuning_cost'])} | "
            f"{r['diverged_tuning']}/{r['diverged_final']} | {r['failed_tuning']}/{r['failed_final']} |")
    return "\n".join(lines)


def _paired_table(summary: dict) -> str:
    lines = ["| workload | method − baseline | pairs | final metric: mean diff [95% CI] | wins/losses/ties | "
             "Wilcoxon p | time-to-target: mean diff [95% CI] (pairs) |", "|" + "---|" * 7]
    for p in summary["paired"]:
        d, t = p["final_metric"], p["time_to_target"]
        pv = "–" if d["p_wilcoxon"] is None else f"{d['p_wilcoxon']:.3g}"
        lines.append(f"| {p['workload']} | {p['method']} − {p['baseline']} | {d['n']} | {_fmt(d['mean'])} "
                     f"[{_fmt(d['low'])}, {_fmt(d['high'])}] | {d['wins']}/{d['losses']}/{d['ties']} | {pv} | "
                     f"{_fmt(t['mean'])} [{_fmt(t['low'])}, {_fmt(t['high'])}] ({t['n']}) |")
    return "\n".join(lines)


def _plot_curves(study, records, folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    for w in study.workloads:
        fig, ax = plt.subplots(figsize=(6, 4))
        positive = True
        for m in study.methods:
            final = [r for r in records if r["workload"] == w.name and r["method"] == m.name
                     and r["phase"] == "final" and r["status"] == "ok" and r["curve"]["budget"]]
            if not final:
                continue
            vals = [v for r in final for v in r["curve"]["metric"] if v is not None]
            positive = positive and bool(vals) and min(vals) > 0
            log = (w.goal or "min") == "min" and bool(vals) and min(vals) > 0
            grid = np.linspace(0, study.amount, 200)
            c, lo, hi = stats.band([(r["curve"]["budget"], r["curve"]["metric"]) for r in final], grid,
                                   seed=derive_seed(study.name, w.name, m.name, "band"), log=log)
            ax.plot(grid, c, label=f"{m.name} (n={len(final)})")
            ax.fill_between(grid, lo, hi, alpha=0.25)
        if w.target is not None:
            ax.axhline(w.target, color="k", lw=0.8, ls="--", label="target")
        if positive and (w.goal or "min") == "min":
            ax.set_yscale("log")
        ax.set_xlabel(f"budget ({study.unit})")
        ax.set_ylabel(w.metric)
        ax.set_title(f"{w.name}: final runs, mean and 95% band")
        ax.legend(fontsize=8)
        fig.tight_layout()
        name = f"curves_{w.name}.png"
        fig.savefig(folder / name, dpi=100)
        plt.close(fig)
        files.append(name)
    return files


def _plot_profile(summary: dict, folder: Path) -> str | None:
    if "profile" not in summary:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prof = summary["profile"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, rho in prof["rho"].items():
        ax.step(prof["taus"], rho, where="post", label=name)
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("performance ratio τ (time-to-target / best)")
    ax.set_ylabel("fraction of workloads")
    ax.set_title("performance profiles (Dolan–Moré)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "profile.png", dpi=100)
    plt.close(fig)
    return "profile.png"


def report_study(study, out=None, figures: bool = True) -> dict:
    """Write report.md, summary.json and the figures for a study's stored results; return the summary.

    Args:
        study: a Study or the path of its file. out: the results folder (default beside the study).
        figures: also draw the PNG figures.
    """
    from ..validation import CourseError

    study = load_study(study)
    folder = Path(out) if out is not None else study.default_out()
    store = ResultsStore(folder, study)
    manifest = store.manifest()
    if manifest is None:
        raise CourseError(f"no results in {folder}: run `course experiment run {study.path or 'STUDY.toml'}` first "
                          "(or pass the --out folder it wrote to).")
    if manifest.get("study_hash") != study.hash:
        raise CourseError(f"{folder} holds results of a different version of the study file; rerun it, or pass --out.")
    records = store.records()
    summary = summarize(study, records)
    from .runner import plan_keys

    planned = plan_keys(study)
    summary["planned_runs"] = planned
    figs = _plot_curves(study, records, folder) if figures else []
    prof = _plot_profile(summary, folder) if figures else None
    session = manifest["sessions"][-1] if manifest.get("sessions") else {}
    md = [f"# Study `{study.name}`", "", study.description, "",
          f"Budget: **{study.amount:g} {study.unit}** per run, counted in the oracle. Tuning: **{study.trials} trials** "
          f"per method ({study.sampler} sampler, {study.tuning_seeds} seed(s) per trial, score = {study.score}); "
          f"the best configuration rerun on **{study.seeds} final seeds** (the same seeds for every method).", ""]
    if len(records) < planned:
        md += [f"**Incomplete:** {len(records)} of {planned} runs are stored; rerun `course experiment run` to finish.",
               ""]
    md += ["## Results", "", format_table(summary), "",
           "Final metric: the tracked metric at the end of the budget (mean over final seeds, bootstrap BCa 95% CI). "
           "Time-to-target: budget spent when the metric first reached the target; runs that never did are "
           "censored (counted as ∞, so the median is ∞ when half or more missed).", ""]
    notes = [f"- {r['workload']} / {r['method']}: {msg}" for r in summary["rows"] for msg in r["messages"]]
    if notes:
        md += ["Messages of diverged or failed runs:", "", *notes, ""]
    if summary["paired"]:
        md += [f"## Paired comparison against `{study.baseline}` (common seeds)", "", _paired_table(summary), ""]
    if prof:
        md += ["## Performance profiles", "", f"![profiles]({prof})", ""]
    for f in figs:
        md += [f"![curves]({f})", ""]
    md += ["## Reproducibility", "", f"- study file hash (sha256): `{study.hash}`",
           f"- git commit: `{session.get('git_commit')}`; Python {session.get('python')}; "
           f"CPU: {session.get('cpu')}; GPU: {session.get('gpu')}",
           "- packages: " + ", ".join(f"{k} {v}" for k, v in (session.get("packages") or {}).items() if v),
           f"- every run's configuration and seed: `{store.runs_path.name}` (one JSON line per run); "
           f"environment of every session: `{store.manifest_path.name}`", ""]
    (folder / "report.md").write_text("\n".join(md))
    (folder / "summary.json").write_text(json.dumps(_clean(summary), indent=2, allow_nan=False))
    return summary


def _clean(v):
    """JSON-ready copy: NaN becomes null, inf the string "inf"."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v
