"""Grading throughput: plain sequential `nbgrader autograde` vs `course autograde --jobs 2`, and the trusted re-scoring cost.

N synthetic hw00 submissions (a seeded mix: the reference solution, the untouched release, and
copies with one answer cell replaced by a stub) are graded twice in fresh course directories:

1. plain nbgrader: `nbgrader autograde hw00_preliminaries` (all students, one process, sequential);
2. the course pipeline: `course autograde hw00_preliminaries --jobs 2` (nbgrader in a sandboxed scratch
   course per submission, then trusted re-scoring, then the merge).

It also times the trusted re-scoring alone on one submission (`run_trusted`) to give the per-submission
overhead. Reported: wall times, seconds per submission, and the ratios course/nbgrader and
trusted-overhead / nbgrader-per-submission. Results: benchmarks/results/grading.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
HW = "hw00_preliminaries"
RESULTS = REPO / "benchmarks" / "results"


def _course(root: Path, n: int, seed: int = 0) -> Path:
    root.mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root)
    shutil.copy(REPO / "grading.toml", root)
    shutil.copytree(REPO / "solutions" / HW, root / "solutions" / HW)
    src = nbformat.read(REPO / "solutions" / HW / f"{HW}.ipynb", 4)
    rel = nbformat.read(REPO / "assignments" / HW / f"{HW}.ipynb", 4)
    rel_by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in rel.cells}
    rng = random.Random(seed)
    for i in range(n):
        kind = rng.choice(["reference", "release", "one-stub"])
        nb = nbformat.from_dict(json.loads(json.dumps(rel if kind == "release" else src)))
        if kind == "one-stub":
            answers = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")
                       and c.cell_type == "code"]
            cell = rng.choice(answers)
            cell.source = rel_by_id[cell.metadata["nbgrader"]["grade_id"]].source
        folder = root / "submitted" / f"student{i:03d}" / HW
        folder.mkdir(parents=True)
        nbformat.write(nb, str(folder / f"{HW}.ipynb"))
    return root


def _env():
    return dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))


def _run(cmd, cwd):
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=_env())
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks --only grading", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100, help="number of synthetic submissions (default 100)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="4 submissions (smoke run)")
    args = parser.parse_args(argv)
    n = 4 if args.quick else args.n
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="course-bench-") as tmp:
        tmp = Path(tmp)
        plain = _course(tmp / "plain", n)
        nbg = [sys.executable, "-m", "nbgrader"]
        _run([*nbg, "generate_assignment", HW, "--force"], plain)
        t_plain = _run([*nbg, "autograde", HW, "--force"], plain)

        ours = _course(tmp / "ours", n)
        _run([sys.executable, "-m", "course_lib.cli", "release", HW], ours)
        t_ours = _run([sys.executable, "-m", "course_lib.cli", "autograde", HW, "--jobs", str(args.jobs)], ours)

        from course_lib.grading.check import run_trusted
        from course_lib.grading.config import load_config

        cfg = load_config(ours, HW)
        sub = ours / "submitted" / "student000" / HW / f"{HW}.ipynb"
        trusted = []
        for _ in range(3):
            start = time.perf_counter()
            run_trusted(str(ours / "solutions" / HW / f"{HW}.ipynb"), {"s": str(sub)}, cfg, timeout=600)
            trusted.append(time.perf_counter() - start)
    t_trusted = sorted(trusted)[1]
    result = {
        "benchmark": "grading", "submissions": n, "jobs": args.jobs,
        "nbgrader_sequential_s": round(t_plain, 2), "course_autograde_s": round(t_ours, 2),
        "nbgrader_s_per_submission": round(t_plain / n, 3), "course_s_per_submission": round(t_ours / n, 3),
        "ratio_course_over_nbgrader": round(t_ours / t_plain, 3),
        "trusted_rescoring_s_per_submission": round(t_trusted, 3),
        "ratio_trusted_over_nbgrader_per_submission": round(t_trusted / (t_plain / n), 3),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "load_before": [round(x, 2) for x in load_before],
                    "load_after": [round(x, 2) for x in os.getloadavg()]},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    (RESULTS / f"grading{suffix}.json").write_text(json.dumps(result, indent=2))
    md = [f"# Grading throughput ({n} synthetic hw00 submissions, {os.cpu_count()} cores)", "",
          "| what | wall time (s) | s / submission | ratio |", "|---|---|---|---|",
          f"| plain `nbgrader autograde` (sequential, untrusted) | {t_plain:.1f} | {t_plain / n:.2f} | 1.00 |",
          f"| `course autograde --jobs {args.jobs}` (sandboxed nbgrader + trusted re-scoring) | {t_ours:.1f} | "
          f"{t_ours / n:.2f} | {t_ours / t_plain:.2f} |",
          f"| trusted re-scoring alone, one submission | {t_trusted:.2f} | {t_trusted:.2f} | "
          f"{t_trusted / (t_plain / n):.2f} x nbgrader's per-submission time |", "",
          f"Load average before/after: {result['machine']['load_before']} / {result['machine']['load_after']}."]
    (RESULTS / f"grading{suffix}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
