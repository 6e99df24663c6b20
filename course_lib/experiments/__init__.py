"""Phase II: fair comparisons of optimization methods (the harness behind ``course experiment``).

A study file (TOML) names workloads, methods, search spaces, one budget unit, the tuning protocol
and the seeds; the harness runs it with equal budgets (counted in the oracle), equal tuning
(the same number of seeded trials per method), final runs on common fresh seeds, an append-only
resumable results store, and a report with bootstrap confidence intervals, paired comparisons and
performance profiles. See docs/EXPERIMENTS.md.

    from course_lib.experiments import load_study, run_study, report_study
    study = load_study("study.toml")
    run_study(study, jobs=2)            # results/<name>/runs.jsonl + manifest.json + report.md
    summary = report_study(study)       # the numbers of the report as a dict

Modules: study (file format), oracle (counting oracle, budget), workloads, methods (adapters),
training (the torch loop), tuning (samplers, protocol), runs (one run), runner (executors),
store (JSONL + manifest), stats (bootstrap, paired, profiles), report, cli.
"""
from .oracle import Budget, BudgetExhausted, CountingOracle, Curve, Diverged
from .report import report_study, summarize
from .runner import run_study
from .store import ResultsStore, strip_timing
from .study import Study, StudyError, derive_seed, load_study, loads_study
from .workloads import TorchWorkload, VectorWorkload, Workload

__all__ = ["load_study", "loads_study", "run_study", "report_study", "summarize", "Study", "StudyError",
           "derive_seed", "Budget", "BudgetExhausted", "CountingOracle", "Curve", "Diverged", "ResultsStore",
           "strip_timing", "Workload", "VectorWorkload", "TorchWorkload"]
