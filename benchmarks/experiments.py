"""Experiment harness: overhead of a harnessed run against calling the method directly; --jobs 2 vs --jobs 1.

1. **Overhead per run.** Gradient descent on L2-logistic regression (scikit-learn's digits as a binary task,
   1079 x 64 training split), a run of about one second (``--gradients``, default 3000):
   * direct: ``course_lib.convex.gradient_descent(problem, x0, step, max_iter=N - 1)`` (N gradients, and the
     f(x_k) course_lib records for its trace);
   * harness, exact curve: ``course_lib.experiments.runs.execute`` on the same run with a budget of N gradients
     (counting oracle, metric f(x_k) - f* logged at every gradient, time-to-target, the run record);
   * harness, ``log_every = N / 100``: the same with the metric evaluated at 100 points.
   The variants alternate in ``--repeats`` rounds (median reported), in this process.
2. **Parallel runs.** A study of 20 such runs (2 methods x (5 tuning trials + 5 final seeds)) through
   ``run_study`` with ``jobs=1`` and ``jobs=2`` (process pools, spawn start-up included).

Results: benchmarks/results/experiments.{json,md} (``--quick``: experiments_quick.*), with the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

WORKLOAD = {"name": "logistic-digits", "factory": "course_lib.experiments.workloads:logistic_regression",
            "args": {"dataset": "digits", "lam": 1e-3}, "metric": "suboptimality", "target": 1e-8, "goal": None,
            "validation_metric": None, "seed": 0}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _spec(n: int, step: float, log_every: float) -> dict:
    return {"key": "bench", "phase": "final", "trial": "best", "seed_index": 0, "seed": 1, "config": {"step_size": step},
            "workload": dict(WORKLOAD, log_every=log_every),
            "method": {"name": "gd", "kind": "algorithm", "target": "course_lib.experiments.methods:gradient_descent",
                       "fixed": {}, "space": {}, "closure": False},
            "unit": "gradients", "amount": n, "divergence_factor": 1e8, "study_dir": str(REPO)}


def overhead(n: int, repeats: int) -> dict:
    from course_lib.convex import gradient_descent
    from course_lib.experiments.runs import build_workload, execute

    workload = build_workload(WORKLOAD)
    problem, x0 = workload.problem, workload.initial_point(1)
    step = 1.0 / problem.L
    variants = {
        "direct": lambda: gradient_descent(problem, x0, step_size=step, max_iter=n - 1, keep_x=False,
                                           record_every=n, on_divergence="raise"),
        "harness_exact": lambda: execute(_spec(n, step, 0.0)),
        "harness_log_every": lambda: execute(_spec(n, step, n / 100)),
    }
    check = execute(_spec(n, step, 0.0))
    assert check["status"] == "ok" and check["spent"]["gradients"] == n, check
    direct = variants["direct"]()
    assert abs(direct.f[-1] - workload.problem.value(direct.x_final)) < 1e-12
    samples = {k: [] for k in variants}
    cpu = {k: [] for k in variants}
    loads = []
    for r in range(repeats):
        for name in (list(variants) if r % 2 == 0 else list(variants)[::-1]):
            t, c = time.perf_counter(), time.process_time()
            variants[name]()
            samples[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
        loads.append(_load()[0])
        print(f"overhead round {r + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in samples.items()),
              flush=True)
    med = {k: statistics.median(v) for k, v in samples.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    return {"gradients": n, "repeats": repeats, "seconds": samples, "cpu_seconds": cpu, "median_s": med,
            "median_cpu_s": med_cpu, "overhead_exact": med["harness_exact"] / med["direct"] - 1,
            "overhead_log_every": med["harness_log_every"] / med["direct"] - 1,
            "overhead_exact_cpu": med_cpu["harness_exact"] / med_cpu["direct"] - 1,
            "overhead_log_every_cpu": med_cpu["harness_log_every"] / med_cpu["direct"] - 1, "load_per_round": loads}


def _study_text(n: int) -> str:
    return f"""
