"""Study files: load a TOML study, check every field, and name the bad one when something is wrong.

A study is data, not code (docs/EXPERIMENTS.md has the format): ``[study]`` (name, seeds,
baseline), ``[study.budget]`` (unit, amount), ``[study.tuning]`` (trials, sampler, seeds, score),
one ``[[workload]]`` table per workload and one ``[[method]]`` table per method with its
``[method.space]``. :func:`load_study` returns a :class:`Study`; errors are
:class:`StudyError` (a CourseError) whose message names the field, e.g.
``study.budget.amount must be > 0, got 0``.

Seeds are derived from (study name, workload, phase, index) by :func:`derive_seed`, so the final
runs of every method use the same seeds (paired comparisons) and a rerun uses the same numbers.
"""
from __future__ import annotations

import hashlib
import re
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..validation import CourseError, check_int, check_positive, check_real
from .oracle import UNITS

__all__ = ["Study", "WorkloadSpec", "MethodSpec", "Param", "StudyError", "load_study", "loads_study",
           "derive_seed", "SAMPLERS", "SCORES", "KINDS"]

SAMPLERS = ("random", "grid", "tpe", "cmaes", "gp", "qmc")
SCORES = ("validation", "final", "time_to_target")
KINDS = ("algorithm", "optimizer")


class StudyError(CourseError):
    """A study file that cannot be run as written (the message names the field)."""


def derive_seed(*parts) -> int:
    """A 31-bit seed from the parts (sha256 of their text): same parts, same seed, on every machine."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@dataclass(frozen=True)
class Param:
    """One hyperparameter of a search space: a float range, an int range or a list of choices."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple | None = None
    points: int | None = None  # grid sampler: how many values of a range

    def to_dict(self) -> dict:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        out = {"low": self.low, "high": self.high, "log": self.log}
        if self.integer:
            out["int"] = True
        if self.points:
            out["points"] = self.points
        return out


@dataclass
class WorkloadSpec:
    name: str
    factory: str
    args: dict
    metric: str
    target: float | None
    goal: str | None
    validation_metric: str | None = None
    seed: int = 0
    log_every: float | None = None

    def to_dict(self) -> dict:
        return dict(name=self.name, factory=self.factory, args=self.args, metric=self.metric, target=self.target,
                    goal=self.goal, validation_metric=self.validation_metric, seed=self.seed,
                    log_every=self.log_every)


@dataclass
class MethodSpec:
    name: str
    kind: str
    target: str
    fixed: dict
    space: dict  # name -> Param
    tune: bool = True
    closure: bool = False

    def to_dict(self) -> dict:
        return dict(name=self.name, kind=self.kind, target=self.target, fixed=self.fixed, tune=self.tune,
                    closure=self.closure, space={k: p.to_dict() for k, p in self.space.items()})


@dataclass
class Study:
    """A parsed, checked study. ``path``/``dir``: the file and its folder; ``hash``: sha256 of its text."""

    name: str
    description: str
    seeds: int
    baseline: str | None
    unit: str
    amount: float
    trials: int
    sampler: str
    tuning_seeds: int
    score: str
    batch: int
    workloads: list
    methods: list
    divergence_factor: float = 1e8
    run_timeout: float | None = None
    path: Path | None = None
    dir: Path = field(default_factory=Path.cwd)
    hash: str = ""
    text: str = ""

    def workload(self, name: str) -> WorkloadSpec:
        return next(w for w in self.workloads if w.name == name)

    def method(self, name: str) -> MethodSpec:
        return next(m for m in self.methods if m.name == name)

    def default_out(self) -> Path:
        return self.dir / "results" / self.name

    def to_dict(self) -> dict:
        """The resolved study (JSON-ready; stored in the manifest)."""
        return dict(name=self.name, description=self.description, seeds=self.seeds, baseline=self.baseline,
                    budget=dict(unit=self.unit, amount=self.amount),
                    tuning=dict(trials=self.trials, sampler=self.sampler, seeds=self.tuning_seeds, score=self.score,
                                batch=self.batch),
                    divergence_factor=self.divergence_factor, run_timeout=self.run_timeout,
                    workloads=[w.to_dict() for w in self.workloads], methods=[m.to_dict() for m in self.methods])


# -- field checks (each names the field) ----------------------------------------------------------
def _table(d, where: str) -> dict:
    if not isinstance(d, dict):
        raise StudyError(f"{where} must be a table, got {d!r}.")
    return d


