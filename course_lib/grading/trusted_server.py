"""A warm trusted runner: import the trusted grader once, fork one fresh child per grading job.

``run_trusted`` used to start ``python -m course_lib.grading.trusted`` for every submission: a new
interpreter importing pytest, nbformat, NumPy and the grading modules, then pytest's lazily
imported internals on its first session -- about 0.45 s of each submission's ~1.1 s of trusted
re-scoring on the 2-core course machine (profile in benchmarks/README.md). A :class:`TrustedServer`
(``python -m course_lib.grading.trusted_server``) pays that once per grading thread: it imports
everything, runs one empty pytest session to load the rest, and then, for each job, forks a child
that runs exactly what the fresh process ran (:func:`course_lib.grading.trusted.main` on the job
file) and exits.

Safety is unchanged. The trusted runner never runs student code (each job still gets its own
sandboxed worker for the submission, forked from the runner's warm worker sandbox,
:mod:`course_lib.grading.worker_server`, which has the job's hidden and read-only paths); fork is
copy-on-write, so every job starts from the same freshly imported state and nothing of one job
(test modules, instructor state, the student session) reaches the next. The child gets its own
session, the job's time limit is enforced by the server, which then kills the child's whole
session (and the worker sandbox, made again for the next job), and its stderr goes to a file
that ``run_trusted`` reports exactly as it reported a fresh process's stderr.
"""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .forkserver import ServerPool, WarmServer, exit_code, protocol_fds, serve_forks
from .sandbox import python_module

__all__ = ["TrustedServer", "TrustedServerPool", "serve"]


_WORKERS = None  # this runner's warm worker sandbox (worker_server.WorkerServer), made for the first job that needs it


def _before(request: dict) -> None:
    """In the server, before a job's fork: a worker sandbox with the job's hidden and read-only paths.

    The sandbox outlives the job (the next submission's worker is forked from it); one with other
    paths, or a dead one, is replaced. Without namespaces there is none: workers start fresh.
    """
    global _WORKERS
    from .sandbox import namespaces_available
    from .worker_server import WorkerServer

    try:
        job = json.loads(Path(request["job"]).read_text())
    except (OSError, ValueError):
        return  # the child reports the unreadable job
    key = (tuple(job.get("hide", [])), tuple(job.get("readonly", [])))
    if _WORKERS is not None and (_WORKERS.key != key or not _WORKERS.alive):
        _WORKERS.close()
        _WORKERS = None
    if _WORKERS is None and namespaces_available():
        _WORKERS = WorkerServer(*key, die_with_parent=True)  # it imports while the job's pytest sets up


def _after(request: dict, returncode: int, timed_out: bool) -> None:
    """In the server, after a job: no worker of it survives; a job that ended abnormally may have left the
    sandbox's control connection in the middle of a request, so that sandbox is replaced."""
    global _WORKERS
    if _WORKERS is None:
        return
    if timed_out or returncode != 0:
        _WORKERS.close()
        _WORKERS = None
    else:
        _WORKERS.kill()  # normally nothing is left; a failed sandbox is closed (and made again for the next job)


def _child(request: dict) -> None:
    """In the forked child: own session, stderr to the job's file, then the trusted runner. Never returns."""
    code = 70
    try:
        os.setsid()
        err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(err, 2)
        from course_lib.grading.trusted import main

        code = main([request["job"], request["out"]], workers=_WORKERS)
    except SystemExit as exc:
        code = exit_code(exc)
    except BaseException:  # noqa: BLE001 - reported through the stderr file, like a fresh process's traceback
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stderr.flush()
        finally:
            os._exit(code)


def _warm_up() -> None:
    """Import what every job needs, and run one empty pytest session (pytest imports much of itself lazily)."""
    from types import SimpleNamespace

    import course_lib.grading.trusted as trusted  # pytest, nbformat, NumPy and the sandbox client
    import course_lib.grading.worker_server  # noqa: F401 - the worker sandbox's client
    from course_lib.grading.check import jobs_root
    from course_lib.grading.sandbox import namespaces_available

    namespaces_available()  # checked once, here, not in the first job

    cell = SimpleNamespace(grade_id="warm_up", code="def test_warm_up():\n    assert 1 + 1 == 2\n",
                           tests=["test_warm_up"], hidden_tests=[], points=1.0)
    # in the root every sandbox hides, like a job's test modules: a student worker graded beside this warm-up
    # (another stream, another course's run) must not find any trusted runner's test module
    with tempfile.TemporaryDirectory(prefix="course-trusted-warm-", dir=jobs_root()) as tmp:
        result = trusted._run_cells([cell], [], Path(tmp))
    if not result[0].passed:  # pytest itself is broken: let every job fail loudly in a fresh process
        raise RuntimeError(f"the trusted runner's warm-up session failed: {result[0]}")


def serve() -> None:
    """The server's loop (``python -m course_lib.grading.trusted_server``)."""
    rfd, wfd = protocol_fds()
    gc.disable()  # until serve_forks' freeze_heap(): the imports and the warm-up only
    _warm_up()
    try:
        serve_forks(rfd, wfd, _child, before=_before, after=_after)
    finally:
        if _WORKERS is not None:
            _WORKERS.close()


class TrustedServer(WarmServer):
    """One warm trusted runner (see the module docstring); the TA's own environment, no sandbox.

    The trusted runner runs no student code, so -- as the fresh ``python -m course_lib.grading.trusted``
    it replaces -- it is not sandboxed; the sandboxed worker it starts per job is.
    """

    def __init__(self):
        super().__init__(python_module("course_lib.grading.trusted_server"), close_fds=True,
                         start_new_session=True)

    def grade(self, job: str, out: str, stderr: str, timeout: float) -> tuple[int, bool]:
        """Run the trusted grader on ``job`` (a job file), results to ``out``; returns (exit code, timed out).

        Raises:
            RuntimeError: the server itself failed (the caller falls back to a fresh process).
        """
        return self.request({"job": str(job), "out": str(out), "stderr": str(stderr)}, timeout)


class TrustedServerPool(ServerPool):
    """Warm trusted runners, one per grading thread (``course autograde --jobs N``: at most N)."""

    def __init__(self):
        super().__init__(TrustedServer)


def run_fresh(job: str, out: str, timeout: float) -> tuple[int | None, bool, str]:
    """The fallback: the trusted grader in a fresh process; returns (exit code, timed out, stderr's tail)."""
    try:
        proc = subprocess.run(python_module("course_lib.grading.trusted", job, out), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, True, ""
    return proc.returncode, False, proc.stderr[-3000:]


if __name__ == "__main__":
    from course_lib.grading.trusted_server import serve as _serve  # the imported module, as trusted.py does

    _serve()