[study]
name = "bench-jobs"
seeds = 5
[study.budget]
unit = "gradients"
amount = {n}
[study.tuning]
trials = 5
[[workload]]
name = "logistic-digits"
factory = "course_lib.experiments.workloads:logistic_regression"
args = {{ dataset = "digits", lam = 1e-3 }}
metric = "suboptimality"
log_every = {n / 100}
[[method]]
name = "gd"
target = "course_lib.experiments.methods:gradient_descent"
[method.space]
step_size = {{ low = 0.01, high = 1.5, log = true }}
[[method]]
name = "nesterov"
target = "course_lib.experiments.methods:nesterov"
[method.space]
step_size = {{ low = 0.01, high = 1.0, log = true }}
"""


def parallel(n: int, rounds: int) -> dict:
    from course_lib.experiments import loads_study, run_study
    from course_lib.experiments.store import strip_timing

    out = {"runs": 20, "gradients_per_run": n, "seconds": {"jobs1": [], "jobs2": []}, "load": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "study.toml"
        path.write_text(_study_text(n))
        study = loads_study(path.read_text(), path)
        results = {}
        for r in range(rounds):
            for jobs in ((1, 2) if r % 2 == 0 else (2, 1)):
                before = _load()
                t = time.perf_counter()
                records = run_study(study, jobs=jobs, out=Path(tmp) / f"r{r}-j{jobs}", report=False)
                dt = time.perf_counter() - t
                out["seconds"][f"jobs{jobs}"].append(dt)
                out["load"].append({"round": r, "jobs": jobs, "before": before, "after": _load()})
                results[jobs] = sorted(json.dumps(strip_timing(x), sort_keys=True) for x in records)
                assert len(records) == 20
                print(f"parallel round {r + 1}/{rounds}: jobs={jobs} {dt:.1f} s  load {_load()}", flush=True)
        assert results[1] == results[2], "jobs=1 and jobs=2 must give the same records"
    med = {k: statistics.median(v) for k, v in out["seconds"].items()}
    out["median_s"] = med
    out["speedup_jobs2"] = med["jobs1"] / med["jobs2"]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks --only experiments", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small runs (smoke test, seconds)")
    parser.add_argument("--gradients", type=int, default=3000, help="gradients per run (about 1 s; default 3000)")
    parser.add_argument("--repeats", type=int, default=7, help="overhead rounds (default 7)")
    parser.add_argument("--rounds", type=int, default=2, help="jobs=1/jobs=2 rounds (default 2)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    args = parser.parse_args(argv)
    n = 200 if args.quick else args.gradients
    repeats, rounds = (2, 1) if args.quick else (args.repeats, args.rounds)
    load_before = _load()
    ov = overhead(n, repeats)
    par = parallel(n, rounds)
    import numpy

    result = {"benchmark": "experiments", "quick": args.quick, "overhead": ov, "parallel": par,
              "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                          "numpy": numpy.__version__, "load_before": load_before, "load_after": _load()},
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    (args.out / f"experiments{suffix}.json").write_text(json.dumps(result, indent=2))
    m, p, mc = ov["median_s"], par["median_s"], ov["median_cpu_s"]
    md = [f"# Experiment harness ({'quick' if args.quick else 'full'} run)", "",
          f"Overhead per run: gradient descent on L2-logistic regression (digits, 1079 x 64), {n} gradients; "
          f"median of {repeats} interleaved rounds.", "",
          "| variant | wall s per run | / direct | CPU s per run | / direct |", "|---|---:|---:|---:|---:|",
          f"| direct call of course_lib.convex.gradient_descent | {m['direct']:.3f} | 1.00 | {mc['direct']:.3f} | 1.00 |",
          f"| harness, metric logged at every gradient (exact time-to-target) | {m['harness_exact']:.3f} | "
          f"{m['harness_exact'] / m['direct']:.2f} | {mc['harness_exact']:.3f} | "
          f"{mc['harness_exact'] / mc['direct']:.2f} |",
          f"| harness, log_every = {n / 100:g} gradients | {m['harness_log_every']:.3f} | "
          f"{m['harness_log_every'] / m['direct']:.2f} | {mc['harness_log_every']:.3f} | "
          f"{mc['harness_log_every'] / mc['direct']:.2f} |", "",
          f"Parallel: 20 runs of {n} gradients through run_study, median of {rounds} round(s).", "",
          "| executor | seconds | speed-up |", "|---|---:|---:|",
          f"| jobs=1 (1 spawned worker) | {p['jobs1']:.1f} | 1.00 |",
          f"| jobs=2 (2 spawned workers) | {p['jobs2']:.1f} | {par['speedup_jobs2']:.2f} |", "",
          f"Load average before/after: {load_before} / {result['machine']['load_after']} on {os.cpu_count()} cores "
          f"(per overhead round: {ov['load_per_round']}). {result['date']}."]
    (args.out / f"experiments{suffix}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
