"""``course check HW``: is the reference solution graded full marks, and how strong are the hidden tests?

Runs the trusted grader on the source notebook itself (every test cell must pass), then on every
mutant of its answer cells (see :mod:`course_lib.grading.mutation`) and reports, per test cell,
which mutants survive. The mutation score is caught / (all - declared equivalent).
"""
from __future__ import annotations

import functools
import json
import os
import stat
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

from .config import AssignmentConfig, load_config
from .mutation import mutants_of_notebook
from .notebook import meta, read, test_cells

__all__ = ["run_trusted", "check_assignment", "format_report"]


@functools.lru_cache(maxsize=1)
def jobs_root() -> str:
    """The folder of every trusted grading job of this user (one per user and machine, mode 0700).

    Every sandbox -- the student workers and nbgrader's kernels -- has it covered by an empty mount, so no
    submission sees a trusted job's files (hidden tests' source) of this or any other grading process running
    at the same time. Each job's own folder inside it is removed when the job ends.
    """
    root = os.path.join(tempfile.gettempdir(), f"course-trusted-jobs-{os.getuid()}")
    os.makedirs(root, mode=0o700, exist_ok=True)
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise RuntimeError(f"{root} is not a folder of this user's: remove it and grade again")
    os.chmod(root, 0o700)
    return root


def run_trusted(source: str, submissions: dict[str, str], cfg: AssignmentConfig, timeout: float,
                hide=(), readonly=(), mutants: dict[str, str] | None = None, servers=None) -> dict:
    """Grade submissions with the trusted runner; {key: result} (missing keys: failed).

    Args:
        source: the source notebook (hidden tests included).
        submissions: {key: submitted notebook path}.
        cfg: the assignment's grading settings (limits, time-outs, forbidden functions).
        timeout: wall seconds for the whole job.
        hide, readonly: the sandboxed worker's hidden / read-only paths.
        mutants: course check only: {key: the test cell to run first}.
        servers: a :class:`~course_lib.grading.trusted_server.TrustedServerPool`; the job then runs in a
            forked child of a warm trusted runner (a fresh process if none is given or the server fails).
    Returns:
        {key: {"cells": [...], ...}} per submission; a key whose job failed maps to {"error": reason}.
    """
    from .trusted_server import run_fresh

    # the job's folder holds the trusted runner's own files (the job, its results, the test modules with the
    # hidden tests' source); every job's folder is in one root hidden from every student worker (--jobs 2 grades
    # two submissions at once), whose home is made in a folder of its own
    root = jobs_root()
    with tempfile.TemporaryDirectory(prefix="course-job-", dir=root) as tmp, \
            tempfile.TemporaryDirectory(prefix="course-homes-") as homes:
        job = {"source": str(source), "submissions": submissions, "forbidden": cfg.forbidden,
               "limits": {"memory_mb": int(cfg.memory_mb)}, "call_timeout": cfg.timeout_s,
               "load_timeout": cfg.load_timeout_s, "hide": [*(h for h in hide if h != root), root],
               "readonly": list(readonly), "homes": homes}
        if mutants is not None:  # mutation testing: short calls, stop at the first failure, target cell first
            job.update(call_timeout=cfg.mutant_timeout_s, stop_early=True, first=mutants, reuse_worker=True)
        jpath, opath, epath = Path(tmp) / "job.json", Path(tmp) / "out.json", Path(tmp) / "stderr.txt"
        jpath.write_text(json.dumps(job))
        outcome = None  # (exit code, timed out, stderr's tail) of the job
        if servers is not None:
            server = servers.acquire()
            try:
                code, timed_out = server.grade(jpath, opath, epath, timeout)
                outcome = code, timed_out, epath.read_text(errors="replace")[-3000:] if epath.exists() else ""
            except RuntimeError:
                opath.unlink(missing_ok=True)  # a broken server: this job runs again in a fresh process
            finally:
                servers.release(server)
        code, timed_out, stderr = outcome or run_fresh(str(jpath), str(opath), timeout)
        failure = (f"the trusted grader did not finish within {timeout:g} s" if timed_out
                   else (stderr or f"the trusted grader exited with code {code}") if code != 0 else "")
        results = json.loads(opath.read_text()) if opath.exists() and opath.stat().st_size else {}
        if failure:
            for key in submissions:
                results.setdefault(key, {"error": failure})
        return results


def _chunks(items, n):
    n = max(1, min(n, len(items)))
    return [items[i::n] for i in range(n)]


