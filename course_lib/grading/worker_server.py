"""A warm sandbox for student workers: import IPython and NumPy once, fork one worker per submission.

Every submission's trusted re-scoring used to start its student worker from scratch: ``unshare``,
a shell, ``setpriv``, then a Python interpreter importing IPython, NumPy and the course library
before the notebook's first line ran -- about 0.25 s of CPU per submission on the 2-core course
machine (benchmarks/README.md). A :class:`WorkerServer` is one sandboxed process with exactly the
worker's sandbox (``sandbox.wrap``: the same hidden and read-only paths, no network, no
capability) that imports all that once and then, per request, forks a child that

1. starts its own session with the submission's resource limits (``sandbox.Limits``),
2. takes the scrubbed environment, a fresh home as working directory, fresh random seeds, and the
   two pipe ends the trusted side passed (``SCM_RIGHTS``) as its stdin and stdout,
3. runs :func:`course_lib.grading.worker.main` -- exactly what ``python -m course_lib.grading.worker``
   runs.

The server never runs student code, and each child is a copy-on-write fork of the same freshly
imported state, so nothing of one submission reaches the next. The server is PID 1 of its PID
namespace: it serves **one worker at a time**, and before each new worker, and whenever the trusted
side closes one, it kills every other process in the namespace (``kill(-1, SIGKILL)``), so nothing a
submission leaves running (a daemon in its own session) outlives it into the next one. A worker
cannot take over the server: the server is not dumpable (``PR_SET_DUMPABLE`` 0: no ``ptrace``, no
``/proc/1/mem`` without a capability, and the worker has none), it ignores the signals a process of
its own namespace may send to a namespace's PID 1, it drops its control socket in every child, and
imports nothing after it started.

:class:`WorkerServer` is the trusted side's handle; the trusted runner (``trusted_server``) keeps one
per grading thread and hands it to each job's :class:`~course_lib.grading.student.StudentProcess`.
Where namespaces are not available there is no server: each worker starts fresh, as before.
"""
from __future__ import annotations

import os
import signal
import socket
import sys
import tempfile
import threading
import time

from . import protocol
from .forkserver import exit_code, freeze_heap
from .sandbox import Limits, popen_kwargs, python_module, scrubbed_env, stop, wrap

__all__ = ["WorkerServer", "ForkedWorker", "serve"]

# what a process of its own namespace could send to the server (a namespace's init only gets handled signals)
_IGNORED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGQUIT)
# what the course notebooks' answer cells import (every assignment: NumPy and the course library's problems),
# the worker, and what creating the worker's InteractiveShell imports lazily (70 of its 124 ms, cProfile)
_PRELOAD = ("numpy", "course_lib.problems", "course_lib.datasets", "course_lib.grading.worker",
            "IPython.core.interactiveshell", "IPython.core.completer", "IPython.core.completerlib",
            "IPython.core.history", "IPython.core.magics", "IPython.core.application", "IPython.core.oinspect",
            "sqlite3", "tempfile", "random")


def _reap() -> dict[int, int]:
    """Reap every finished child (orphans too: the server is its namespace's init); {pid: exit code}."""
    done = {}
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return done
        if pid == 0:
            return done
        done[pid] = os.waitstatus_to_exitcode(status)


def _kill_all() -> dict[int, int]:
    """Kill every other process of this PID namespace and reap them; {pid: exit code}."""
    try:
        os.kill(-1, signal.SIGKILL)  # as PID 1 of the namespace: everything in it but this process
    except ProcessLookupError:
        pass
    done = {}
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return done
        done[pid] = os.waitstatus_to_exitcode(status)


