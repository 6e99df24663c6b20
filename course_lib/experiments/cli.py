"""``course experiment run STUDY.toml`` and ``course experiment report STUDY.toml``.

``run`` executes (or resumes) a study with a progress bar (count, rate, ETA on a terminal; one
line per finished run otherwise), prints a summary and writes the report; ``report`` rewrites the
report from the stored results. Bad input ends with one line saying what is wrong and what to
try, and exit code 2 (``--debug`` shows the traceback instead).
"""
from __future__ import annotations

import sys
import time
import warnings

__all__ = ["add_parser", "cmd_run", "cmd_report", "Progress", "main"]


class Progress:
    """tqdm bar on a TTY (stderr), else one line per finished run; counts statuses for the summary."""

    def __init__(self, total: int, desc: str, stream=None):
        from tqdm import tqdm

        self.stream = stream or sys.stderr
        self.total, self.n, self.t0 = total, 0, time.perf_counter()
        self.counts = {"ok": 0, "diverged": 0, "failed": 0, "reused": 0}
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar = tqdm(total=total, desc=desc, unit="run", file=self.stream, dynamic_ncols=True) if tty else None

    def __call__(self, rec: dict, reused: bool) -> None:
        self.n += 1
        kind = "reused" if reused else rec["status"]
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{rec['method']}@{rec['workload']} {rec['status']}", refresh=False)
        elif not reused:
            fm = rec.get("final_metric")
            what = f"metric {fm:.4g}" if isinstance(fm, float) else rec.get("message", "")[:80]
            ttt = rec.get("time_to_target")
            wall = rec.get("timing", {}).get("wall_s", 0.0)
            print(f"[{self.n}/{self.total}] {rec['key']}: {rec['status']}, {what}"
                  f"{f', target at {ttt:g}' if ttt is not None else ''} ({wall:.2f} s)", file=self.stream, flush=True)

    def close(self) -> str:
        if self.bar is not None:
            self.bar.close()
        dt = time.perf_counter() - self.t0
        c = self.counts
        computed = c["ok"] + c["diverged"] + c["failed"]
        line = (f"{computed} run(s) computed ({c['ok']} ok, {c['diverged']} diverged, {c['failed']} failed), "
                f"{c['reused']} reused from the store, in {dt:.1f} s")
        return line


def _fail(args, exc) -> int:
    if getattr(args, "debug", False):
        raise exc
    print(f"course experiment: {exc}", file=sys.stderr)
    return 2


def cmd_run(args) -> int:
    from ..validation import CourseError
    from . import load_study, run_study
    from .runner import plan_keys

    try:
        if args.jobs < 0:
            raise CourseError(f"--jobs must be >= 0, got {args.jobs}.")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            study = load_study(args.study)
            from .runner import _check_targets

            _check_targets(study)
        for w in caught:
            print(f"course experiment: warning: {w.message}", file=sys.stderr)
        progress = Progress(plan_keys(study), f"study {study.name}")
        out = args.out or study.default_out()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                run_study(study, jobs=args.jobs, out=out, dask=args.dask, progress=progress, report=False)
        finally:
            summary_line = progress.close()
        print(f"study {study.name}: {summary_line}", file=sys.stderr)
        from .report import report_study

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report_study(study, out=out)
        print(f"report: {out}/report.md")
    except (CourseError, OSError) as exc:
        return _fail(args, exc)
    except KeyboardInterrupt:
        print("course experiment: interrupted; finished runs are stored, rerun the same command to resume.",
              file=sys.stderr)
        return 130
    return 0


def cmd_report(args) -> int:
    from ..validation import CourseError
    from . import load_study, report_study

    try:
        study = load_study(args.study)
        out = args.out or study.default_out()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            summary = report_study(study, out=out)
        from .report import format_table

        print(format_table(summary))
        print(f"\nreport: {out}/report.md")
    except (CourseError, OSError) as exc:
        return _fail(args, exc)
    return 0


def add_parser(sub) -> None:
    """Add the ``experiment`` command group (run, report) to the ``course`` subparsers.

    ``--debug`` works before or after the action (``course --debug experiment run ...`` too).
    """
    import argparse
    p = sub.add_parser("experiment", help="Phase II: run fair-comparison studies (equal budgets, equal tuning, "
                                          "seeds, confidence intervals) and write their reports.",
                       description="Run a study file and write its report (docs/EXPERIMENTS.md).")
    grp = p.add_subparsers(dest="experiment_command", required=True, metavar="ACTION")
    r = grp.add_parser("run", help="run or resume a study, then write its report")
    r.add_argument("study", help="the study file (TOML)")
    r.add_argument("--jobs", type=int, default=1, help="parallel worker processes (default 1; 0 = in this process)")
    r.add_argument("--out", help="results folder (default: results/<study name>/ beside the study file)")
    r.add_argument("--dask", metavar="ADDRESS|local", help="run on Dask distributed: a scheduler address, or "
                                                            "'local' for a LocalCluster with --jobs workers")
    r.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    r.set_defaults(func=cmd_run)
    q = grp.add_parser("report", help="write the report from stored results")
    q.add_argument("study", help="the study file (TOML)")
    q.add_argument("--out", help="results folder (default: results/<study name>/ beside the study file)")
    q.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    q.set_defaults(func=cmd_report)


def main(argv=None) -> int:
    """``python -m course_lib.experiments.cli run|report ...`` (the same as ``course experiment ...``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="course")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["experiment", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
