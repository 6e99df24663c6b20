"""One run = (workload, method, configuration, seed, phase): build it, execute it, return a plain record.

:func:`execute` is what a worker process (local or Dask) calls. It takes and returns JSON-ready
dicts only, never raises for a bad run: a method that raises is recorded ``"failed"`` (with the
exception's one-line message), one that diverges (NaN/inf or a blown-up metric, or course_lib's
DivergenceError) ``"diverged"``. A run that spends its whole budget, or returns earlier, is
``"ok"``; ``reached`` says whether it hit the target (``time_to_target`` is None when censored).

Inside the worker torch uses one thread and deterministic algorithms, so a rerun on the same
machine and backend gives bit-identical records (everything but the ``timing`` field).
"""
from __future__ import annotations

import math
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager

import numpy as np

from ..validation import CourseError, DivergenceError
from .methods import resolve
from .oracle import Budget, BudgetExhausted, CountingOracle, Curve, Diverged

__all__ = ["execute", "build_workload", "MAX_CURVE_POINTS"]

MAX_CURVE_POINTS = 400
_CACHE: dict = {}


class RunTimeout(BaseException):
    """The run took longer than ``[study] run_timeout`` (a BaseException, so a method's ``except Exception`` cannot
    swallow it)."""


@contextmanager
def _time_limit(seconds):
    """Raise RunTimeout in this thread after ``seconds`` (SIGALRM; only in a main thread: spawned pool workers,
    ``jobs = 0``; not in Dask's worker threads, where it is a no-op)."""
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def _alarm(signum, frame):
        raise RunTimeout(f"the run took longer than study.run_timeout = {seconds:g} s")

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _setup_worker(need_torch: bool = False) -> None:
    """One torch thread and deterministic kernels (torch is imported only when loaded or needed)."""
    if need_torch or "torch" in sys.modules:
        from .training import deterministic_torch

        deterministic_torch()


def build_workload(spec: dict, study_dir: str | None = None):
    """Build (and cache per process) the workload ``spec`` names: factory(**args, seed=seed)."""
    key = (spec["factory"], repr(sorted(spec["args"].items())), spec.get("seed", 0), study_dir)
    if key not in _CACHE:
        if study_dir and study_dir not in sys.path:
            sys.path.insert(0, study_dir)
        factory = resolve(spec["factory"], f"workload {spec['name']!r}: factory")
        try:
            workload = factory(**spec["args"], seed=spec.get("seed", 0))
        except CourseError as exc:
            raise CourseError(f"workload {spec['name']!r}: {exc}") from None
        except TypeError as exc:
            raise CourseError(f"workload {spec['name']!r}: {spec['factory']} does not accept these args "
                              f"({exc}).") from None
        if len(_CACHE) > 8:
            _CACHE.clear()
        _CACHE[key] = workload
    return _CACHE[key]


def _thin(budget: list, metric: list) -> tuple[list, list]:
    if len(budget) <= MAX_CURVE_POINTS:
        return budget, metric
    keep = np.unique(np.round(np.linspace(0, len(budget) - 1, MAX_CURVE_POINTS)).astype(int))
    return [budget[i] for i in keep], [metric[i] for i in keep]


def _finite(v):
    return None if v is None or not math.isfinite(v) else float(v)


def execute(spec: dict) -> dict:
    """Run one configuration on one seed and return its record (see the module docstring)."""
    _setup_worker()
    t0 = time.perf_counter()
    w, m = spec["workload"], spec["method"]
    record = {k: spec[k] for k in ("key", "phase", "trial", "seed_index", "seed", "config")}
    record.update(workload=w["name"], method=m["name"])
    status, message, final_x, val = "ok", "", None, None
    curve = None
    budget = None
    try:
        with _time_limit(spec.get("run_timeout")):
            workload = build_workload(w, spec.get("study_dir"))
            metric = w["metric"]
            goal = w.get("goal") or workload.goal(metric)
            log_every = w.get("log_every")
            curve = Curve(goal=goal, target=w.get("target"), divergence_factor=spec.get("divergence_factor", 1e8),
                          log_every=getattr(workload, "log_every", 0.0) if log_every is None else log_every)
            if spec.get("study_dir") and spec["study_dir"] not in sys.path:
                sys.path.insert(0, spec["study_dir"])
            target = resolve(m["target"], f"method {m['name']!r}: target")   # imports before the clock starts
            if workload.kind == "torch":
                _setup_worker(need_torch=True)
            budget = Budget(spec["unit"], spec["amount"], getattr(workload, "n_examples", 1))
            hp = dict(spec["config"])
            val_metric = w.get("validation_metric") or workload.validation_metric(metric)
            if workload.kind == "torch":
                _setup_worker(need_torch=True)
                if m["kind"] != "optimizer":
                    raise CourseError(f"method {m['name']!r} has kind = {m['kind']!r} but workload {w['name']!r} is a "
                                      "torch model; use kind = \"optimizer\" (a torch.optim-style class).")
                from .training import train_torch

                model, _ = train_torch(workload, target, hp, spec["seed"], budget, curve, metric,
                                       use_closure=m.get("closure", False))
                val = workload.evaluate(val_metric, model)
            else:
                if m["kind"] != "algorithm":
                    raise CourseError(f"method {m['name']!r} has kind = {m['kind']!r} but workload {w['name']!r} is a "
                                      "vector problem; use kind = \"algorithm\" (f(oracle, x0, *, seed, **hp)).")
                oracle = CountingOracle(workload.problem, budget, lambda x: workload.evaluate(metric, x), curve,
                                        value_offset=getattr(workload, "value_offsets", {}).get(metric))
                x0 = workload.initial_point(spec["seed"])
                oracle.start(x0)
                try:
                    out = target(oracle, x0, seed=spec["seed"], **hp)
                    final_x = getattr(out, "x_final", out)
                    if getattr(out, "status", None) == "diverged":
                        raise Diverged(out.message)
                except BudgetExhausted:
                    final_x = None
                oracle.finish(final_x)
                final_point = oracle.last_point if final_x is None else final_x
                val = workload.evaluate(val_metric, final_point)
                if not math.isfinite(val):
                    raise Diverged(f"validation metric {val_metric} is {val}")
    except (Diverged, DivergenceError, FloatingPointError, OverflowError) as exc:
        status, message = "diverged", f"{type(exc).__name__}: {exc}".splitlines()[0]
    except BudgetExhausted as exc:  # spent inside workload code (e.g. the first evaluation)
        message = str(exc)
    except RunTimeout as exc:
        status, message = "failed", f"RunTimeout: {exc}"
    except Exception as exc:  # a bad run never sinks the study
        status = "failed"
        message = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
        if spec.get("debug"):
            message += "\n" + traceback.format_exc()
    b, mv = _thin(curve.budget, curve.metric) if curve is not None else ([], [])
    ttt = curve.time_to_target if curve is not None else None
    record.update(
        status=status, message=message,
        reached=ttt is not None and status == "ok",
        time_to_target=ttt if status == "ok" else None,
        final_metric=_finite(curve.final) if curve is not None and status == "ok" else None,
        validation_metric=_finite(val) if status == "ok" else None,
        spent=budget.summary() if budget is not None else None,
        curve={"budget": b, "metric": [_finite(v) for v in mv]},
    )
    if record["spent"] is not None and spec["unit"] == "seconds":
        record["spent"]["spent"] = round(record["spent"]["spent"], 3)
    record["timing"] = {"wall_s": time.perf_counter() - t0}
    return record
