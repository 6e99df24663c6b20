"""Run a study: turn it into runs, execute them on a concurrent.futures executor, store each as it finishes.

The executor is a ``ProcessPoolExecutor`` with ``jobs`` workers (spawned processes, torch on one
thread each), the current process (``jobs = 0``; no protection against crashes), or a Dask
``distributed.Client`` executor (``dask = "local"`` starts a LocalCluster on this machine,
``dask = "tcp://host:8786"`` joins a running scheduler). No scheduler, pool or cache is written
here: the executor runs runs, :class:`~course_lib.experiments.store.ResultsStore` keeps results.

Per (workload, method) the :class:`~course_lib.experiments.tuning.Tuner` asks tuning batches;
when every trial is scored the best configuration is rerun on the final seeds. Runs already in
the store are reused, not recomputed (resume). A worker process that dies takes its pool down:
the runs that were in flight are retried one at a time in a fresh one-worker pool, so the run
that killed its worker is identified and recorded ``"failed"`` (worker died), and the study goes on.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import sys
import warnings
from pathlib import Path

from ..validation import CourseError
from .runs import build_workload, execute
from .store import ResultsStore
from .study import Study, derive_seed, load_study
from .tuning import Tuner, trial_score

__all__ = ["run_study", "plan_keys", "StudyRun"]


def _key(phase, workload, method, trial, seed_index) -> str:
    return f"{phase}/{workload}/{method}/{trial}/{seed_index}"


class _Pair:
    """The protocol state of one (workload, method)."""

    def __init__(self, study: Study, w, m, goal: str):
        self.study, self.w, self.m, self.goal = study, w, m, goal
        self.tuner = Tuner(study, w, m, goal)
        self.pending_trials: dict[int, dict] = {}  # trial index -> {seed_index: record}
        self.next_tell = 0
        self.final_started = False
        self.finished = 0

    def spec(self, phase, trial, seed_index, seed, config) -> dict:
        return dict(key=_key(phase, self.w.name, self.m.name, trial, seed_index), phase=phase, trial=trial,
                    seed_index=seed_index, seed=seed, config=config, workload=self.w.to_dict(),
                    method=self.m.to_dict(), unit=self.study.unit, amount=self.study.amount,
                    divergence_factor=self.study.divergence_factor, study_dir=str(self.study.dir),
                    run_timeout=self.study.run_timeout)

    def tuning_specs(self) -> list[dict]:
        out = []
        for trial, config in self.tuner.ask(self.study.batch):
            self.pending_trials[trial] = {}
            for j in range(self.study.tuning_seeds):
                seed = derive_seed(self.study.name, self.w.name, "tune", trial, j)
                out.append(self.spec("tune", trial, j, seed, config))
        return out

    def final_specs(self) -> list[dict]:
        self.final_started = True
        best, config = self.tuner.best()
        self.best_trial = best
        return [self.spec("final", "best", i, derive_seed(self.study.name, self.w.name, "final", i), config)
                for i in range(self.study.seeds)]

    def add(self, record: dict) -> list[dict]:
        """Take a finished run; return the runs that became ready."""
        if record["phase"] == "final":
            self.finished += 1
            return []
        self.pending_trials[record["trial"]][record["seed_index"]] = record
        new = []
        ready = self.pending_trials
        while self.next_tell in ready and len(ready[self.next_tell]) == self.study.tuning_seeds:
            recs = list(ready.pop(self.next_tell).values())
            self.tuner.tell(self.next_tell, trial_score(recs, self.study.score, self.study.amount, self.goal))
            self.next_tell += 1
        if not self.pending_trials:
            new = self.tuning_specs()
            if not new and self.tuner.done and not self.final_started:
                new = self.final_specs()
        return new

    def start(self) -> list[dict]:
        new = self.tuning_specs()
        return new if new else self.final_specs()


def plan_keys(study: Study) -> int:
    """How many runs the study makes: (trials x tuning seeds + final seeds) per (workload, method)."""
    n = 0
    for _ in study.workloads:
        for m in study.methods:
            n += (study.trials * study.tuning_seeds if m.tune else 0) + study.seeds
    return n


class _Inline(cf.Executor):
    """Runs each submitted call at once in this process (``jobs = 0``)."""

    def submit(self, fn, *args, **kwargs):
        fut = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed back through the future
            fut.set_exception(exc)
        return fut


def _process_pool(jobs: int) -> cf.Executor:
    return cf.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))


class StudyRun:
    """Executes a study's runs on an executor, storing each as it finishes (see the module docstring)."""

    def __init__(self, study: Study, store: ResultsStore, jobs: int = 1, dask: str | None = None,
                 executor: cf.Executor | None = None, progress=None):
        self.study, self.store, self.jobs, self.dask = study, store, jobs, dask
        self.progress = progress
        self._given = executor
        self._client = None
        self.computed = 0
        self.reused = 0

    # -- executors ----------------------------------------------------------------------------------
    def _executor(self) -> cf.Executor:
        if self._given is not None:
            return self._given
        if self.dask:
            from distributed import Client, LocalCluster

            if self.dask == "local":
                cluster = LocalCluster(n_workers=max(self.jobs, 1), threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=40)
                self._client = Client(cluster)
            else:
                self._client = Client(self.dask, timeout=30)
            return self._client.get_executor(pure=False)
        if self.jobs == 0:
            return _Inline()
        return _process_pool(self.jobs)

    def _close(self, ex) -> None:
        if ex is self._given:
            return
        if self._client is not None:
            cluster = getattr(self._client, "cluster", None)
            self._client.close()
            if cluster is not None and self.dask == "local":
                cluster.close()
            self._client = None
        else:
            ex.shutdown(wait=True, cancel_futures=True)

    # -- main loop --------------------------------------------------------------------------------
    def run(self) -> list[dict]:
        done = self.store.open()
        pairs = []
        for w in self.study.workloads:
            workload = build_workload(w.to_dict(), str(self.study.dir))
            goal = w.goal or workload.goal(w.metric)
            for m in self.study.methods:
                pairs.append(_Pair(self.study, w, m, goal))
        by_key = {}
        queue: list[tuple[_Pair, dict]] = []
        for p in pairs:
            queue += [(p, s) for s in p.start()]
        ex = self._executor()
        inflight: dict[cf.Future, tuple[_Pair, dict]] = {}
        suspects: list[tuple[_Pair, dict]] = []
        broken = False  # the process pool lost a worker (a submit was refused)
        try:
            while queue or inflight or suspects:
                # reuse stored results at once (resume), submit the rest
                while queue:
                    p, spec = queue[0]
                    if spec["key"] in done and done[spec["key"]]["config"] == spec["config"]:
                        queue.pop(0)
                        self.reused += 1
                        rec = done[spec["key"]]
                        by_key[rec["key"]] = rec
                        self._report(rec, reused=True)
                        queue += [(p, s) for s in p.add(rec)]
                        continue
                    try:
                        fut = ex.submit(execute, spec)
                    except cf.process.BrokenProcessPool:
                        broken = True  # resubmitted to a fresh pool below
                        break
                    queue.pop(0)
                    inflight[fut] = (p, spec)
                if broken and not inflight:
                    self._close(ex)
                    ex, broken = self._executor(), False
                    continue
                if suspects and not inflight:
                    p, spec = suspects.pop(0)
                    rec = self._isolated(spec)
                    self._finish(rec, p, by_key, queue)
                    continue
                if not inflight:
                    continue
                finished, _ = cf.wait(list(inflight), return_when=cf.FIRST_COMPLETED)
                for fut in finished:
                    p, spec = inflight.pop(fut)
                    try:
                        rec = fut.result()
                    except cf.process.BrokenProcessPool:
                        suspects.append((p, spec))
                        continue
                    except Exception as exc:  # a worker lost by Dask (KilledWorker), or the executor failed it
                        rec = _failed(spec, f"worker died or was lost: {type(exc).__name__}: {exc}".splitlines()[0])
                    self._finish(rec, p, by_key, queue)
                if (suspects or broken) and not self._given and not self.dask:
                    # the pool is broken: collect what is left in flight, then rebuild it
                    for fut, (p, spec) in list(inflight.items()):
                        try:
                            rec = fut.result()
                            self._finish(rec, p, by_key, queue)
                        except Exception:  # noqa: BLE001
                            suspects.append((p, spec))
                    inflight.clear()
                    self._close(ex)
                    ex, broken = self._executor(), False
        finally:
            self._close(ex)
        return list(by_key.values())

    def _isolated(self, spec: dict) -> dict:
        """Rerun a run whose pool broke, alone in a fresh one-worker pool: a second death is its own."""
        pool = _process_pool(1)
        try:
            return pool.submit(execute, spec).result()
        except cf.process.BrokenProcessPool:
            return _failed(spec, "worker died (the process running this run exited or was killed)")
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _finish(self, rec, p, by_key, queue) -> None:
        self.store.append(rec)
        self.computed += 1
        by_key[rec["key"]] = rec
        self._report(rec)
        queue += [(p, s) for s in p.add(rec)]

    def _report(self, rec, reused: bool = False) -> None:
        if self.progress is not None:
            self.progress(rec, reused)