def _child(request: dict, fds: list[int], control: int) -> None:
    """In the forked child: session, limits, environment, fresh seeds, the protocol pipes; then the worker."""
    code = 70
    try:
        os.close(control)
        for sig in _IGNORED:  # a fresh worker's signal handling, and dumpable like any process
            signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE 1
        from .sandbox import _limit

        _limit(Limits(**request["limits"]))()  # setsid + rlimits
        os.chdir(request["home"])
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None  # from TMPDIR again
        sys.path.insert(0, request["home"])  # as `python -m course_lib.grading.worker` started in the home folder
        import random

        import numpy

        random.seed()
        numpy.random.seed()  # a fresh process's global generators are seeded from the OS, so are the children's
        os.dup2(fds[0], 0)
        os.dup2(fds[1], 1)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        for fd in (*fds, null):
            os.close(fd)
        from course_lib.grading.worker import main

        main()
        code = 0
    except SystemExit as exc:
        code = exit_code(exc)
    except BaseException:  # noqa: BLE001 - the trusted side sees a worker that ended
        code = 1
    finally:
        os._exit(code)


def serve() -> None:
    """The server's loop (``python -m course_lib.grading.worker_server``, fd 0 its control socket)."""
    control = os.dup(0)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(null, 2)
    if os.getpid() != 1:  # kill(-1) would reach every process of this user: only as a namespace's init
        return
    for sig in _IGNORED:
        signal.signal(sig, signal.SIG_IGN)
    try:
        import ctypes

        if ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE 0
            return
    except (OSError, AttributeError):
        return
    import gc
    import importlib

    gc.disable()  # until freeze_heap(): the imports only
    for name in _PRELOAD:
        importlib.import_module(name)
    sys.path[:] = [p for p in sys.path if p not in ("", ".")]  # nothing is imported from a writable folder
    freeze_heap()
    sock = socket.socket(fileno=control)
    exits: dict[int, int] = {}
    while True:
        try:
            request = protocol.recv(control)
        except (EOFError, OSError, ValueError, protocol.ProtocolError):
            break
        op = request.get("op")
        exits.update(_reap())
        if op == "spawn":
            _, fds, _, _ = socket.recv_fds(sock, 1, 2)
            exits.update(_kill_all())  # one worker at a time: nothing of an earlier one survives
            pid = os.fork()
            if pid == 0:
                _child(request, fds, control)
            for fd in fds:
                os.close(fd)
            reply = {"pid": pid}
        elif op == "status":
            pid = int(request["pid"])
            reply = {"returncode": exits.get(pid)}
        elif op == "kill":
            exits.update(_kill_all())
            reply = {"returncode": exits.get(int(request.get("pid", 0)))}
        elif op == "exit":
            break
        else:
            reply = {"error": f"unknown request {op!r}"}
        protocol.send(control, reply)
    _kill_all()


class ForkedWorker:
    """The ``subprocess.Popen``-like handle of one worker forked by a :class:`WorkerServer`.

    ``stdin``/``stdout`` are the protocol pipes; ``poll``, ``kill`` and ``wait`` go through the server
    (the worker's PID lives in the server's namespace, where this process cannot signal it).
    """

    def __init__(self, server: "WorkerServer", pid: int, stdin, stdout):
        self.server, self.pid, self.stdin, self.stdout = server, pid, stdin, stdout
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.server.status(self.pid)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            code = self.server.kill(self.pid)
            self.returncode = -signal.SIGKILL if code is None else code

    def wait(self, timeout: float | None = None) -> int:
        self.kill()
        return self.returncode

    def close(self) -> None:
        self.kill()
        for f in (self.stdin, self.stdout):
            try:
                f.close()
            except OSError:
                pass


