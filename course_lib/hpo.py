"""Hyperparameter optimization under a budget of training epochs (the resource), plus the ridge hypergradient.

A *task* trains one configuration epoch by epoch: ``state = task.start(config, seed)``, then
``val_error = task.epoch(state)`` per epoch, and ``task.test_error(state)``. :func:`search` runs one HPO method on a
task until ``budget_epochs`` epochs are spent (counted here, cut exactly: the epoch that would exceed the budget is
not run), so methods that stop bad trials early get more trials for the same budget -- the comparison a trial-count
budget hides. Methods:

* samplers (optuna): ``grid`` (the largest full grid within the trials the budget pays, enqueued), ``random``, ``tpe`` (Bergstra et al., NeurIPS 2011), ``gp`` (Gaussian-process BO),
  ``cmaes``; every trial trains ``max_epochs`` epochs;
* pruners: ``asha`` (asynchronous successive halving, Li et al., MLSys 2020: optuna's SuccessiveHalvingPruner),
  ``hyperband`` (Li et al., JMLR 2018: optuna's HyperbandPruner), and ``successive_halving`` (synchronous, Jamieson
  and Talwalkar, AISTATS 2016: n configurations at r epochs, keep the best 1/eta, multiply r by eta; run here
  bracket after bracket until the budget is spent), each combined with a sampler (random by default).

Hypergradient (:func:`ridge_hypergradient`): for ridge regression w(lam) = argmin ||X w - y||^2 / (2n) +
lam ||w||^2 / 2 = (X^T X / n + lam I)^{-1} X^T y / n, the implicit function theorem on the optimality condition
H w = X^T y / n (H = X^T X / n + lam I) gives dw/dlam = -H^{-1} w, so the validation loss
V(lam) = ||X_v w - y_v||^2 / (2 n_v) has the exact hypergradient dV/dlam = -(X_v^T r_v / n_v)^T H^{-1} w
(r_v = X_v w - y_v) (Bengio, Neural Computation 2000; Pedregosa, ICML 2016). :func:`hypergradient_descent` descends
on log lam; each step solves one ridge problem, one pass over the data, counted as one epoch.

Bergstra and Bengio (JMLR 2012): when only a few of the hyperparameters matter, a grid of T trials tries only
T^(1/d) values of each important one, random search T; :func:`effective_dimension_function` is a synthetic
objective whose effective dimension is known, for that experiment.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .validation import CourseError, check_int, check_positive

__all__ = ["Param", "SAMPLERS", "PRUNERS", "search", "SearchResult", "make_sampler", "make_pruner",
           "MLPDigitsTask", "ProbeTask", "ridge_solution", "ridge_hypergradient", "hypergradient_descent",
           "effective_dimension_function", "unit_grid", "unit_random"]

SAMPLERS = ("grid", "random", "tpe", "gp", "cmaes")
PRUNERS = ("none", "asha", "hyperband", "successive_halving")


@dataclass
class Param:
    """A hyperparameter: a float range [low, high] (``log`` for a log scale) or an int range (``int=True``)."""

    low: float
    high: float
    log: bool = False
    int: bool = False

    def __post_init__(self):
        if not self.low < self.high:
            raise CourseError(f"a hyperparameter range needs low < high, got [{self.low}, {self.high}].")
        if self.log and self.low <= 0:
            raise CourseError(f"a log-scale range needs low > 0, got {self.low}.")

    def from_unit(self, u: float):
        """The value at position u in [0, 1] of the range (on the log scale if ``log``)."""
        if self.log:
            v = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            v = self.low + u * (self.high - self.low)
        return int(round(v)) if self.int else float(v)


def _space(space: dict) -> dict:
    if not space:
        raise CourseError("the search space is empty; give at least one hyperparameter, e.g. "
                          "{'step_size': Param(1e-3, 1, log=True)}.")
    return {k: (v if isinstance(v, Param) else Param(**v)) for k, v in space.items()}


def unit_grid(dim: int, trials: int) -> np.ndarray:
    """The largest full grid with at most ``trials`` points in [0, 1]^dim (points per axis = floor(T^(1/dim)),
    at the cell centres), as an array (points, dim)."""
    per_axis = max(1, int(math.floor(trials ** (1.0 / dim) + 1e-9)))
    axis = (np.arange(per_axis) + 0.5) / per_axis
    return np.stack(np.meshgrid(*([axis] * dim), indexing="ij"), axis=-1).reshape(-1, dim)


def unit_random(dim: int, trials: int, seed: int) -> np.ndarray:
    """``trials`` uniform points in [0, 1]^dim (seeded)."""
    return np.random.default_rng(seed).uniform(size=(check_int(trials, "trials", 1), dim))


def make_sampler(name: str, seed: int, space: dict | None = None, trials: int | None = None):
    """The optuna sampler called ``name`` (one of ``SAMPLERS``), seeded.

    ``grid`` needs the space and the number of trials: it searches :func:`unit_grid` mapped into each range.
    """
    import optuna

    if name not in SAMPLERS:
        raise CourseError(f"sampler = {name!r} is not a sampler; use one of {', '.join(SAMPLERS)}.")
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=5)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=1)
    return optuna.samplers.GridSampler(_grid_values(space or {}, trials or 0), seed=seed)


def _grid_points(space: dict, trials: int) -> list:
    """The grid's configurations in row-major order (each a dict)."""
    import itertools

    values = _grid_values(space, trials)
    return [dict(zip(values, combo)) for combo in itertools.product(*values.values())]


