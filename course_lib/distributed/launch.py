"""Launch a group of worker processes on this machine: gloo (CPU) or NCCL (GPUs), optionally with RPC.

``launch(fn, world_size, *args)`` starts ``world_size`` processes with ``torch.multiprocessing``
(start method "forkserver": one server process imports torch once, with :data:`PRELOAD`, and forks every
worker from it, so a launch does not pay one torch import per worker; "spawn" where forkserver is not
available), gives each a process group on a free localhost port, calls
``fn(rank, world_size, *args)`` in each and returns the list of their return values, rank by rank.
Every worker runs ``torch.set_num_threads(threads)`` first: with several workers on few cores,
torch's default thread pool oversubscribes the cores (300 DDP steps of a small model took 41 s
with the default and 0.8 s with one thread on a 2-core machine). Everything is bounded in time:
a worker that hangs or a group that never forms ends with a CourseError after ``timeout_s``.

On a cluster the same worker functions run unchanged under ``torchrun``: it sets RANK,
WORLD_SIZE, MASTER_ADDR and MASTER_PORT, and :func:`init_from_env` forms the group from them.
"""
from __future__ import annotations

import datetime
import os
import pickle
import socket
import time
import traceback
import warnings

__all__ = ["free_port", "launch", "init_from_env", "run_jobs", "PRELOAD"]

#: modules the forkserver imports once; the workers it forks start with them loaded (DDP's constructor imports
#: torch._dynamo, and with it sympy: several seconds per worker otherwise)
PRELOAD = ["torch", "torch._dynamo", "torch.distributed", "torch.distributed.rpc", "torch.nn.parallel",
           "course_lib.distributed.ddp", "course_lib.distributed.compression", "course_lib.distributed.local_sgd",
           "course_lib.distributed.async_sgd", "course_lib.distributed.diloco"]


def _context():
    """The multiprocessing context of the workers: forkserver preloading torch, else spawn."""
    import multiprocessing

    import torch.multiprocessing as mp

    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)  # takes effect when the server starts (the first launch)
        return ctx, "forkserver"
    return mp.get_context("spawn"), "spawn"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_from_env(backend: str = "gloo", timeout_s: float = 60.0):
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR/PORT).

    Returns:
        (rank, world_size).
    """
    import torch.distributed as dist

    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return dist.get_rank(), dist.get_world_size()


def run_jobs(rank: int, world_size: int, jobs) -> list:
    """Run several drivers one after the other in the same process group (one launch, one start-up cost).

    Args:
        rank, world_size: passed by :func:`launch`.
        jobs: a list of ``(fn, kwargs)``; each runs as ``fn(rank, world_size, **kwargs)``, with a barrier between.
    Returns:
        the list of the jobs' return values on this rank.
    """
    import torch.distributed as dist

    out = []
    for fn, kwargs in jobs:
        out.append(fn(rank, world_size, **kwargs))
        dist.barrier()
    return out


def _worker(rank, fn, world_size, port, rpc_port, backend, timeout_s, threads, queue, args):
    import torch
    import torch.distributed as dist

    torch.set_num_threads(threads)
    # torch's model averager and DDP pass the gloo backend object where a group is expected (harmless, noisy)
    warnings.filterwarnings("ignore", message="You are using a Backend", category=UserWarning)
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    try:
        if backend == "nccl":
            torch.cuda.set_device(rank % torch.cuda.device_count())
        dist.init_process_group(backend, rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(seconds=timeout_s))
        if rpc_port:
            from torch.distributed import rpc

            opts = rpc.TensorPipeRpcBackendOptions(init_method=f"tcp://127.0.0.1:{rpc_port}", rpc_timeout=timeout_s,
                                                   _transports=["uv"])
            rpc.init_rpc(f"worker{rank}", rank=rank, world_size=world_size, rpc_backend_options=opts)
        try:
            result = fn(rank, world_size, *args)
        finally:
            if rpc_port:
                rpc.shutdown()
        queue.put((rank, "ok", pickle.dumps(result)))  # plain bytes: no shared-memory handles
    except BaseException as exc:  # report every failure to the parent, never hang it
        queue.put((rank, "error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def launch(fn, world_size: int, *args, backend: str = "gloo", rpc: bool = False, timeout_s: float = 120.0,
           threads: int = 1) -> list:
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` fresh processes joined in one process group.

    Args:
        fn: a module-level function (it is pickled by name for the forkserver and spawn start methods).
        world_size: number of processes (>= 1).
        *args: picklable arguments passed to every worker.
        backend: "gloo" (CPU) or "nccl" (one GPU per rank).
        rpc: also start ``torch.distributed.rpc`` (workers are named "worker0", "worker1", ...).
        timeout_s: wall-clock bound of the whole group and of each collective.
        threads: ``torch.set_num_threads`` in each worker.
    Returns:
        the workers' return values, in rank order.
    Raises:
        CourseError: a worker failed (its error is in the message) or the group ran past ``timeout_s``.
    """
    import torch.multiprocessing as mp

    from ..validation import CourseError, check_int, check_positive

    world_size = check_int(world_size, "world_size", 1)
    check_positive(timeout_s, "timeout_s")
    if backend not in ("gloo", "nccl"):
        raise CourseError(f"backend must be 'gloo' or 'nccl', got {backend!r}.")
    ctx, method = _context()
    queue = ctx.SimpleQueue()
    port, rpc_port = free_port(), (free_port() if rpc else 0)
    procs = mp.start_processes(_worker, args=(fn, world_size, port, rpc_port, backend, timeout_s, threads, queue,
                                              args), nprocs=world_size, join=False, start_method=method)
    results, errors = {}, []
    deadline = time.monotonic() + timeout_s
    try:
        while len(results) + len(errors) < world_size:
            while not queue.empty():
                rank, status, value = queue.get()
                if status == "ok":
                    results[rank] = pickle.loads(value)
                else:
                    errors.append((rank, value))
            if errors:
                break
            if time.monotonic() > deadline:
                raise CourseError(f"the {world_size} workers of {getattr(fn, '__name__', fn)} did not finish within "
                                  f"timeout_s={timeout_s:g} s; try fewer steps or a larger timeout_s.")
            if not any(p.is_alive() for p in procs.processes) and queue.empty():
                codes = [p.exitcode for p in procs.processes]
                raise CourseError(f"the workers of {getattr(fn, '__name__', fn)} exited (codes {codes}) without a "
                                  f"result; run with fewer workers or check memory.")
            time.sleep(0.01)
        if errors:
            rank, msg = errors[0]
            raise CourseError(f"worker {rank} of {getattr(fn, '__name__', fn)} failed: {msg}")
    finally:
        for p in procs.processes:
            p.join(timeout=max(1.0, min(10.0, deadline - time.monotonic())))
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
    return [results[r] for r in range(world_size)]