def _failed(spec: dict, message: str) -> dict:
    rec = {k: spec[k] for k in ("key", "phase", "trial", "seed_index", "seed", "config")}
    rec.update(workload=spec["workload"]["name"], method=spec["method"]["name"], status="failed", message=message,
               reached=False, time_to_target=None, final_metric=None, validation_metric=None, spent=None,
               curve={"budget": [], "metric": []}, timing={"wall_s": 0.0})
    return rec


def _check_targets(study: Study) -> None:
    """Warn when a workload's target lies outside what its metric can reach (every run will be censored)."""
    for w in study.workloads:
        workload = build_workload(w.to_dict(), str(study.dir))
        workload.check_metric(w.metric, f"workload {w.name!r}: metric")
        if w.validation_metric:
            workload.check_metric(w.validation_metric, f"workload {w.name!r}: validation_metric")
        lo, hi = getattr(workload, "bounds", {}).get(w.metric, (None, None))
        goal = w.goal or workload.goal(w.metric)
        if w.target is not None and ((goal == "min" and lo is not None and w.target < lo) or
                                     (goal == "max" and hi is not None and w.target > hi)):
            warnings.warn(f"workload {w.name!r}: target = {w.target:g} can never be reached ({w.metric} is always "
                          f"{'>=' if goal == 'min' else '<='} {lo if goal == 'min' else hi:g}); every run will be "
                          "censored (reported as not reaching it).", stacklevel=3)
        if workload.kind == "torch" and study.unit == "function_values":
            raise CourseError(f"study.budget.unit = 'function_values' cannot budget workload {w.name!r}: its torch "
                              "training loop spends gradients; use gradients, examples, epochs or seconds.")
        for m in study.methods:
            if (workload.kind == "torch") != (m.kind == "optimizer"):
                want = "optimizer" if workload.kind == "torch" else "algorithm"
                raise CourseError(f"method {m.name!r} has kind = {m.kind!r}, but workload {w.name!r} needs kind = "
                                  f"{want!r} ({'a torch model' if want == 'optimizer' else 'a vector problem'}).")
    from .methods import resolve

    for d in (str(study.dir),):
        if d not in sys.path:
            sys.path.insert(0, d)
    for m in study.methods:
        resolve(m.target, f"method {m.name!r}: target")


