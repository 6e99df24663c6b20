"""Asynchronous SGD with stale gradients on a parameter server (``torch.distributed.rpc``), and DC-ASGD.

Update rule: at server step t a worker's gradient arrives that was computed at an older version x_{t - tau_t}:
    ASGD:     x_{t+1} = x_t - eta g(x_{t - tau_t})
    DC-ASGD:  x_{t+1} = x_t - eta [ g + lam g * g * (x_t - x_{t - tau_t}) ],   g = g(x_{t - tau_t})
(Zheng et al., "Asynchronous SGD with Delay Compensation", ICML 2017, Eq. (9), constant lambda variant):
g * g (entrywise) is a cheap, diagonal approximation of the Hessian, so the correction is a first-order Taylor
step from the stale point to x_t. Lian et al. (NeurIPS 2015) show ASGD keeps SGD's O(1/sqrt(T)) rate for
nonconvex problems when the delay is O(T^{1/4}); a large delay needs a smaller step, the correction recovers part.

Two paths run the same rule (:func:`dc_asgd_update`, written once):
* :func:`parameter_server` -- real processes: rank 0 serves ``pull``/``push`` over RPC, ranks 1..M compute.
  With a ``schedule`` (list of (worker, version read) per server step, e.g. :func:`delay_schedule`) the server
  applies pushes in that order: a deterministic run. Without one it applies them as they arrive (real
  asynchrony; ``slowdown_s`` makes workers heterogeneous) and records the staleness it saw.
* :func:`simulate_async_sgd` -- one process, the same schedule: equal to the deterministic RPC run (tested).
``torch.distributed.rpc`` is in maintenance mode upstream; the simulated path keeps the chapter reproducible.
"""
from __future__ import annotations

import threading
import time

from ..validation import CourseError, check_int, check_positive
from .workload import RunLog, Workload, flat_grad, flat_params, set_flat_params, single_thread

__all__ = ["dc_asgd_update", "delay_schedule", "simulate_async_sgd", "parameter_server"]


def dc_asgd_update(x, x_stale, grad, step_size: float, lam: float = 0.0):
    """x - step_size * (grad + lam * grad * grad * (x - x_stale)); lam = 0 is plain asynchronous SGD.

    Args:
        x: the current parameters x_t (NumPy array or torch tensor).
        x_stale: the parameters the gradient was computed at.
        grad: that (stale) gradient.
        step_size: eta; lam: the delay-compensation strength lambda >= 0.
    Returns:
        x_{t+1}, like x.
    """
    return x - step_size * (grad + lam * grad * grad * (x - x_stale))


def delay_schedule(n_steps: int, delays) -> list:
    """Round-robin workers with fixed delays: step t is worker w = t mod M, which read version max(0, t - delays[w]).

    Args:
        n_steps: server steps; delays: one delay (in server steps) per worker, e.g. [0, 4] for a slow second one.
    Returns:
        a list of (worker, version read) pairs, one per server step.
    """
    n_steps = check_int(n_steps, "n_steps", 1)
    delays = [check_int(d, "delays", 0) for d in delays]
    if not delays:
        raise CourseError("delays must name at least one worker, e.g. delays=[0, 2].")
    return [(t % len(delays), max(0, t - delays[t % len(delays)])) for t in range(n_steps)]


def _check_schedule(schedule, n_workers):
    for t, (w, v) in enumerate(schedule):
        if not (0 <= w < n_workers and 0 <= v <= t):
            raise CourseError(f"schedule[{t}] = {(w, v)}: needs 0 <= worker < {n_workers} and 0 <= version <= {t}.")


def _trace(workload, model, history, method, params, log_every, seconds=None, staleness=None, nbytes=0):
    log = RunLog(workload, model, method, params, len(history) - 1, log_every)
    for t, x in enumerate(history):
        if t % log.log_every == 0 or t == len(history) - 1:
            set_flat_params(model, x)
            log.seconds = 0.0 if seconds is None else seconds[t]
            extra = {} if staleness is None else {"staleness": staleness[t - 1] if t else 0}
            log.record(t, t * nbytes, force=True, **extra)
    return log.finish()


def simulate_async_sgd(workload: Workload, schedule, n_workers: int, step_size: float, lam: float = 0.0,
                       batch_size: int = 32, seed: int = 0, log_every: int = 10):
    """Asynchronous SGD / DC-ASGD in one process under a fixed schedule of (worker, version read).

    Worker w's k-th gradient uses ``workload.batch(k, w, n_workers, batch_size, seed)``, as in the RPC path.

    Returns:
        the Trace (``info["staleness"]``: t - version read; ``info["bytes"]``: gradients pushed so far).
    """
    check_positive(step_size, "step_size")
    _check_schedule(schedule, n_workers)
    with single_thread():
        return _simulate(workload, schedule, n_workers, step_size, lam, batch_size, seed, log_every)