def check_assignment(course_dir, assignment: str, jobs: int = 2, source_dir: str = "solutions",
                     progress=None) -> dict:
    """Grade the reference solution and all its mutants; return the report as a dict.

    ``progress``, if given, is called as ``progress(label, count, total)`` after each batch of mutants.
    """
    course_dir = Path(course_dir)
    cfg = load_config(course_dir, assignment)
    nb_paths = sorted((course_dir / source_dir / assignment).glob("*.ipynb"))
    if not nb_paths:
        raise FileNotFoundError(f"No source notebook in {course_dir / source_dir / assignment}. "
                                f"Known assignments: {sorted(p.name for p in (course_dir / source_dir).iterdir())}")
    report = {"assignment": assignment, "notebooks": []}
    for nb_path in nb_paths:
        nb = read(nb_path)
        cells = test_cells(nb)
        with tempfile.TemporaryDirectory(prefix="course-mutants-") as tmp:
            subs = {"reference": str(nb_path)}
            mutants = mutants_of_notebook(nb)
            by_id = {}
            for idx, m in mutants:
                mnb = nbformat.from_dict(nb)
                mnb.cells[idx].source = m.source
                path = Path(tmp) / f"m{len(by_id)}.ipynb"
                nbformat.write(mnb, str(path))
                subs[m.id] = str(path)
                by_id[m.id] = m
            answer_to_test = _answer_to_test(nb)
            first = {mid: answer_to_test.get(m.cell) for mid, m in by_id.items()}
            results = run_trusted(str(nb_path), {"reference": subs["reference"]}, cfg, timeout=600)
            keys = [k for k in subs if k != "reference"]
            with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
                futures = [pool.submit(run_trusted, str(nb_path), {k: subs[k] for k in chunk}, cfg,
                                       timeout=120 + (10 + 2 * cfg.mutant_timeout_s) * len(chunk),
                                       mutants={k: first[k] for k in chunk})
                           for chunk in _chunks(keys, jobs)]
                for f in futures:
                    results.update(f.result())
                    if progress:
                        progress(f"{nb_path.stem} mutants", len(f.result()), len(keys))
        ref = results.get("reference", {})
        baseline = {c["grade_id"]: c for c in ref.get("cells", [])}
        ref_ok = bool(baseline) and all(c["passed"] for c in baseline.values()) and not ref.get("error")
        per_cell = {c.grade_id: {"points": c.points, "mutants": 0, "caught": 0, "survivors": []} for c in cells}
        caught = survived = equivalent = 0
        survivors, ungraded = [], []
        for mid, m in by_id.items():
            res = results.get(mid, {})
            if mid in cfg.equivalent_mutants:
                equivalent += 1
                continue
            if "cells" not in res:  # the trusted runner itself failed or ran out of time: unknown, not "caught"
                ungraded.append({"id": mid, "error": str(res.get("error", "no result"))[-300:]})
                continue
            failed_cells = [c["grade_id"] for c in res["cells"] if not c["passed"]]
            is_caught = bool(failed_cells)
            target = answer_to_test.get(m.cell)
            if target in per_cell:
                per_cell[target]["mutants"] += 1
                per_cell[target]["caught"] += int(is_caught)
                if not is_caught:
                    per_cell[target]["survivors"].append(mid)
            if is_caught:
                caught += 1
            else:
                survived += 1
                survivors.append({"id": mid, "cell": m.cell, "line": m.line, "operator": m.operator,
                                  "original": m.original, "mutated": m.mutated})
        total = caught + survived
        report["notebooks"].append({
            "notebook": nb_path.name, "reference_passes": ref_ok,
            "reference_failures": [{"cell": c["grade_id"], "error": c["error"],
                                    "tests": [t for t in c["tests"] if not t["passed"]]}
                                   for c in baseline.values() if not c["passed"]] or ref.get("error", ""),
            "mutants": total, "caught": caught, "equivalent": equivalent,
            "score": caught / total if total else 1.0, "per_cell": per_cell, "survivors": survivors,
            "ungraded": ungraded,
        })
    scores = [n["score"] for n in report["notebooks"]]
    report["score"] = min(scores) if scores else 0.0
    report["min_score"] = cfg.min_mutation_score
    report["ok"] = (all(n["reference_passes"] and not n["ungraded"] for n in report["notebooks"])
                    and report["score"] >= cfg.min_mutation_score)
    return report


def _answer_to_test(nb) -> dict[str, str]:
    """Map each answer cell's grade_id to the first test cell after it (the cell that grades it)."""
    out, pending = {}, []
    for cell in nb.cells:
        m = meta(cell)
        if cell.get("cell_type") == "code" and m.get("solution"):
            pending.append(m.get("grade_id"))
        elif cell.get("cell_type") == "code" and m.get("grade") and not m.get("solution"):
            for gid in pending:
                out[gid] = m.get("grade_id")
            pending = []
    return out


def format_report(report: dict) -> str:
    """The report as text an instructor can act on."""
    lines = [f"Test strength of {report['assignment']} (mutation testing of the reference solution)"]
    for nb in report["notebooks"]:
        lines.append(f"\n{nb['notebook']}: reference solution "
                     f"{'passes every test cell' if nb['reference_passes'] else 'FAILS its own tests'}")
        if not nb["reference_passes"]:
            lines.append(f"  {json.dumps(nb['reference_failures'], indent=2)[:3000]}")
        lines.append(f"  mutants caught: {nb['caught']}/{nb['mutants']} = {100 * nb['score']:.1f}% "
                     f"({nb['equivalent']} declared equivalent in grading.toml)")
        lines.append(f"  {'test cell':<28} {'points':>6} {'caught':>10}")
        for gid, c in nb["per_cell"].items():
            lines.append(f"  {gid:<28} {c['points']:>6g} {c['caught']:>4}/{c['mutants']:<5}")
        if nb["ungraded"]:
            lines.append(f"  {len(nb['ungraded'])} mutants could not be graded (runner failure or time-out), e.g. "
                         f"{nb['ungraded'][0]}")
        if nb["survivors"]:
            lines.append("  Surviving mutants (the tests pass although the code is wrong -- add a test that "
                         "catches each, or declare it equivalent in grading.toml with a reason):")
            for s in nb["survivors"]:
                lines.append(f"    {s['id']}\n      line {s['line']}: {s['original']}\n      mutated part: {s['mutated']}")
    verdict = "OK" if report["ok"] else "NOT OK"
    lines.append(f"\n{verdict}: score {100 * report['score']:.1f}% (required {100 * report['min_score']:.0f}%)")
    return "\n".join(lines)