def run_study(study, jobs: int = 1, out=None, dask: str | None = None, executor: cf.Executor | None = None,
              progress=None, report: bool = True):
    """Run (or resume) a study and write its report.

    Args:
        study: a Study or the path of a study file.
        jobs: worker processes (0: run in this process). dask: "local" or a scheduler address.
        executor: any concurrent.futures executor to use instead (not shut down here).
        out: results folder (default ``results/<name>/`` beside the study file).
        progress: callable(record, reused) called as each run finishes, or True for the CLI's progress
            (a tqdm bar on a terminal, one line per run otherwise, a summary line at the end).
        report: write the report at the end (:func:`~course_lib.experiments.report.report_study`).
    Returns:
        The list of run records (tuning and final) of the study.
    """
    study = load_study(study)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 0:
        raise CourseError(f"jobs must be an integer >= 0, got {jobs!r}.")
    _check_targets(study)
    store = ResultsStore(Path(out) if out is not None else study.default_out(), study)
    bar = None
    if progress is True:
        from .cli import Progress

        progress = bar = Progress(plan_keys(study), f"study {study.name}")
    try:
        records = StudyRun(study, store, jobs=jobs, dask=dask, executor=executor, progress=progress).run()
    finally:
        if bar is not None:
            print(f"study {study.name}: {bar.close()}", file=sys.stderr)
    if report:
        from .report import report_study

        report_study(study, out=store.folder)
    return records