def _keys(d: dict, allowed: tuple, where: str) -> None:
    extra = sorted(set(d) - set(allowed))
    if extra:
        raise StudyError(f"{where}: unknown key(s) {', '.join(map(repr, extra))}; allowed keys are "
                         f"{', '.join(allowed)}.")


def _checked(check, value, where: str, *args):
    """Run a course_lib.validation check; its CourseError becomes a StudyError (same message)."""
    try:
        return check(value, where, *args)
    except CourseError as exc:
        raise StudyError(str(exc)) from None


def _int(value, where: str, minimum: int) -> int:
    return _checked(check_int, value, where, minimum)


def _number(value, where: str) -> float:
    return _checked(check_real, value, where)


def _choice(value, options: tuple, where: str) -> str:
    if value not in options:
        raise StudyError(f"{where} = {value!r} is not one of {', '.join(options)}.")
    return value


def _name(value, where: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", value):
        raise StudyError(f"{where} must be a name of letters, digits and _ . + - (it names a folder), got {value!r}.")
    return value


def _import_path(value, where: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][\w.]*[:.][A-Za-z_][\w.]*", value):
        raise StudyError(f"{where} must be an import path 'module:callable', got {value!r}.")
    return value


def _param(name: str, spec, where: str) -> Param:
    if not isinstance(spec, dict):
        return _param(name, {"choices": spec if isinstance(spec, list) else [spec]}, where)
    _keys(spec, ("low", "high", "log", "int", "choices", "points"), where)
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise StudyError(f"{where}.choices is empty: the search space of {name!r} has no value. "
                             "Give at least one choice.")
        return Param(name, choices=tuple(choices))
    if "low" not in spec or "high" not in spec:
        raise StudyError(f"{where} needs low and high (a range) or choices = [...].")
    integer = bool(spec.get("int", False))
    low, high = _number(spec["low"], f"{where}.low"), _number(spec["high"], f"{where}.high")
    if low > high:
        raise StudyError(f"{where} is empty: low = {low:g} > high = {high:g}.")
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise StudyError(f"{where}: a log range needs low > 0, got low = {low:g}.")
    points = _int(spec["points"], f"{where}.points", 1) if "points" in spec else None
    return Param(name, low=int(low) if integer else low, high=int(high) if integer else high, log=log,
                 integer=integer, points=points)


def _workload(d, i: int) -> WorkloadSpec:
    where = f"workload[{i}]"
    d = _table(d, where)
    _keys(d, ("name", "factory", "args", "metric", "target", "goal", "validation_metric", "seed", "log_every"),
          where)
    for key in ("name", "factory", "metric"):
        if key not in d:
            raise StudyError(f"{where} needs {key} = ...")
    name = _name(d["name"], f"{where}.name")
    where = f"workload {name!r}"
    target = d.get("target")
    return WorkloadSpec(
        name=name, factory=_import_path(d["factory"], f"{where}: factory"),
        args=_table(d.get("args", {}), f"{where}: args"),
        metric=str(d["metric"]), target=None if target is None else _number(target, f"{where}: target"),
        goal=None if d.get("goal") is None else _choice(d["goal"], ("min", "max"), f"{where}: goal"),
        validation_metric=d.get("validation_metric"), seed=_int(d.get("seed", 0), f"{where}: seed", 0),
        log_every=None if d.get("log_every") is None else _log_every(d["log_every"], f"{where}: log_every"))


def _log_every(value, where: str) -> float:
    return _checked(check_positive, value, where, True)


def _method(d, i: int, trials: int) -> MethodSpec:
    where = f"method[{i}]"
    d = _table(d, where)
    _keys(d, ("name", "kind", "target", "fixed", "space", "tune", "closure"), where)
    for key in ("name", "target"):
        if key not in d:
            raise StudyError(f"{where} needs {key} = ...")
    name = _name(d["name"], f"{where}.name")
    where = f"method {name!r}"
    kind = _choice(d.get("kind", "algorithm"), KINDS, f"{where}: kind")
    fixed = _table(d.get("fixed", {}), f"{where}: fixed")
    space_d = _table(d.get("space", {}), f"{where}: space")
    space = {k: _param(k, v, f"{where}: space.{k}") for k, v in space_d.items()}
    clash = sorted(set(space) & set(fixed))
    if clash:
        raise StudyError(f"{where}: {', '.join(clash)} is both fixed and in the search space; keep one.")
    tune = bool(d.get("tune", True))
    if tune and trials > 0 and not space:
        raise StudyError(f"{where}: the search space is empty but study.tuning.trials = {trials}. Add "
                         f"[method.space] entries (e.g. step_size = {{ low = 1e-3, high = 1.0, log = true }}), "
                         "or set tune = false to run it at its fixed settings.")
    return MethodSpec(name=name, kind=kind, target=_import_path(d["target"], f"{where}: target"), fixed=fixed,
                      space=space, tune=tune and trials > 0 and bool(space), closure=bool(d.get("closure", False)))


def loads_study(text: str, path: "str | Path | None" = None) -> Study:
    """Parse and check a study from TOML text (``path``: where it lives, for results and imports)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{path or 'study'} is not valid TOML: {exc}.") from None
    _keys(raw, ("study", "workload", "method"), "the study file (top level)")
    st = _table(raw.get("study"), "[study]") if "study" in raw else None
    if st is None:
        raise StudyError("the study file needs a [study] table with name = ...")
    _keys(st, ("name", "description", "seeds", "baseline", "budget", "tuning", "divergence_factor", "run_timeout"),
          "[study]")
    if "name" not in st:
        raise StudyError("study.name is missing: it names the results folder, e.g. name = \"gd-vs-nesterov\".")
    name = _name(st["name"], "study.name")
    budget = _table(st.get("budget", {}), "[study.budget]")
    _keys(budget, ("unit", "amount"), "[study.budget]")
    if "amount" not in budget:
        raise StudyError("study.budget.amount is missing: how many budget units every run may spend.")
    unit = _choice(budget.get("unit", "gradients"), UNITS, "study.budget.unit")
    amount = _checked(check_positive, budget["amount"], "study.budget.amount")
    tuning = _table(st.get("tuning", {}), "[study.tuning]")
    _keys(tuning, ("trials", "sampler", "seeds", "score", "batch"), "[study.tuning]")
    trials = _int(tuning.get("trials", 8), "study.tuning.trials", 0)
    sampler = tuning.get("sampler", "random")
    if sampler not in SAMPLERS:
        raise StudyError(f"study.tuning.sampler = {sampler!r} is not a sampler; use one of {', '.join(SAMPLERS)} "
                         "(random search is the default; the others are optuna's samplers).")
    default_batch = trials if sampler in ("random", "grid", "qmc") else min(max(trials, 1), 4)
    workloads = [_workload(w, i) for i, w in enumerate(raw.get("workload", []))]
    trials_ = trials
    methods = [_method(m, i, trials_) for i, m in enumerate(raw.get("method", []))]
    if not workloads:
        raise StudyError("the study has no [[workload]] table; add at least one.")
    if not methods:
        raise StudyError("the study has no [[method]] table; add at least one.")
    for kind, items in (("workload", workloads), ("method", methods)):
        names = [x.name for x in items]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise StudyError(f"{kind} name(s) {', '.join(dup)} appear twice; names must be unique.")
    baseline = st.get("baseline", methods[0].name)
    if baseline not in [m.name for m in methods]:
        raise StudyError(f"study.baseline = {baseline!r} is not a method of the study; methods: "
                         f"{', '.join(m.name for m in methods)}.")
    seeds = _int(st.get("seeds", 5), "study.seeds", 1)
    if seeds < 5:
        warnings.warn(f"study.seeds = {seeds}: fewer than 5 final seeds make wide confidence intervals.",
                      stacklevel=2)
    p = Path(path).resolve() if path is not None else None
    return Study(
        name=name, description=str(st.get("description", "")), seeds=seeds, baseline=baseline, unit=unit,
        amount=amount, trials=trials, sampler=sampler,
        tuning_seeds=_int(tuning.get("seeds", 1), "study.tuning.seeds", 1),
        score=_choice(tuning.get("score", "validation"), SCORES, "study.tuning.score"),
        batch=_int(tuning.get("batch", default_batch or 1), "study.tuning.batch", 1),
        workloads=workloads, methods=methods,
        divergence_factor=_number(st.get("divergence_factor", 1e8), "study.divergence_factor"),
        run_timeout=None if st.get("run_timeout") is None else _checked(check_positive, st["run_timeout"],
                                                                         "study.run_timeout"),
        path=p, dir=p.parent if p is not None else Path.cwd(), hash=hashlib.sha256(text.encode()).hexdigest(),
        text=text)


def load_study(path: "str | Path | Study") -> Study:
    """Read and check the study file at ``path`` (a Study is returned unchanged)."""
    if isinstance(path, Study):
        return path
    p = Path(path)
    if not p.is_file():
        raise StudyError(f"study file {str(p)!r} does not exist (pass the path of a .toml study file).")
    return loads_study(p.read_text(), p)