class WorkerServer:
    """The trusted side's handle on one warm worker sandbox (see the module docstring).

    Args:
        hide, readonly: the workers' hidden and read-only paths (``sandbox.wrap``); a server serves one set.
        die_with_parent: the sandbox is killed when the thread that starts it ends (see ``sandbox.popen_kwargs``).
    """

    def __init__(self, hide=(), readonly=(), die_with_parent: bool = False):
        self.hide, self.readonly = list(hide), list(readonly)
        self.key = (tuple(self.hide), tuple(self.readonly))
        self.home = tempfile.mkdtemp(prefix="course-worker-server-")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock = ours  # the server reads its first request once it has imported everything
        self._owner = os.getpid()  # the process that started it (the trusted runner; its jobs are forks)
        self._lock = threading.Lock()
        argv = wrap(python_module("course_lib.grading.worker_server"), hide=self.hide, readonly=self.readonly,
                    network=False)
        limits = Limits(memory_mb=1 << 20, cpu_s=24 * 3600)  # the server's own; each worker gets the job's
        kwargs = popen_kwargs(limits, self.home, scrubbed_env(self.home, {"COURSE_GRADING_WORKER": "1"}),
                              die_with_parent=die_with_parent)
        import subprocess

        try:
            self.proc = subprocess.Popen(argv, stdin=theirs.fileno(), stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, **kwargs)
        finally:
            theirs.close()

    @property
    def alive(self) -> bool:
        """Not known to have ended (in a forked job, which cannot wait for the server: not stopped there)."""
        if self.proc is None:
            return False
        return os.getpid() != self._owner or self.proc.poll() is None

    def _call(self, message: dict, fds=(), timeout: float = 60.0) -> dict:
        """One request and its reply; raises RuntimeError (and stops the server) if the server fails."""
        with self._lock:
            if self.proc is None:
                raise RuntimeError("the worker server was stopped")
            try:
                fd = self.sock.fileno()
                protocol.send(fd, message)
                if fds:
                    socket.send_fds(self.sock, [b"F"], list(fds))
                return self._read(fd, timeout)
            except (OSError, EOFError, TimeoutError, ValueError, KeyError, protocol.ProtocolError) as err:
                self.close()
                raise RuntimeError(f"the worker server failed: {type(err).__name__}: {err}") from None

    @staticmethod
    def _read(fd: int, timeout: float) -> dict:
        reply = protocol.recv(fd, time.monotonic() + timeout)
        if "error" in reply:
            raise protocol.ProtocolError(f"the worker server refused: {reply['error']:.200}")
        return reply

    def spawn(self, home: str, env: dict, limits: Limits) -> ForkedWorker:
        """Fork a worker (home folder, environment, limits); any worker still running is killed first.

        Raises:
            RuntimeError: the server failed (the caller starts a fresh worker instead).
        """
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        try:
            reply = self._call({"op": "spawn", "home": str(home), "env": dict(env),
                                "limits": {"memory_mb": limits.memory_mb, "cpu_s": limits.cpu_s,
                                           "file_mb": limits.file_mb}},
                               fds=(to_worker_r, from_worker_w))
        except RuntimeError:
            os.close(to_worker_w)
            os.close(from_worker_r)
            raise
        finally:
            os.close(to_worker_r)
            os.close(from_worker_w)
        return ForkedWorker(self, int(reply["pid"]), os.fdopen(to_worker_w, "wb", buffering=0),
                            os.fdopen(from_worker_r, "rb", buffering=0))

    def status(self, pid: int) -> int | None:
        """The worker's exit code, or None while it runs (a failed server: it is gone, -SIGKILL)."""
        try:
            return self._call({"op": "status", "pid": int(pid)})["returncode"]
        except RuntimeError:
            return -signal.SIGKILL

    def kill(self, pid: int = 0) -> int | None:
        """Kill every worker of this server (and all they started); the exit code of ``pid`` if it had ended."""
        try:
            return self._call({"op": "kill", "pid": int(pid)})["returncode"]
        except RuntimeError:
            return None

    def close(self) -> None:
        """Stop the server and everything in its sandbox."""
        if self.proc is not None:
            stop(self.proc)
            self.proc = None
        try:
            self.sock.close()
        except OSError:
            pass
        import shutil

        shutil.rmtree(self.home, ignore_errors=True)


if __name__ == "__main__":
    from course_lib.grading.worker_server import serve as _serve  # the imported module, as trusted.py does

    _serve()
