"""Equal tuning: every method gets the same number of trials from its own space, by a seeded sampler.

The protocol (AlgoPerf's external tuning, Dahl et al. 2023): for each (workload, method),
``trials`` configurations are drawn from the method's search space by an optuna sampler seeded
from (study, workload, method) -- random search by default, or grid, tpe, cmaes, gp, qmc. Each
trial runs on ``tuning.seeds`` tuning seeds (the same for every method) and is scored by the
mean of ``score`` over them: the final validation metric ("validation"), the final tracked metric
("final"), or the time-to-target ("time_to_target"; a missed target counts as twice the budget).
Failed and diverged trials score worst. Trials are asked in batches of ``tuning.batch`` and told
in trial order, so the sequence of configurations never depends on ``--jobs`` or on which run
finished first. The best trial (ties: the earlier one) is rerun on ``seeds`` fresh final seeds.
"""
from __future__ import annotations

import math

import numpy as np

from ..validation import CourseError
from .study import MethodSpec, Study, WorkloadSpec, derive_seed

__all__ = ["make_sampler", "distributions", "Tuner", "trial_score"]


def distributions(space: dict) -> dict:
    """optuna distributions for a method's search space (name -> Param)."""
    import optuna

    out = {}
    for name, p in space.items():
        if p.choices is not None:
            out[name] = optuna.distributions.CategoricalDistribution(list(p.choices))
        elif p.integer:
            out[name] = optuna.distributions.IntDistribution(int(p.low), int(p.high), log=p.log)
        else:
            out[name] = optuna.distributions.FloatDistribution(p.low, p.high, log=p.log)
    return out


def _grid(space: dict, trials: int) -> dict:
    d = max(len(space), 1)
    default_points = max(2, math.ceil(trials ** (1.0 / d)))
    grid = {}
    for name, p in space.items():
        if p.choices is not None:
            grid[name] = list(p.choices)
        elif p.integer:
            n = p.points or default_points
            grid[name] = sorted({int(round(v)) for v in (np.geomspace if p.log else np.linspace)(p.low, p.high, n)})
        else:
            n = p.points or default_points
            grid[name] = [float(v) for v in (np.geomspace if p.log else np.linspace)(p.low, p.high, n)]
    return grid


def make_sampler(name: str, seed: int, space: dict, trials: int):
    """The optuna sampler called ``name`` (study.SAMPLERS), seeded."""
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(_grid(space, trials), seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "qmc":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(seed=seed, scramble=True)
    raise CourseError(f"study.tuning.sampler = {name!r} is not a sampler.")


def trial_score(records: list, score: str, amount: float, goal: str) -> float:
    """A trial's score to minimise: mean over its tuning seeds; failed/diverged runs give +inf."""
    values = []
    for r in records:
        if r["status"] != "ok":
            return math.inf
        if score == "time_to_target":
            values.append(r["time_to_target"] if r["reached"] else 2.0 * amount)
        else:
            v = r["validation_metric"] if score == "validation" else r["final_metric"]
            if v is None:
                return math.inf
            values.append(v if goal == "min" else -v)
    return float(np.mean(values)) if values else math.inf


class Tuner:
    """The tuning state of one (workload, method): asks configurations, is told scores, picks the best.

    Args:
        study: the Study. workload: its WorkloadSpec. method: its MethodSpec.
        goal: "min" or "max" of the score's metric (from the workload).
    """

    def __init__(self, study: Study, workload: WorkloadSpec, method: MethodSpec, goal: str):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study, self.workload, self.method, self.goal = study, workload, method, goal
        self.trials = study.trials if method.tune else 0
        seed = derive_seed(study.name, workload.name, method.name, "sampler")
        self._dists = distributions(method.space)
        if study.sampler == "grid" and method.tune:
            size = int(np.prod([len(v) for v in _grid(method.space, study.trials).values()]))
            if size < study.trials:
                raise CourseError(f"method {method.name!r}: the grid has {size} point(s) but study.tuning.trials = "
                                  f"{study.trials}; add points (space.NAME.points) or lower the trials.")
        self._optuna = optuna.create_study(direction="minimize",
                                           sampler=make_sampler(study.sampler, seed, method.space, study.trials))
        self.asked: list = []  # (optuna trial, config)
        self.scores: dict[int, float] = {}

    def ask(self, n: int) -> list[tuple[int, dict]]:
        """Ask up to ``n`` more configurations: [(trial index, full config incl. fixed)]."""
        out = []
        while len(self.asked) < self.trials and len(out) < n:
            t = self._optuna.ask(self._dists)
            config = dict(self.method.fixed, **{k: _plain(v) for k, v in t.params.items()})
            self.asked.append((t, config))
            out.append((len(self.asked) - 1, config))
        return out

    def tell(self, index: int, score: float) -> None:
        """Report trial ``index``'s score (call in trial order)."""
        import optuna

        self.scores[index] = score
        t, _ = self.asked[index]
        if math.isfinite(score):
            self._optuna.tell(t, score)
        else:
            self._optuna.tell(t, state=optuna.trial.TrialState.FAIL)

    @property
    def done(self) -> bool:
        return len(self.scores) >= self.trials

    def best(self) -> tuple[int | None, dict]:
        """(best trial index, its config); (None, fixed) without tuning or when every trial failed."""
        finite = [(s, i) for i, s in self.scores.items() if math.isfinite(s)]
        if not finite:  # every trial failed: rerun the first, so the failure shows in the final runs too
            return None, self.asked[0][1] if self.asked else dict(self.method.fixed)
        _, i = min(finite)
        return i, self.asked[i][1]


def _plain(v):
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    return v