def _grid_values(space: dict, trials: int) -> dict:
    space = _space(space)
    pts = unit_grid(len(space), check_int(trials, "trials", 1))
    return {n: sorted({space[n].from_unit(u) for u in pts[:, i]}) for i, n in enumerate(space)}


def make_pruner(name: str, min_epochs: int = 1, max_epochs: int = 27, eta: int = 3):
    """The optuna pruner called ``name``: "none", "asha" (SuccessiveHalvingPruner) or "hyperband"."""
    import optuna

    if name not in PRUNERS:
        raise CourseError(f"pruner = {name!r} is not a pruner; use one of {', '.join(PRUNERS)}.")
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=min_epochs, reduction_factor=eta)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=min_epochs, max_resource=max_epochs, reduction_factor=eta)
    return optuna.pruners.NopPruner()


class _Exhausted(Exception):
    pass


@dataclass
class SearchResult:
    """What one HPO run found and spent.

    Attributes:
        best_config, best_val_error, best_test_error (of the configuration with the best validation error, at its
        last epoch); epochs (spent, <= budget); trials (started); completed (trained to max_epochs);
        curve: list of (epochs spent, best validation error so far); method (sampler/pruner names).
    """

    method: str
    best_config: dict
    best_val_error: float
    best_test_error: float
    epochs: int
    trials: int
    completed: int
    curve: list = field(default_factory=list)


def _suggest(trial, space):
    out = {}
    for n, p in space.items():
        if p.int:
            out[n] = trial.suggest_int(n, int(p.low), int(p.high), log=p.log)
        else:
            out[n] = trial.suggest_float(n, p.low, p.high, log=p.log)
    return out


