"""One full-batch gradient-descent iteration on L2-logistic regression: course_lib vs NumPy vs torch vs bandwidth.

One GD step w <- w - eta * grad f(w) with
    grad f(w) = -(1/n) X^T (y * sigma(-y * Xw)) + lam w
reads the (n, d) matrix X twice (X w, then X^T r) and does O(n + d) other work, so on a CPU it is
memory-bound: the floor is the time to stream 2 * n * d * 8 bytes at the machine's memory bandwidth.

Variants, all float64, all starting from the same w and checked to give the same next iterate:
  (a) course_lib        ``w - eta * problem.grad(w)`` with ``LogisticRegression`` on NumPy
  (b) numpy_loop        the textbook few lines of NumPy
  (c) course_lib_torch  (a) with the problem moved to torch (CPU) -- the same code, the torch backend
  (d) torch_plain       the textbook few lines of torch
The variants are timed in interleaved rounds (a, b, c, d, a, b, ...) so that load from other processes
affects all of them alike; the median over rounds is reported.
Bandwidth is measured three ways on an array as large as X (single-thread NumPy sum, NumPy copy,
multi-threaded torch sum); the fastest read rate is used for the bound (the most demanding floor).

Usage: ``python -m benchmarks --only gd_logistic [--quick] [--repeats R] [--out DIR]``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks._readme import update_readme

RESULTS = Path(__file__).resolve().parent / "results"
README = Path(__file__).resolve().parent / "README.md"
BEGIN, END = "<!-- BEGIN gd_logistic results -->", "<!-- END gd_logistic results -->"


def _median_time(step, repeats: int, warmup: int = 1) -> tuple[float, list[float]]:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def measure_bandwidth(nbytes: int, repeats: int) -> dict:
    """Memory read bandwidth in GB/s (1e9 bytes/s), measured on arrays of ``nbytes``.

    * numpy_sum: ``a.sum()`` over a float64 array (reads it once; NumPy uses one thread);
    * numpy_copy: ``np.copyto(b, a)`` (reads a, writes b: counted as 2 * nbytes moved);
    * torch_sum: ``torch.sum`` over the same memory (reads it once, with torch's intra-op threads).
    """
    import torch

    a = np.random.default_rng(0).standard_normal(nbytes // 8)
    b = np.empty_like(a)
    ta = torch.from_numpy(a)
    out = {}
    t, _ = _median_time(lambda: a.sum(), repeats)
    out["numpy_sum"] = a.nbytes / t / 1e9
    t, _ = _median_time(lambda: np.copyto(b, a), repeats)
    out["numpy_copy"] = 2 * a.nbytes / t / 1e9
    t, _ = _median_time(lambda: torch.sum(ta), repeats)
    out["torch_sum"] = a.nbytes / t / 1e9
    out["used"] = max(out["numpy_sum"], out["numpy_copy"], out["torch_sum"])
    return out


def machine_info() -> dict:
    import torch
    import threadpoolctl

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = [{k: p.get(k) for k in ("internal_api", "version", "num_threads", "threading_layer", "architecture")}
            for p in threadpoolctl.threadpool_info() if p.get("user_api") == "blas"]
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):
        mem_gb = None
    return {
        "cpu": cpu, "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": mem_gb, "python": platform.python_version(), "numpy": np.__version__,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "blas": blas,
        "platform": platform.platform(),
    }


def run(n: int, d: int, repeats: int, lam: float = 1e-3, seed: int = 0) -> dict:
    import torch

    from course_lib.datasets import make_classification
    from course_lib.problems import LogisticRegression

    load_before = os.getloadavg()
    X, y, _ = make_classification(n=n, dim=d, seed=seed, flip=0.05)  # NumPy, float64, C-contiguous
    problem = LogisticRegression(X, y, lam=lam)
    eta = 1.0 / problem.L
    w0 = 0.01 * np.random.default_rng(seed + 1).standard_normal(d)

    # (a) through course_lib, NumPy backend
    state = {"w": w0.copy()}

    def course_lib_step():
        state["w"] = state["w"] - eta * problem.grad(state["w"])

    # (b) the textbook NumPy loop
    Xn, yn = problem.X, problem.y
    state_b = {"w": w0.copy()}

    def numpy_step():
        w = state_b["w"]
        m = yn * (Xn @ w)
        with np.errstate(over="ignore"):
            s = 1.0 / (1.0 + np.exp(m))  # sigma(-m)
        g = -(Xn.T @ (yn * s)) / n + lam * w
        state_b["w"] = w - eta * g

    # (c) course_lib with the torch backend (CPU): the same code path
    problem_t = problem.to("torch")
    state_c = {"w": torch.from_numpy(w0.copy())}

    def course_lib_torch_step():
        state_c["w"] = state_c["w"] - eta * problem_t.grad(state_c["w"])

    # (d) plain torch
    Xt, yt = problem_t.X, problem_t.y
    state_d = {"w": torch.from_numpy(w0.copy())}

    def torch_step():
        w = state_d["w"]
        m = yt * (Xt @ w)
        g = -(Xt.T @ (yt * torch.sigmoid(-m))) / n + lam * w
        state_d["w"] = w - eta * g

    # the four variants compute the same iterate (one step from w0)
    steps = {"course_lib": (course_lib_step, state), "numpy_loop": (numpy_step, state_b),
             "course_lib_torch": (course_lib_torch_step, state_c), "torch_plain": (torch_step, state_d)}
    one_step = {}
    for name, (step, st) in steps.items():
        step()
        one_step[name] = np.asarray(st["w"], dtype=float).copy()
        st["w"] = w0.copy() if isinstance(st["w"], np.ndarray) else torch.from_numpy(w0.copy())
    ref = one_step["numpy_loop"]
    agreement = {k: float(np.max(np.abs(v - ref)) / np.max(np.abs(ref))) for k, v in one_step.items()}

    # interleaved rounds (a, b, c, d, a, b, ...): load from other processes hits every variant alike
    samples = {name: [] for name in steps}
    cpu_samples = {name: [] for name in steps}  # this process's CPU time: what other processes' load inflates least
    for _ in range(repeats):
        for name, (step, _) in steps.items():
            t0, c0 = time.perf_counter(), time.process_time()
            step()
            cpu_samples[name].append(time.process_time() - c0)
            samples[name].append(time.perf_counter() - t0)
    times = {name: statistics.median(v) for name, v in samples.items()}
    cpu = {name: statistics.median(v) for name, v in cpu_samples.items()}

    bw = measure_bandwidth(X.nbytes, max(3, repeats))
    bound = 2 * X.nbytes / (bw["used"] * 1e9)
    ratios = {
        "course_lib / numpy_loop": times["course_lib"] / times["numpy_loop"],
        "course_lib_torch / torch_plain": times["course_lib_torch"] / times["torch_plain"],
        "torch_plain / numpy_loop": times["torch_plain"] / times["numpy_loop"],
        "course_lib_torch / course_lib": times["course_lib_torch"] / times["course_lib"],
    }
    ratios.update({f"{k} / bandwidth_bound": t / bound for k, t in times.items()})
    return {
        "benchmark": "gd_logistic",
        "what": "one full-batch GD iteration w <- w - eta * grad f(w), L2-logistic regression, float64",
        "n": n, "d": d, "lam": lam, "seed": seed, "repeats": repeats, "statistic": "median",
        "X_bytes": X.nbytes,
        "seconds": times, "samples": samples,
        "seconds_min": {k: min(v) for k, v in samples.items()},  # less sensitive to other load than the median
        "cpu_seconds": cpu, "cpu_samples": cpu_samples,
        "cpu_ratios": {"course_lib / numpy_loop": cpu["course_lib"] / cpu["numpy_loop"],
                       "course_lib_torch / torch_plain": cpu["course_lib_torch"] / cpu["torch_plain"]},
        "bandwidth_GBps": bw, "bandwidth_bound_seconds": bound,
        "bandwidth_bound_note": "2 * X.nbytes / max(measured read bandwidths): reading X twice (X w, X^T r)",
        "ratios": ratios,
        "agreement_rel_max_diff_vs_numpy_loop": agreement,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "machine": machine_info(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def to_markdown(r: dict) -> str:
    m = r["machine"]
    blas = ", ".join(f"{b['internal_api']} {b['version']} ({b['num_threads']} threads)" for b in m["blas"]) or "?"
    t, bound = r["seconds"], r["bandwidth_bound_seconds"]
    rows = [("(a) course_lib, NumPy backend", "course_lib"), ("(b) hand-written NumPy loop", "numpy_loop"),
            ("(c) course_lib, torch CPU backend", "course_lib_torch"), ("(d) plain torch CPU", "torch_plain")]
    lines = [
        f"One full-batch GD iteration on L2-logistic regression, n = {r['n']}, d = {r['d']}, float64 "
        f"(X is {r['X_bytes'] / 1e9:.2f} GB); median of {r['repeats']} runs.",
        "",
        "| variant | time per iteration | / NumPy loop | / bandwidth bound |",
        "|---|---:|---:|---:|",
    ]
    for label, key in rows:
        lines.append(f"| {label} | {t[key] * 1e3:.1f} ms | {t[key] / t['numpy_loop']:.2f} | {t[key] / bound:.2f} |")
    lines.append(f"| memory-bandwidth bound (read X twice at {r['bandwidth_GBps']['used']:.1f} GB/s) | "
                 f"{bound * 1e3:.1f} ms | {bound / t['numpy_loop']:.2f} | 1.00 |")
    rt = r["ratios"]
    bw = r["bandwidth_GBps"]
    lines += [
        "",
        f"Ratios: course_lib / NumPy loop = **{rt['course_lib / numpy_loop']:.2f}**, "
        f"course_lib torch / plain torch = **{rt['course_lib_torch / torch_plain']:.2f}**, "
        f"torch / NumPy = **{rt['torch_plain / numpy_loop']:.2f}**, "
        f"NumPy loop / bandwidth bound = **{rt['numpy_loop / bandwidth_bound']:.2f}**. In CPU time of the process "
        f"(less sensitive to other processes' load): course_lib / NumPy loop = "
        f"{r['cpu_ratios']['course_lib / numpy_loop']:.2f}, course_lib torch / plain torch = "
        f"{r['cpu_ratios']['course_lib_torch / torch_plain']:.2f}.",
        "",
        f"Bandwidth (GB/s): NumPy sum {bw['numpy_sum']:.1f} (1 thread), NumPy copy {bw['numpy_copy']:.1f} "
        f"(read + write counted), torch sum {bw['torch_sum']:.1f} ({m['torch_threads']} threads); the bound uses the "
        "fastest. All four variants give the same iterate (max relative difference "
        f"{max(r['agreement_rel_max_diff_vs_numpy_loop'].values()):.1e}).",
        "",
        f"Machine: {m['cpu']}, {m['cores_usable']} usable cores, "
        f"{m['memory_gb']:.0f} GB RAM; NumPy {m['numpy']} ({blas}); torch {m['torch']} "
        f"({m['torch_threads']} threads); Python {m['python']}. Load average before/after: "
        f"{', '.join(f'{v:.2f}' for v in r['load_average_before'])} / "
        f"{', '.join(f'{v:.2f}' for v in r['load_average_after'])}. {r['date']}.",
    ]
    return "\n".join(lines) + "\n"


def _update_readme(md: str) -> None:
    update_readme("gd_logistic", md, README)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks --only gd_logistic", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small problem (n=20000, d=100) for a smoke run")
    parser.add_argument("--n", type=int, default=None, help="rows of X (default 200000; 20000 with --quick)")
    parser.add_argument("--d", type=int, default=None, help="columns of X (default 500; 100 with --quick)")
    parser.add_argument("--repeats", type=int, default=None, help="timed iterations per variant (default 21; 3 quick)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results)")
    args = parser.parse_args(argv)
    n = args.n or (20_000 if args.quick else 200_000)
    d = args.d or (100 if args.quick else 500)
    repeats = args.repeats or (3 if args.quick else 21)
    result = run(n, d, repeats)
    result["quick"] = bool(args.quick)
    out = args.out or RESULTS
    out.mkdir(parents=True, exist_ok=True)
    stem = "gd_logistic_quick" if args.quick else "gd_logistic"
    md = to_markdown(result)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{stem}.md").write_text(f"# gd_logistic{' (quick)' if args.quick else ''}\n\n{md}")
    if not args.quick and args.out is None:
        _update_readme(md)
    print(md)
    print(f"wrote {out / (stem + '.json')} and {out / (stem + '.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
