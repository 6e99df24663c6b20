"""Harness adapters of the HPO, zeroth-order and LoRA kits: workload factories and methods for study files.

Everything here is glue between the experiment harness (docs/EXPERIMENTS.md) and the library modules that hold the
algorithms (:mod:`course_lib.hpo`, :mod:`course_lib.zeroth_order`, :mod:`course_lib.lora`, :mod:`course_lib.finetune`).

Zeroth-order (``unit = "function_values"``): :func:`random_search`, :func:`zo_gd`, :func:`spsa`, :func:`nes` run the
library's methods on ``oracle.value`` and report their iterates with ``oracle.observe``; the workload
:func:`minilm_logistic` is logistic regression on (PCA-reduced) frozen MiniLM sentence embeddings.

HPO (``unit = "epochs"``): :func:`hpo_workload` turns an epoch-by-epoch trainer (:class:`course_lib.hpo.MLPDigitsTask`
or :class:`course_lib.hpo.ProbeTask`) into a vector workload whose oracle is the *epoch meter*: a query
``oracle.value_batch(request, all_examples)`` trains trial ``request[0]`` (training seed ``request[1]``,
configuration ``request[2:]`` in the unit cube, mapped into the task's ranges) one more epoch and returns its
validation error, and costs exactly one epoch. :func:`hpo_search` runs :func:`course_lib.hpo.search` (any sampler
and pruner) through that meter, so the budget is counted by the harness, not by the method.

LoRA (``kind = "optimizer"``, ``unit = "examples"``): :func:`minilm_genre` is the comedy-vs-tragedy classifier as a
torch workload; :func:`peft_adamw` is an optimizer factory that first configures the model (full, linear probe,
bias-only or LoRA) and then returns AdamW over its trainable parameters.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import hpo
from . import zeroth_order as zo
from .validation import CourseError, check_int

__all__ = ["random_search", "zo_gd", "spsa", "nes", "minilm_logistic", "hpo_workload", "hpo_search",
           "minilm_genre", "peft_adamw", "default_cache"]

BIG = 10 ** 9


def default_cache() -> Path:
    """The committed embedding cache (projects/data/minilm_genre.npz), else one under ~/.cache (built on demand)."""
    repo = Path(__file__).resolve().parents[1] / "projects" / "data" / "minilm_genre.npz"
    return repo if repo.is_file() else Path.home() / ".cache" / "course_lib" / "minilm_genre.npz"


def _load_cache():
    from .finetune import embedding_cache

    return embedding_cache(default_cache())


# -- zeroth order ------------------------------------------------------------------------------------------------

def _zo(oracle, x0, fn, **kw):
    oracle.observe(x0)
    return fn(oracle.value, x0, callback=lambda k, x: oracle.observe(x), **kw).x_final


def random_search(oracle, x0, *, seed: int = 0, sigma: float = 0.1):
    """(1+1) random search (:func:`course_lib.zeroth_order.random_search`) until the budget is spent."""
    return _zo(oracle, x0, zo.random_search, sigma=sigma, max_evals=BIG, seed=seed, record_every=BIG)


def zo_gd(oracle, x0, *, seed: int = 0, step_size: float = 1e-2, mu: float = 1e-4, kind: str = "forward",
          n_directions: int = 1):
    """Gaussian-smoothing descent (:func:`course_lib.zeroth_order.zo_gradient_descent`)."""
    return _zo(oracle, x0, zo.zo_gradient_descent, step_size=step_size, mu=mu, kind=kind, n_directions=n_directions,
               max_iter=BIG, seed=seed, record_every=BIG)


def spsa(oracle, x0, *, seed: int = 0, a: float = 0.1, c: float = 0.01, A: float = 100.0):
    """SPSA with Spall's gains (:func:`course_lib.zeroth_order.spsa`); A is given (the budget's length is unknown)."""
    return _zo(oracle, x0, zo.spsa, a=a, c=c, A=A, max_iter=BIG, seed=seed, record_every=BIG)


def nes(oracle, x0, *, seed: int = 0, sigma: float = 0.05, step_size: float = 0.05, population: int = 10):
    """Natural evolution strategies with antithetic sampling and rank shaping (:func:`course_lib.zeroth_order.nes`)."""
    return _zo(oracle, x0, zo.nes, sigma=sigma, step_size=step_size, population=population, max_iter=BIG, seed=seed,
               record_every=BIG)


def minilm_logistic(components: int = 16, lam: float = 1e-3, seed: int = 0):
    """Logistic regression (comedy vs tragedy) on frozen MiniLM embeddings, PCA-reduced to ``components`` dims.

    Data: :func:`default_cache` (512 train, 256 validation, 256 test lines). Target metric: ``val_accuracy``
    (goal max); ``train_loss`` is the objective f (regularised), ``test_accuracy`` is tuned on ``val_accuracy``.

    Returns:
        A VectorWorkload starting at w = 0.
    """
    from .experiments import VectorWorkload
    from .problems import LogisticRegression

    cache = _load_cache()
    k = check_int(components, "components", 1)
    Xtr = cache["X_train"].astype(np.float64)
    mean = Xtr.mean(0)
    _, _, Vt = np.linalg.svd(Xtr - mean, full_matrices=False)
    P = Vt[:k].T
    proj = {s: (cache[f"X_{s}"].astype(np.float64) - mean) @ P for s in ("train", "val", "test")}
    scale = proj["train"].std(0) + 1e-12
    proj = {s: v / scale for s, v in proj.items()}
    ys = {s: 2.0 * cache[f"y_{s}"].astype(np.float64) - 1.0 for s in ("train", "val", "test")}
    problem = LogisticRegression(proj["train"], ys["train"], lam=lam)

    def acc(split):
        return lambda w: float(np.mean(np.sign(proj[split] @ w + 1e-300) == ys[split]))

    return VectorWorkload(problem, {"train_loss": lambda w: float(problem.value(w)), "val_accuracy": acc("val"),
                                    "test_accuracy": acc("test")},
                          x0=lambda s: np.zeros(k), goals={"val_accuracy": "max", "test_accuracy": "max"},
                          validation={"test_accuracy": "val_accuracy", "train_loss": "train_loss"},
                          bounds={"train_loss": (0.0, None), "val_accuracy": (0.0, 1.0), "test_accuracy": (0.0, 1.0)})


# -- HPO ---------------------------------------------------------------------------------------------------------

TASK_SPACES = {
    "digits": {"step_size": hpo.Param(1e-3, 1.0, log=True), "momentum": hpo.Param(0.0, 0.95),
               "weight_decay": hpo.Param(1e-6, 1e-1, log=True), "init_scale": hpo.Param(0.1, 3.0)},
    "probe": {"step_size": hpo.Param(1e-4, 1.0, log=True), "momentum": hpo.Param(0.0, 0.95),
              "weight_decay": hpo.Param(1e-6, 1e-1, log=True), "batch_size": hpo.Param(8, 128, log=True, int=True)},
}


class _EpochMeter:
    """The problem behind an HPO workload: ``value_batch(request, idx)`` trains one epoch of a trial."""

    def __init__(self, task, space: dict):
        self.task, self.space = task, space
        self.names = list(space)
        self.n = int(task.n)
        self.dim = 2 + len(space)
        self.states: dict = {}
        self.last: dict = {}

    def config(self, u) -> dict:
        return {n: self.space[n].from_unit(float(np.clip(v, 0.0, 1.0))) for n, v in zip(self.names, u)}

    def value_batch(self, request, idx):
        trial, seed = int(request[0]), int(request[1])
        if trial not in self.states:
            self.states[trial] = self.task.start(self.config(request[2:]), seed)
        val = float(self.task.epoch(self.states[trial]))
        self.last[trial] = val if math.isfinite(val) else 1.0
        return self.last[trial]

    def val_error(self, request) -> float:
        return self.last.get(int(request[0]), 1.0) if int(request[0]) >= 0 else 1.0

    def test_error(self, request) -> float:
        trial = int(request[0])
        if trial < 0 or trial not in self.states:
            return 1.0
        err = float(self.task.test_error(self.states[trial]))
        return err if math.isfinite(err) else 1.0


def hpo_workload(task: str = "digits", seed: int = 0):
    """An HPO workload: tune ``task``'s training hyperparameters, every epoch of every trial paid (unit "epochs").

    Tasks: "digits" (a tanh MLP on scikit-learn's digits; step size, momentum, weight decay, init scale) and
    "probe" (a linear probe on frozen MiniLM embeddings of the genre task; step size, momentum, weight decay,
    batch size). Metrics: ``val_error`` (the incumbent's validation error; target e.g. 0.05 for digits) and
    ``test_error`` (the incumbent's test error, tuned on ``val_error``), both "min".

    Returns:
        A VectorWorkload whose start is "no trial yet" (error 1).
    """
    from .experiments import VectorWorkload

    if task not in TASK_SPACES:
        raise CourseError(f"task = {task!r} is not an HPO task; use one of {', '.join(TASK_SPACES)}.")
    trainer = hpo.MLPDigitsTask(seed=seed) if task == "digits" else hpo.ProbeTask(_load_cache())
    meter = _EpochMeter(trainer, TASK_SPACES[task])
    start = np.array([-1.0, 0.0] + [0.5] * len(meter.names))
    return VectorWorkload(meter, {"val_error": meter.val_error, "test_error": meter.test_error},
                          x0=lambda s: start.copy(), validation={"test_error": "val_error"},
                          bounds={"val_error": (0.0, 1.0), "test_error": (0.0, 1.0)})


class _OracleTask:
    """hpo.search's task protocol over the harness's epoch meter (the oracle charges every epoch)."""

    def __init__(self, oracle):
        self.oracle = oracle
        self.trials = 0
        self.best = math.inf
        self.idx = np.arange(oracle.n)

    def start(self, config, seed):
        self.trials += 1
        u = [config[f"u{i}"] for i in range(len(config))]
        return np.array([self.trials, seed % (2 ** 31)] + u, dtype=float)

    def epoch(self, request):
        val = float(self.oracle.value_batch(request, self.idx))
        if val < self.best:
            self.best = val
            self.oracle.observe(request)
        return val

    def test_error(self, request):
        return math.nan  # the harness computes the incumbent's test error itself


def hpo_search(oracle, x0, *, seed: int = 0, sampler: str = "random", pruner: str = "none", max_epochs: int = 9,
               min_epochs: int = 1, eta: int = 3):
    """Any sampler + pruner of :func:`course_lib.hpo.search` on an :func:`hpo_workload`, until the harness's epoch
    budget is spent (grid: the largest full grid that ``budget / max_epochs`` full trials allow)."""
    oracle.observe(x0)
    dims = oracle.dim - 2
    space = {f"u{i}": hpo.Param(0.0, 1.0) for i in range(dims)}
    trials = max(1, int(oracle.budget.amount // max_epochs)) if oracle.budget.unit == "epochs" else None
    hpo.search(_OracleTask(oracle), space, sampler=sampler, pruner=pruner, budget_epochs=BIG,
               max_epochs=max_epochs, min_epochs=min_epochs, eta=eta, seed=seed,
               max_trials=trials if sampler == "grid" else None)
    return oracle.last_point


# -- LoRA --------------------------------------------------------------------------------------------------------

def _genre_module():
    import torch

    from .pretrained import MiniLMClassifier

    class GenreClassifier(torch.nn.Module):
        """MiniLM classifier on packed inputs X[:, 0] = token ids, X[:, 1] = attention mask."""

        def __init__(self, seed):
            super().__init__()
            self.net = MiniLMClassifier(seed=seed)

        def forward(self, X):
            return self.net(X[:, 0], X[:, 1])

    return GenreClassifier


def minilm_genre(n_train: int = 256, n_val: int = 128, n_test: int = 128, max_length: int = 24, batch_size: int = 16,
                 eval_every: int = 1000, seed: int = 0):
    """The comedy-vs-tragedy line classifier on the pretrained MiniLM as a torch workload (no download).

    Target metric: ``val_accuracy`` (goal max; e.g. 0.7). Inputs are packed (ids, mask) pairs; the model of seed
    s is the pretrained encoder with a head initialised from s. Fine-tuning modes are chosen by the optimizer
    factory :func:`peft_adamw`.
    """
    import torch

    from .experiments import TorchWorkload
    from .pretrained import genre_data

    data = genre_data(n_train=n_train, n_val=n_val, n_test=n_test, max_length=max_length, seed=seed)
    packed = {s: (torch.stack([data.ids[s], data.mask[s]], dim=1), data.y[s]) for s in ("train", "val", "test")}
    cls = _genre_module()
    return TorchWorkload(model=lambda s: cls(s), train=packed["train"], val=packed["val"], test=packed["test"],
                         loss=torch.nn.functional.cross_entropy, batch_size=batch_size, eval_every=eval_every)


def peft_adamw(params, *, model, mode: str = "lora", lr: float = 1e-3, r: int = 8, alpha: float = 16.0,
               target_modules=("query", "value"), weight_decay: float = 0.0):
    """Configure ``model`` for ``mode`` (:func:`course_lib.lora.set_trainable`), then AdamW on what trains.

    Every mode pays the same budget (examples through forward and backward), so accuracies compare at equal
    budgets; the trainable-parameter count is what differs.
    """
    import torch

    from .lora import set_trainable

    net = model.net if hasattr(model, "net") else model
    kwargs = dict(r=int(r), alpha=alpha, target_modules=tuple(target_modules)) if mode == "lora" else {}
    set_trainable(net, mode, **kwargs)
    trainable = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