def search(task, space: dict, sampler: str = "random", pruner: str = "none", budget_epochs: int = 100,
           max_epochs: int = 9, min_epochs: int = 1, eta: int = 3, seed: int = 0, max_trials: int | None = None,
           progress: bool = False) -> SearchResult:
    """Run one HPO method on ``task`` until ``budget_epochs`` training epochs are spent.

    Args:
        task: an object with ``start(config, seed) -> state``, ``epoch(state) -> val_error``, ``test_error(state)``.
        space: name -> :class:`Param` (or its keyword dict).
        sampler: one of ``SAMPLERS``. pruner: one of ``PRUNERS``.
        budget_epochs: total epochs over all trials (the budget; every epoch of every trial counts).
        max_epochs: epochs of a full trial. min_epochs, eta: the pruners' minimum resource and reduction factor.
        seed: seeds the sampler and every trial's training (trial i uses seed * 7919 + i).
        max_trials: stop after this many trials even if budget is left (the grid's size for ``grid``).
        progress: tqdm bar over epochs.
    Returns:
        A :class:`SearchResult`.
    """
    import optuna

    space = _space(space)
    budget = check_int(budget_epochs, "budget_epochs", 1)
    max_epochs = check_int(max_epochs, "max_epochs", 1)
    min_epochs = check_int(min_epochs, "min_epochs", 1)
    eta = check_int(eta, "eta", 2)
    if pruner == "successive_halving":
        return _successive_halving(task, space, sampler, budget, max_epochs, min_epochs, eta, seed, progress)
    trials_cap = max_trials
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if sampler == "grid":  # the grid's points are enqueued (optuna's GridSampler stops only inside optimize())
        points = _grid_points(space, max_trials or max(1, budget // max_epochs))
        trials_cap = len(points)
        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=seed),
                                    pruner=make_pruner(pruner, min_epochs, max_epochs, eta))
        for point in points:
            study.enqueue_trial(point)
    else:
        study = optuna.create_study(direction="minimize", sampler=make_sampler(sampler, seed, space, trials_cap),
                                    pruner=make_pruner(pruner, min_epochs, max_epochs, eta))
    state = _Books(budget, progress, f"{sampler}+{pruner}")
    while trials_cap is None or state.trials < trials_cap:
        trial = study.ask()
        config = _suggest(trial, space)
        try:
            val, st = state.run_trial(task, config, seed * 7919 + state.trials, max_epochs, trial)
        except _Exhausted:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            break
        if st == "pruned":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, val)
        if state.spent >= budget:
            break
    return state.result(f"{sampler}+{pruner}")


class _Books:
    """The epoch budget, the incumbent and the curve of one search."""

    def __init__(self, budget, progress, desc):
        self.budget, self.spent, self.trials, self.completed = budget, 0, 0, 0
        self.best = (math.inf, math.inf, None)  # val, test, config
        self.curve = [(0, math.nan)]
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=budget, desc=desc, unit="epoch")

    def train(self, task, st, config, epochs, report=None):
        """Train ``epochs`` more epochs of a started trial; returns its last validation error (or raises
        _Exhausted before an epoch the budget cannot pay)."""
        val = math.nan
        for e in range(epochs):
            if self.spent + 1 > self.budget:
                raise _Exhausted
            val = float(task.epoch(st))
            self.spent += 1
            if self.bar is not None:
                self.bar.update(1)
            if math.isfinite(val) and val < self.best[0]:
                self.best = (val, float(task.test_error(st)), dict(config))
            self.curve.append((self.spent, self.best[0]))
            if report is not None and report(val, e + 1):
                return val, "pruned"
        return val, "done"

    def run_trial(self, task, config, seed, max_epochs, trial=None):
        self.trials += 1
        st = task.start(config, seed)

        def report(val, step):
            trial.report(val if math.isfinite(val) else 1e9, step)
            return trial.should_prune()

        val, status = self.train(task, st, config, max_epochs, report if trial is not None else None)
        if status == "done":
            self.completed += 1
        return val, status

    def result(self, method):
        if self.bar is not None:
            self.bar.close()
        val, test, config = self.best
        return SearchResult(method, config or {}, val, test, self.spent, self.trials, self.completed, self.curve)


