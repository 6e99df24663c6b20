"""Per-iteration overhead on a tiny problem: course_lib's gradient_descent (Trace on) vs a bare NumPy loop.

On a 2-D quadratic f(x) = 1/2 x^T A x - b^T x every array operation takes well under a microsecond,
so the time per iteration is Python overhead: the library's problem methods, the Recorder (Trace) and
the loop. Variants, both float64 from the same x0 with t = 1/L, checked to give the same iterates:

  (a) course_lib   ``course_lib.convex.gradient_descent(Quadratic(A, b), x0, step_size=1/L, max_iter=K)``
                   -- the Trace records f(x_k), ||grad f(x_k)||, oracle calls, time and (dim <= 10) x_k;
  (b) numpy_loop   the bare loop that records the same things: ``x = x - t * g; f[k] = 0.5 * x @ (A @ x) - b @ x;
                   g = A @ x - b; gn[k] = sqrt(g @ g); xs[k] = x`` into preallocated arrays.

Timed in interleaved rounds (a, b, a, b, ...); reported: the median time per iteration, both wall-clock
and the process's CPU time (the CPU time is the fairer measure on a loaded machine: other processes'
load inflates wall time, not the CPU time of this one), and the ratio (a) / (b).

Usage: ``python -m benchmarks --only gd_tiny [--quick] [--iters K] [--repeats R] [--out DIR]``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks._readme import update_readme

RESULTS = Path(__file__).resolve().parent / "results"


def _problem():
    from course_lib.problems import Quadratic

    A = np.array([[3.0, 1.0], [1.0, 2.0]])
    b = np.array([1.0, -1.0])
    return Quadratic(A, b), A, b


def numpy_loop(A, b, x0, t: float, iters: int):
    """The bare loop: GD steps recording f, ||grad|| and x per iteration (what the Trace keeps)."""
    x = x0.copy()
    f, gn, xs = np.empty(iters + 1), np.empty(iters + 1), np.empty((iters + 1, x0.size))
    g = A @ x - b
    f[0], gn[0], xs[0] = 0.5 * x @ (A @ x) - b @ x, math.sqrt(g @ g), x
    for k in range(1, iters + 1):
        x = x - t * g
        f[k] = 0.5 * x @ (A @ x) - b @ x
        g = A @ x - b
        gn[k] = math.sqrt(g @ g)
        xs[k] = x
    return x, f, gn, xs


def run(iters: int, repeats: int) -> dict:
    from course_lib.convex import gradient_descent

    load_before = os.getloadavg()
    problem, A, b = _problem()
    x0 = np.array([5.0, -3.0])
    t = 1.0 / problem.L
    trace = gradient_descent(problem, x0, step_size=t, max_iter=iters)
    _, f, gn, xs = numpy_loop(A, b, x0, t, iters)
    agreement = {"f": float(np.max(np.abs(trace.f - f))), "grad_norm": float(np.max(np.abs(trace.grad_norm - gn))),
                 "x": float(np.max(np.abs(trace.x - xs)))}
    steps = {"course_lib": lambda: gradient_descent(problem, x0, step_size=t, max_iter=iters),
             "numpy_loop": lambda: numpy_loop(A, b, x0, t, iters)}
    wall = {k: [] for k in steps}
    cpu = {k: [] for k in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            w0, c0 = time.perf_counter(), time.process_time()
            step()
            cpu[name].append((time.process_time() - c0) / iters)
            wall[name].append((time.perf_counter() - w0) / iters)
    med_wall = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    return {
        "benchmark": "gd_tiny", "dim": 2, "iters": iters, "repeats": repeats,
        "us_per_iter_wall": {k: round(v * 1e6, 3) for k, v in med_wall.items()},
        "us_per_iter_cpu": {k: round(v * 1e6, 3) for k, v in med_cpu.items()},
        "ratio_cpu": round(med_cpu["course_lib"] / med_cpu["numpy_loop"], 3),
        "ratio_wall": round(med_wall["course_lib"] / med_wall["numpy_loop"], 3),
        "agreement_max_abs_diff": agreement,
        "samples_us_wall": {k: [round(x * 1e6, 3) for x in v] for k, v in wall.items()},
        "samples_us_cpu": {k: [round(x * 1e6, 3) for x in v] for k, v in cpu.items()},
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "numpy": np.__version__,
                    "load_before": [round(x, 2) for x in load_before],
                    "load_after": [round(x, 2) for x in os.getloadavg()]},
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


def to_markdown(r: dict) -> str:
    w, c = r["us_per_iter_wall"], r["us_per_iter_cpu"]
    m = r["machine"]
    return "\n".join([
        f"GD on a 2-D quadratic, {r['iters']} iterations per run, median of {r['repeats']} interleaved runs.", "",
        "| variant | CPU time per iteration | wall time per iteration |", "|---|---:|---:|",
        f"| (a) course_lib `gradient_descent`, Trace on | {c['course_lib']:.2f} us | {w['course_lib']:.2f} us |",
        f"| (b) bare NumPy loop recording the same | {c['numpy_loop']:.2f} us | {w['numpy_loop']:.2f} us |", "",
        f"Ratio course_lib / NumPy loop: **{r['ratio_cpu']:.2f}** (CPU time), {r['ratio_wall']:.2f} (wall). "
        f"Same iterates: max |diff| f {r['agreement_max_abs_diff']['f']:.1e}, x {r['agreement_max_abs_diff']['x']:.1e}.",
        "", f"Python {m['python']}, NumPy {m['numpy']}, {m['cores']} cores. Load average before/after: "
        f"{', '.join(map(str, m['load_before']))} / {', '.join(map(str, m['load_after']))}. {r['date']}."])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks --only gd_tiny", description=__doc__.split("\n")[0])
    parser.add_argument("--iters", type=int, default=20000, help="GD iterations per run (default 20000)")
    parser.add_argument("--repeats", type=int, default=21, help="interleaved runs per variant (default 21)")
    parser.add_argument("--quick", action="store_true", help="2000 iterations, 3 runs (smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results")
    args = parser.parse_args(argv)
    iters, repeats = (2000, 3) if args.quick else (args.iters, args.repeats)
    r = run(iters, repeats)
    r["quick"] = args.quick
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    (args.out / f"gd_tiny{suffix}.json").write_text(json.dumps(r, indent=2))
    md = to_markdown(r)
    (args.out / f"gd_tiny{suffix}.md").write_text(md + "\n")
    if not args.quick and args.out == RESULTS:
        update_readme("gd_tiny", md)
    print(md)
    return 0