def _simulate(workload, schedule, n_workers, step_size, lam, batch_size, seed, log_every):
    model = workload.model(seed)
    history, counts = [flat_params(model)], [0] * n_workers
    for t, (w, v) in enumerate(schedule):
        g = flat_grad(workload, model, history[v], workload.batch(counts[w], w, n_workers, batch_size, seed))
        counts[w] += 1
        history.append(dc_asgd_update(history[t], history[v], g, step_size, lam))
    x = history[0]
    return _trace(workload, model, history, "dc_asgd" if lam else "asgd",
                  dict(step_size=step_size, lam=lam, n_workers=n_workers), log_every,
                  staleness=[t - v for t, (_, v) in enumerate(schedule)], nbytes=x.numel() * x.element_size())


# -- the parameter server --------------------------------------------------------------------------
class _Server:
    def __init__(self, x0, n_steps, step_size, lam, schedule):
        self.cv = threading.Condition()
        self.history, self.times, self.staleness = [x0], [0.0], []
        self.n_steps, self.step_size, self.lam, self.schedule = n_steps, step_size, lam, schedule
        self.start = time.perf_counter()

    def pull(self, version):
        with self.cv:
            if version is None:  # asynchronous: the newest parameters
                return len(self.history) - 1, self.history[-1]
            self.cv.wait_for(lambda: len(self.history) > version)
            return version, self.history[version]

    def push(self, t, version, grad) -> bool:
        with self.cv:
            if t is not None:
                self.cv.wait_for(lambda: len(self.history) - 1 == t)
            now = len(self.history) - 1
            if now >= self.n_steps:
                return True
            self.history.append(dc_asgd_update(self.history[now], self.history[version], grad, self.step_size,
                                               self.lam))
            self.times.append(time.perf_counter() - self.start)
            self.staleness.append(now - version)
            self.cv.notify_all()
            return len(self.history) - 1 >= self.n_steps


_SERVER: _Server | None = None
_READY = threading.Event()


def _pull(version):
    if not _READY.wait(60):
        raise CourseError("the parameter server did not start within 60 s.")
    return _SERVER.pull(version)


def _push(t, version, grad):
    return _SERVER.push(t, version, grad)


def parameter_server(rank: int, world_size: int, workload: Workload, n_steps: int, step_size: float,
                     lam: float = 0.0, schedule=None, batch_size: int = 32, seed: int = 0, log_every: int = 10,
                     slowdown_s=None):
    """Asynchronous SGD / DC-ASGD through a parameter server on ``torch.distributed.rpc``.

    Launch with ``launch(parameter_server, M + 1, ..., rpc=True)``: rank 0 is the server, ranks 1..M workers.

    Args:
        workload: data and model; n_steps: server updates; step_size: eta; lam: DC-ASGD's lambda (0: ASGD).
        schedule: list of (worker, version read) per step, workers numbered 0..M-1 (deterministic mode);
            None: real asynchrony, updates applied as they arrive.
        batch_size, seed: as in :func:`simulate_async_sgd`.
        slowdown_s: per-worker extra seconds per gradient (M entries; real mode only).
    Returns:
        on rank 0 the Trace (``info["seconds"]`` of each update, ``info["staleness"]``); on workers their
        number of gradients pushed.
    """
    import torch.distributed as dist
    from torch.distributed import rpc

    n_workers = world_size - 1
    if n_workers < 1:
        raise CourseError("parameter_server needs world_size >= 2 (one server and at least one worker).")
    if schedule is not None:
        _check_schedule(schedule, n_workers)
        n_steps = len(schedule)
    global _SERVER
    model = workload.model(seed)
    if rank == 0:
        _SERVER = _Server(flat_params(model), n_steps, step_size, lam, schedule)
        _READY.set()
        with _SERVER.cv:
            _SERVER.cv.wait_for(lambda: len(_SERVER.history) - 1 >= n_steps)
        srv = _SERVER
        dist.barrier()  # every worker has had its last answer
        _READY.clear()
        x = srv.history[0]
        return _trace(workload, model, srv.history, "dc_asgd" if lam else "asgd",
                      dict(step_size=step_size, lam=lam, n_workers=n_workers, mode="rpc"), log_every,
                      seconds=srv.times, staleness=srv.staleness, nbytes=x.numel() * x.element_size())
    w = rank - 1
    delay = float((slowdown_s or [0.0] * n_workers)[w])
    mine = [(t, v) for t, (ww, v) in enumerate(schedule) if ww == w] if schedule is not None else None
    k, done = 0, False
    while not done:
        if mine is not None:
            if k >= len(mine):
                break
            t, v = mine[k]
            v, x = rpc.rpc_sync("worker0", _pull, args=(v,))
        else:
            t = None
            v, x = rpc.rpc_sync("worker0", _pull, args=(None,))
        if delay:
            time.sleep(delay)
        g = flat_grad(workload, model, x, workload.batch(k, w, n_workers, batch_size, seed))
        k += 1
        done = rpc.rpc_sync("worker0", _push, args=(t, v, g))
    dist.barrier()
    return k
