"""Grading throughput: plain sequential `nbgrader autograde` vs `course autograde --jobs 1` and `--jobs 2`.

N synthetic hw00 submissions (a seeded mix: the reference solution, the untouched release, and
copies with one answer cell replaced by a stub) are graded in fresh course directories by

1. plain nbgrader: `nbgrader autograde hw00_preliminaries` (all students, one process, sequential, untrusted);
2. the course pipeline, `course autograde hw00_preliminaries --jobs 1` (sandboxed nbgrader per submission in a
   warm fork server, then trusted re-scoring, then the merge);
3. the same with `--jobs 2`.

The submissions are split into `--rounds` rounds; in each round the three variants grade their own fresh
copies of that round's submissions, in a rotating order, so that load from other processes hits all three
alike (each variant pays its fixed start-up once per round). The scores of (2) and (3) must equal each
other and, on these honest submissions, plain nbgrader's. It also times the trusted re-scoring alone on one
submission (`run_trusted`). Reported: wall times, seconds per submission, the ratios course/nbgrader and
jobs1/jobs2, the machine's busy CPU seconds and the cores each variant kept busy, the host's steal, the load
average around each variant. Results: benchmarks/results/grading.{json,md}.
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

from benchmarks._readme import update_readme

REPO = Path(__file__).resolve().parents[1]
HW = "hw00_preliminaries"
RESULTS = REPO / "benchmarks" / "results"
VARIANTS = ("nbgrader", "course_jobs1", "course_jobs2")


def _course(root: Path, n: int, seed: int = 0, first: int = 0) -> Path:
    root.mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root)
    shutil.copy(REPO / "grading.toml", root)
    shutil.copytree(REPO / "solutions" / HW, root / "solutions" / HW)
    src = nbformat.read(REPO / "solutions" / HW / f"{HW}.ipynb", 4)
    rel = nbformat.read(REPO / "assignments" / HW / f"{HW}.ipynb", 4)
    rel_by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in rel.cells}
    rng = random.Random(seed)
    for i in range(first + n):
        kind = rng.choice(["reference", "release", "one-stub"])
        nb = nbformat.from_dict(json.loads(json.dumps(rel if kind == "release" else src)))
        if kind == "one-stub":
            answers = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")
                       and c.cell_type == "code"]
            cell = rng.choice(answers)
            cell.source = rel_by_id[cell.metadata["nbgrader"]["grade_id"]].source
        if i < first:
            continue
        folder = root / "submitted" / f"student{i:03d}" / HW
        folder.mkdir(parents=True)
        nbformat.write(nb, str(folder / f"{HW}.ipynb"))
    return root


def _env():
    return dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))


def _counters() -> tuple[float, float, float]:
    """(wall clock, the machine's busy CPU seconds so far, its steal seconds so far), from ``/proc/stat``.

    Busy is all CPU time but idle and iowait, whoever used it (the benchmark wants a quiet machine; the
    sandboxed processes' own accounting does not reach this process: their PID namespaces' inits are
    killed, not reaped). Steal is the time the hypervisor ran other guests on this VM's CPUs. Both 0
    where there is no ``/proc/stat``.
    """
    try:
        with open("/proc/stat") as fh:
            ticks = [int(x) for x in fh.readline().split()[1:9]]
        tick = os.sysconf("SC_CLK_TCK")
        busy, steal = (sum(ticks[:7]) - ticks[3] - ticks[4]) / tick, ticks[7] / tick
    except (OSError, ValueError):
        busy = steal = 0.0
    return time.perf_counter(), busy, steal


def _run(cmd, cwd) -> dict:
    """Run ``cmd``; its wall seconds, the machine's busy CPU seconds meanwhile, and the steal meanwhile."""
    start = _counters()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=_env())
    end = _counters()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return {"seconds": end[0] - start[0], "cpu_s": end[1] - start[1], "steal_s": end[2] - start[2]}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _plain_scores(course: Path) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {s.student.id: float(s.score) for s in gb.assignment_submissions(HW)}