def _successive_halving(task, space, sampler, budget, max_epochs, min_epochs, eta, seed, progress):
    """Synchronous successive halving, bracket after bracket: n = eta^s configurations at min_epochs, keep the best
    n / eta, give them eta times more epochs (continuing their training), until max_epochs."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rungs = max(0, int(math.floor(math.log(max_epochs / min_epochs, eta) + 1e-9)))
    study = optuna.create_study(direction="minimize", sampler=make_sampler(
        sampler if sampler != "grid" else "random", seed, space))
    books = _Books(budget, progress, f"{sampler}+successive_halving")
    try:
        while books.spent < budget:
            n = eta ** rungs
            live = []
            for _ in range(n):
                trial = study.ask()
                config = _suggest(trial, space)
                books.trials += 1
                live.append([trial, config, task.start(config, seed * 7919 + books.trials), 0, math.inf])
            r = min_epochs
            for rung in range(rungs + 1):
                for item in live:
                    item[4], _ = books.train(task, item[2], item[1], r - item[3])
                    item[3] = r
                live.sort(key=lambda it: it[4] if math.isfinite(it[4]) else math.inf)
                keep = max(1, len(live) // eta) if rung < rungs else len(live)
                for item in live[keep:]:
                    study.tell(item[0], state=optuna.trial.TrialState.PRUNED)
                live = live[:keep]
                r = min(max_epochs, r * eta)
            for item in live:
                books.completed += 1
                study.tell(item[0], item[4])
    except _Exhausted:
        pass
    return books.result(f"{sampler}+successive_halving")


# -- tasks ----------------------------------------------------------------------------------------------------

class _TorchSoftmaxTask:
    """Shared epoch loop: minibatch SGD with momentum and weight decay on a torch model (one thread, seeded)."""

    def _model(self, config, gen):
        raise NotImplementedError

    def start(self, config, seed):
        import torch

        gen = torch.Generator().manual_seed(int(seed))
        model = self._model(config, gen)
        opt = torch.optim.SGD(model.parameters(), lr=float(config.get("step_size", 0.1)),
                              momentum=float(config.get("momentum", 0.0)),
                              weight_decay=float(config.get("weight_decay", 0.0)))
        return {"model": model, "opt": opt, "gen": gen, "bs": int(config.get("batch_size", 32))}

    def epoch(self, st):
        import torch

        model, opt, bs = st["model"], st["opt"], st["bs"]
        n = self.X_train.shape[0]
        perm = torch.randperm(n, generator=st["gen"])
        model.train()
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            loss = torch.nn.functional.cross_entropy(model(self.X_train[idx]), self.y_train[idx])
            if not torch.isfinite(loss):
                return math.nan
            opt.zero_grad()
            loss.backward()
            opt.step()
        return self._error(model, self.X_val, self.y_val)

    def test_error(self, st):
        return self._error(st["model"], self.X_test, self.y_test)

    @staticmethod
    def _error(model, X, y):
        import torch

        with torch.no_grad():
            out = model(X)
            if not torch.isfinite(out).all():
                return math.nan
            return float((out.argmax(-1) != y).float().mean())


class MLPDigitsTask(_TorchSoftmaxTask):
    """A one-hidden-layer MLP on scikit-learn's 8x8 digits (train / validation / test = 60 / 20 / 20 %).

    Config keys: step_size, momentum, weight_decay, batch_size, hidden (width), init_scale.
    """

    def __init__(self, seed: int = 0):
        import torch
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = (X / 16.0).astype(np.float32)
        perm = np.random.default_rng(seed).permutation(len(y))
        a, b = int(0.6 * len(y)), int(0.8 * len(y))
        parts = perm[:a], perm[a:b], perm[b:]
        (self.X_train, self.X_val, self.X_test) = (torch.tensor(X[p]) for p in parts)
        (self.y_train, self.y_val, self.y_test) = (torch.tensor(y[p]) for p in parts)
        self.n = len(parts[0])

    def _model(self, config, gen):
        import torch

        h = int(config.get("hidden", 32))
        model = torch.nn.Sequential(torch.nn.Linear(64, h), torch.nn.Tanh(), torch.nn.Linear(h, 10))
        scale = float(config.get("init_scale", 1.0))
        with torch.no_grad():
            for m in model:
                if isinstance(m, torch.nn.Linear):
                    bound = scale / math.sqrt(m.in_features)
                    m.weight.uniform_(-bound, bound, generator=gen)
                    m.bias.zero_()
        return model


class ProbeTask(_TorchSoftmaxTask):
    """A linear probe (softmax regression) on frozen MiniLM sentence embeddings of the genre task.

    Args:
        cache: the dict of :func:`course_lib.finetune.embedding_cache` (X_/y_ train, val, test).
    Config keys: step_size, momentum, weight_decay, batch_size.
    """

    def __init__(self, cache: dict):
        import torch

        mean = cache["X_train"].mean(0)
        std = cache["X_train"].std(0) + 1e-6
        for split in ("train", "val", "test"):
            setattr(self, f"X_{split}", torch.tensor((cache[f"X_{split}"] - mean) / std, dtype=torch.float32))
            setattr(self, f"y_{split}", torch.tensor(cache[f"y_{split}"], dtype=torch.int64))
        self.n = self.X_train.shape[0]

    def _model(self, config, gen):
        import torch

        model = torch.nn.Linear(self.X_train.shape[1], 2)
        with torch.no_grad():
            model.weight.normal_(0.0, 0.01, generator=gen)
            model.bias.zero_()
        return model


# -- gradient-based HPO: the ridge hypergradient --------------------------------------------------------------

def ridge_solution(X, y, lam: float):
    """w(lam) = (X^T X / n + lam I)^{-1} X^T y / n, the ridge minimiser (NumPy, float64)."""
    n, d = X.shape
    H = X.T @ X / n + check_positive(lam, "lam") * np.eye(d)
    return np.linalg.solve(H, X.T @ y / n)


def ridge_hypergradient(X, y, X_val, y_val, lam: float):
    """Validation loss V(lam) = ||X_v w(lam) - y_v||^2 / (2 n_v) and its exact derivative dV/dlam.

    dV/dlam = -(X_v^T r_v / n_v)^T (X^T X / n + lam I)^{-1} w(lam), by the implicit function theorem on the
    optimality condition (module docstring).

    Returns:
        (V, dV/dlam).
    """
    n, d = X.shape
    H = X.T @ X / n + check_positive(lam, "lam") * np.eye(d)
    w = np.linalg.solve(H, X.T @ y / n)
    r = X_val @ w - y_val
    gw = X_val.T @ r / len(y_val)
    return float(r @ r / (2 * len(y_val))), float(-gw @ np.linalg.solve(H, w))


def hypergradient_descent(X, y, X_val, y_val, lam0: float = 1.0, step_size: float = 0.5, epochs: int = 20):
    """Gradient descent on t = log lam: t <- t - step_size * lam * dV/dlam (one ridge solve = one epoch).

    Returns:
        dict: lam (final), val_loss, curve (list of (epoch, val loss, lam)).
    """
    t = math.log(check_positive(lam0, "lam0"))
    curve = []
    for k in range(1, check_int(epochs, "epochs", 1) + 1):
        v, g = ridge_hypergradient(X, y, X_val, y_val, math.exp(t))
        curve.append((k, v, math.exp(t)))
        t -= step_size * math.exp(t) * g
    return {"lam": math.exp(t), "val_loss": ridge_hypergradient(X, y, X_val, y_val, math.exp(t))[0], "curve": curve}


def effective_dimension_function(dim: int = 6, effective: int = 2, seed: int = 0):
    """A synthetic objective on [0, 1]^dim whose value depends on ``effective`` coordinates only.

    f(u) = sum_{i < effective} w_i (u_i - c_i)^2 + 1e-3 sum_{i >= effective} (u_i - 1/2)^2, with seeded optimum
    coordinates c_i in (0.1, 0.9) and weights w_i in [1, 2]: the effective dimension is ``effective``.

    Returns:
        f (callable on arrays of shape (..., dim)), its minimum value 0 at u = (c, 1/2, ...).
    """
    dim = check_int(dim, "dim", 1)
    effective = check_int(effective, "effective", 1)
    if effective > dim:
        raise CourseError(f"effective = {effective} cannot exceed dim = {dim}.")
    rng = np.random.default_rng(seed)
    c = rng.uniform(0.1, 0.9, size=effective)
    w = rng.uniform(1.0, 2.0, size=effective)

    def f(u):
        u = np.asarray(u, dtype=float)
        return (w * (u[..., :effective] - c) ** 2).sum(-1) + 1e-3 * ((u[..., effective:] - 0.5) ** 2).sum(-1)

    f.optimum = np.concatenate([c, np.full(dim - effective, 0.5)])
    return f