def _course_scores(course: Path) -> dict[str, float]:
    return {p.parents[1].name: float(json.loads(p.read_text())["score"])
            for p in (course / "autograded").glob(f"*/{HW}/.course_graded.json")}


def _grade(variant: str, course: Path) -> tuple[dict, dict[str, float]]:
    """The times of one variant on one course directory (:func:`_run`), and the scores it gave."""
    if variant == "nbgrader":
        _run([sys.executable, "-m", "nbgrader", "generate_assignment", HW, "--force"], course)
        return _run([sys.executable, "-m", "nbgrader", "autograde", HW, "--force"], course), _plain_scores(course)
    _run([sys.executable, "-m", "course_lib.cli", "release", HW], course)
    jobs = variant[-1]
    return _run([sys.executable, "-m", "course_lib.cli", "autograde", HW, "--jobs", jobs], course), \
        _course_scores(course)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks --only grading", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100, help="number of synthetic submissions (default 100)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    parser.add_argument("--quick", action="store_true", help="4 submissions, one round (smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results")
    args = parser.parse_args(argv)
    n, rounds = (4, 1) if args.quick else (args.n, max(1, min(args.rounds, args.n)))
    sizes = [n // rounds + (1 if r < n % rounds else 0) for r in range(rounds)]
    wall = {v: 0.0 for v in VARIANTS}
    cpu = {v: 0.0 for v in VARIANTS}
    steal = {v: 0.0 for v in VARIANTS}
    scores: dict[str, dict[str, float]] = {v: {} for v in VARIANTS}
    loads = []
    load_before = _load()
    with tempfile.TemporaryDirectory(prefix="course-bench-") as tmp:
        tmp = Path(tmp)
        first = 0
        for r, size in enumerate(sizes):
            order = VARIANTS[r % 3:] + VARIANTS[:r % 3]
            for variant in order:
                course = _course(tmp / f"{variant}-{r}", size, first=first)
                before = _load()
                times, got = _grade(variant, course)
                t = times["seconds"]
                wall[variant] += t
                cpu[variant] += times["cpu_s"]
                steal[variant] += times["steal_s"]
                scores[variant].update(got)
                loads.append({"round": r, "variant": variant, "submissions": size, "seconds": round(t, 2),
                              "cpu_s": round(times["cpu_s"], 2), "cores_busy": round(times["cpu_s"] / t, 2),
                              "steal_s": round(times["steal_s"], 2), "load_before": before, "load_after": _load()})
                print(f"round {r + 1}/{rounds} {variant:<13} {size} submissions {t:7.1f} s  "
                      f"{times['cpu_s'] / t:.2f} cores busy, steal {times['steal_s']:.1f} s  load {_load()}",
                      flush=True)
            first += size

        from course_lib.grading.check import run_trusted
        from course_lib.grading.config import load_config

        ours = tmp / "course_jobs1-0"
        cfg = load_config(ours, HW)
        sub = next((ours / "submitted").glob(f"*/{HW}/{HW}.ipynb"))
        from course_lib.grading.trusted_server import TrustedServerPool

        trusted, warm = [], []
        with TrustedServerPool() as servers:
            servers.warm(1)
            for i in range(6):  # alternately: a fresh trusted process, a fork of the warm runner autograde uses
                start = time.perf_counter()
                run_trusted(str(ours / "solutions" / HW / f"{HW}.ipynb"), {"s": str(sub)}, cfg, timeout=600,
                            servers=servers if i % 2 else None)
                (warm if i % 2 else trusted).append(time.perf_counter() - start)
    t_trusted, t_warm = sorted(trusted)[1], sorted(warm)[1]
    per = {v: wall[v] / n for v in VARIANTS}
    disagree = sorted(s for s in scores["nbgrader"]
                      if not (scores["nbgrader"][s] == scores["course_jobs1"].get(s) == scores["course_jobs2"].get(s)))
    result = {
        "benchmark": "grading", "submissions": n, "rounds": rounds, "quick": args.quick,
        "wall_s": {v: round(wall[v], 2) for v in VARIANTS},
        "s_per_submission": {v: round(per[v], 3) for v in VARIANTS},
        "cpu_s_per_submission": {v: round(cpu[v] / n, 3) for v in VARIANTS},
        "cores_busy": {v: round(cpu[v] / wall[v], 2) for v in VARIANTS},
        "steal_s": {v: round(steal[v], 2) for v in VARIANTS},
        "ratios": {"course_jobs1 / nbgrader": round(per["course_jobs1"] / per["nbgrader"], 3),
                   "course_jobs2 / nbgrader": round(per["course_jobs2"] / per["nbgrader"], 3),
                   "speed-up jobs2 over jobs1": round(per["course_jobs1"] / per["course_jobs2"], 3)},
        "trusted_rescoring_s_one_submission": round(t_trusted, 3),
        "trusted_rescoring_s_one_submission_warm_runner": round(t_warm, 3),
        "scores_disagreeing_with_plain_nbgrader": disagree,
        "runs": loads,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "load_before": load_before, "load_after": _load()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    (args.out / f"grading{suffix}.json").write_text(json.dumps(result, indent=2))
    rat = result["ratios"]
    per_run = ", ".join(f"{x['variant']} {x['load_before'][0]}" for x in loads)
    md = [f"# Grading throughput ({n} synthetic hw00 submissions, {rounds} interleaved round(s), "
          f"{os.cpu_count()} cores)", "",
          "| what | wall time (s) | s / submission | / plain nbgrader |", "|---|---:|---:|---:|",
          f"| plain `nbgrader autograde` (sequential, untrusted) | {wall['nbgrader']:.1f} | {per['nbgrader']:.2f} | 1.00 |",
          f"| `course autograde --jobs 1` (sandboxed nbgrader + trusted re-scoring) | {wall['course_jobs1']:.1f} | "
          f"{per['course_jobs1']:.2f} | {rat['course_jobs1 / nbgrader']:.2f} |",
          f"| `course autograde --jobs 2` | {wall['course_jobs2']:.1f} | {per['course_jobs2']:.2f} | "
          f"{rat['course_jobs2 / nbgrader']:.2f} |",
          f"| trusted re-scoring alone, one submission, fresh process | {t_trusted:.2f} | {t_trusted:.2f} | "
          f"{t_trusted / per['nbgrader']:.2f} |",
          f"| same, forked from the warm trusted runner (what `course autograde` does) | {t_warm:.2f} | {t_warm:.2f} | "
          f"{t_warm / per['nbgrader']:.2f} |", "",
          f"`--jobs 2` is **{rat['speed-up jobs2 over jobs1']:.2f}x** faster than `--jobs 1`; "
          f"`--jobs 1` / plain nbgrader = **{rat['course_jobs1 / nbgrader']:.2f}**. "
          f"Scores differing from plain nbgrader's: {len(disagree)} of {n}{' ' + str(disagree[:5]) if disagree else ''}.",
          "", "The machine's busy CPU seconds per submission and the cores kept busy on average: "
          + ", ".join(f"{v} {cpu[v] / n:.2f} s ({cpu[v] / wall[v]:.2f} cores)" for v in VARIANTS)
          + "; CPU time the host took for other guests meanwhile (steal): "
          + ", ".join(f"{v} {steal[v]:.1f} s" for v in VARIANTS) + ".",
          "", f"Load average before/after: {load_before} / {result['machine']['load_after']} "
          f"(1-min load at the start of each run: {per_run}). {result['date']}."]
    (args.out / f"grading{suffix}.md").write_text("\n".join(md) + "\n")
    if not args.quick and args.out == RESULTS:
        update_readme("grading", "\n".join(md[2:]))  # the table and its notes, without the title
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
