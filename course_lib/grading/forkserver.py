"""A warm, sandboxed nbgrader: import nbgrader once, fork one fresh child per submission.

``course autograde`` runs real ``nbgrader autograde`` once per submission, each in its own scratch
course. Starting Python and importing nbgrader (traitlets, nbconvert, SQLAlchemy, jupyter_client,
jsonschema ...) costs 2-4 s of CPU on the 2-core course machine -- more than nbgrader's own work on
a small assignment. A :class:`ForkServer` is one sandboxed process (``sandbox.wrap``: the same hidden
and read-only paths as the per-submission command it replaces) that imports nbgrader once and, for
each request, forks a child that

1. starts a new session (``setsid``) with the submission's resource limits (``sandbox.Limits``),
2. where Linux allows, enters a new PID namespace of its own (the nbgrader process is its PID 1, so
   every process the student's kernel leaves behind dies with it, as with one ``unshare`` per run)
   and drops every capability (``sandbox.drop_capabilities``: the server keeps the namespace root's
   capabilities only to make that namespace; its children, which start the kernels, have none),
3. takes the scrubbed environment and the scratch course as working directory, sends its output to
   the scratch course's log, and runs ``nbgrader <args>`` exactly as ``python -m nbgrader`` would.

The server never runs student code itself: only its forked children start kernels. Fork after import
is copy-on-write: each child starts from the same clean, freshly imported state, nothing of one
submission reaches the next. Requests and replies are the grading protocol's length-prefixed JSON.

:class:`ForkServerPool` hands one server to each grading thread (``--jobs N``: at most N servers,
each serving its submissions one after the other) and stops them all at the end.
"""
from __future__ import annotations

import ctypes
import gc
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time

from . import protocol
from .sandbox import (Limits, kill_group, namespaces_available, popen_kwargs, python_module, scrubbed_env, stop,
                      wrap)

__all__ = ["WarmServer", "ServerPool", "ForkServer", "ForkServerPool", "run_nbgrader", "serve",
           "serve_forks", "protocol_fds", "exit_code", "freeze_heap"]

_CLONE_NEWPID = 0x20000000


def _new_pid_namespace() -> bool:
    """unshare(CLONE_NEWPID): the next fork of this process becomes PID 1 of a fresh namespace."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.unshare(_CLONE_NEWPID) == 0
    except (OSError, AttributeError):
        return False


def _child(request: dict) -> None:
    """In the forked child: limits, namespace, environment, output; then nbgrader. Never returns."""
    code = 70
    try:
        from .sandbox import _limit, drop_capabilities

        _limit(Limits(**request["limits"]))()  # setsid + rlimits
        if request.get("pid_namespace"):
            if not _new_pid_namespace():
                raise OSError("could not enter a new PID namespace")
            pid = os.fork()  # the grandchild is PID 1 of the new namespace: its leftovers die with it
            if pid:
                _, status = os.waitpid(pid, 0)
                os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
        if request.get("drop_capabilities"):
            drop_capabilities()  # before nbgrader starts the student's kernel: the mounts stay as they are
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        sys.argv = ["nbgrader", *request["args"]]
        from nbgrader.apps.nbgraderapp import NbGraderApp

        try:
            NbGraderApp.launch_instance(argv=list(request["args"]))
            code = 0
        except SystemExit as exc:
            code = exit_code(exc)
    except BaseException:  # noqa: BLE001 - report into the log, exit non-zero
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def exit_code(exc: SystemExit) -> int:
    """The status a process exits with for ``exc`` (``sys.exit(n)``, ``sys.exit()``, ``sys.exit("message")``)."""
    return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)


def _wait(pid: int, deadline: float) -> int | None:
    """The child's exit code, or None if it is still running at the deadline.

    Woken by the child's exit itself (a pidfd, Linux 5.3+) rather than by polling; where there is no
    pidfd, polled every 20 ms.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if pidfd is None:
                time.sleep(min(0.02, left))
            else:
                select.select([pidfd], [], [], left)  # readable once the child has exited
    finally:
        if pidfd is not None:
            os.close(pidfd)


def freeze_heap() -> None:
    """Move everything the server has imported out of the garbage collector's reach (``gc.freeze``), then collect.

    A server disables the collector before its imports (a module import creates no garbage cycles worth
    collecting, and each collection traverses every object imported so far: 0.4-0.7 s of a 2.4 s import
    of nbgrader), and calls this once they are done. A forked child's collections then traverse only
    what the child itself allocates, not the imported modules it inherited, and leave their pages shared
    with the server (the gc module's documentation recommends this before ``fork()`` without ``exec()``).
    """
    gc.collect()
    gc.freeze()
    gc.enable()


def serve_forks(rfd: int, wfd: int, child, before=None, after=None) -> None:
    """The loop of a warm server: for each request on ``rfd`` fork, run ``child(request)`` there, reply on ``wfd``.

    The parent waits at most ``request["timeout"]`` seconds, then kills the child's whole session
    (finished or not) and replies ``{"returncode": ..., "timed_out": ...}``; ``{"op": "exit"}`` or
    end of input stops the loop.

    Args:
        rfd, wfd: the request and reply file descriptors (closed in the child).
        child: runs in the forked child and never returns (``os._exit``).
        before, after: optional, in the server: ``before(request)`` just before the fork,
            ``after(request, returncode, timed_out)`` once the child's session is killed.
    """
    freeze_heap()
    protocol.send(wfd, {"ready": True})
    while True:
        try:
            request = protocol.recv(rfd)
        except EOFError:
            break
        if request.get("op") == "exit":
            break
        if before is not None:
            before(request)
        pid = os.fork()
        if pid == 0:
            os.close(rfd)
            os.close(wfd)
            child(request)
            os._exit(70)  # not reached: child() exits itself
        code = _wait(pid, time.monotonic() + float(request["timeout"]))
        timed_out = code is None
        try:
            os.killpg(pid, signal.SIGKILL)  # the child's whole session, finished or not
        except (ProcessLookupError, PermissionError):
            pass
        if timed_out:
            code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        if after is not None:
            after(request, code, timed_out)
        protocol.send(wfd, {"returncode": code, "timed_out": timed_out})


def protocol_fds() -> tuple[int, int]:
    """A server's request/reply descriptors (its original stdin/stdout); fds 0 and 1 then point to /dev/null."""
    rfd, wfd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    return rfd, wfd


def serve() -> None:
    """The nbgrader server (``python -m course_lib.grading.forkserver``): import nbgrader, then fork per request."""
    rfd, wfd = protocol_fds()
    gc.disable()  # until freeze_heap(): the imports only
    from nbgrader.apps.nbgraderapp import NbGraderApp  # noqa: F401 - the import the children share
    import nbgrader.apps.autogradeapp  # noqa: F401
    import nbgrader.converters.autograde  # noqa: F401
    from . import prompt_kernel  # noqa: F401 - the scratch course's Execute

    serve_forks(rfd, wfd, _child)


class WarmServer:
    """The client's handle on a warm server process (:func:`serve_forks` on the other end).

    Args:
        argv: the server's command line.
        popen: keyword arguments for ``subprocess.Popen`` (limits, cwd, environment).
    """

    def __init__(self, argv: list[str], **popen):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     **popen)
        self._ready = False

    def _reply(self, timeout: float) -> dict:
        return protocol.recv(self.proc.stdout.fileno(), time.monotonic() + timeout)

    def request(self, message: dict, timeout: float) -> tuple[int, bool]:
        """Run one request in a fresh forked child of the server; returns (exit code, timed out).

        Raises:
            RuntimeError: the server itself failed (it is stopped; the caller falls back to a fresh process).
        """
        try:
            if not self._ready:
                self._reply(120)
                self._ready = True
            protocol.send(self.proc.stdin.fileno(), dict(message, timeout=float(timeout)))
            reply = self._reply(timeout + 60)
            return int(reply["returncode"]), bool(reply["timed_out"])
        except (OSError, EOFError, TimeoutError, ValueError, KeyError, protocol.ProtocolError) as err:
            self.close()
            raise RuntimeError(f"the warm server failed: {type(err).__name__}: {err}") from None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        """Stop the server (and anything still running under it)."""
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


class ForkServer(WarmServer):
    """One sandboxed, warm nbgrader process (see the module docstring).

    Args:
        hide, readonly: paths hidden from / read-only for everything it runs (see ``sandbox.wrap``).
        limits: resource limits of the server itself (its children get each request's own limits).
    """

    def __init__(self, hide=(), readonly=(), limits: Limits = Limits(memory_mb=1 << 20, cpu_s=24 * 3600)):
        self.hide, self.readonly = list(hide), list(readonly)
        self.home = tempfile.mkdtemp(prefix="course-forkserver-")
        argv = wrap(python_module("course_lib.grading.forkserver"), hide=self.hide, readonly=self.readonly,
                    network=True, keep_capabilities=True)  # each child drops them (see _child)
        super().__init__(argv, **popen_kwargs(limits, self.home, scrubbed_env(self.home)))

    def run(self, args: list[str], cwd: str, env: dict, log: str, limits: Limits, timeout: float) -> tuple[int, bool]:
        """Run ``nbgrader *args`` in a fresh forked child; returns (exit code, timed out).

        Raises:
            RuntimeError: the server itself failed (the caller falls back to a fresh process).
        """
        return self.request({
            "args": list(args), "cwd": str(cwd), "env": dict(env), "log": str(log),
            "limits": {"memory_mb": limits.memory_mb, "cpu_s": limits.cpu_s, "file_mb": limits.file_mb},
            "pid_namespace": namespaces_available(), "drop_capabilities": namespaces_available()}, timeout)

    def close(self) -> None:
        super().close()
        import shutil

        shutil.rmtree(self.home, ignore_errors=True)


class ServerPool:
    """Warm servers for the grading threads: a free one is reused, a new one started when none is free.

    ``acquire(*key)`` hands a free server made by ``factory(*key)`` (servers with different keys, e.g.
    different hidden paths, are never mixed), ``release`` gives it back, ``close`` (or leaving the
    ``with`` block) stops them all. With ``--jobs N`` at most N servers of a key exist.

    Args:
        factory: makes a server from a key; the server needs ``alive`` and ``close()``.
    """

    def __init__(self, factory):
        self.factory = factory
        self._lock = threading.Lock()
        self._free: dict[tuple, list] = {}
        self._all: list = []
        self._key_of: dict[int, tuple] = {}

    def acquire(self, *key):
        key = tuple(tuple(k) if isinstance(k, (list, tuple)) else k for k in key)
        with self._lock:
            free = self._free.setdefault(key, [])
            while free:
                server = free.pop()
                if server.alive:
                    return server
        server = self.factory(*key)  # outside the lock: starting a server takes a while
        with self._lock:
            self._all.append(server)
            self._key_of[id(server)] = key
        return server

    def warm(self, count: int, *key) -> None:
        """Start ``count`` servers for ``key`` now (they import while the caller does other work)."""
        servers = [self.acquire(*key) for _ in range(max(0, int(count)))]
        for server in servers:
            self.release(server)

    def release(self, server) -> None:
        if server.alive:
            with self._lock:
                self._free.setdefault(self._key_of[id(server)], []).append(server)

    def close(self) -> None:
        with self._lock:
            for server in self._all:
                server.close()
            self._all.clear()
            self._free.clear()
            self._key_of.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ForkServerPool(ServerPool):
    """Warm nbgrader fork servers, one per (hidden paths, read-only paths) and grading thread."""

    def __init__(self):
        super().__init__(ForkServer)

    def acquire(self, hide=(), readonly=()) -> ForkServer:
        return super().acquire(hide, readonly)

    def warm(self, count: int, hide=(), readonly=()) -> None:
        super().warm(count, hide, readonly)


def run_nbgrader(args: list[str], cwd, env: dict, log, limits: Limits, timeout: float, hide=(), readonly=(),
                 forks: ForkServerPool | None = None) -> str:
    """Run ``nbgrader *args`` sandboxed (hidden/read-only paths, limits, scrubbed env); '' or what went wrong.

    With ``forks``, a warm fork server runs it; without one (or if the server fails) a fresh
    ``unshare ... python -m nbgrader`` process does, exactly as before the fork server existed.

    Args:
        args: nbgrader's command line (e.g. ``["autograde", HW, "--student", s, "--force"]``).
        cwd, env, log: working directory (the scratch course), environment, log file (stdout and stderr).
        limits, timeout: resource limits and wall seconds.
        hide, readonly: see ``sandbox.wrap``.
        forks: a pool of fork servers, or None.
    Returns:
        "" when nbgrader ran to its end, else a short note for the grading summary.
    """
    if forks is not None:
        server = forks.acquire(hide, readonly)
        try:
            _, timed_out = server.run(args, str(cwd), env, str(log), limits, timeout)
            return f"nbgrader {args[0]} stopped after {timeout:g} s; " if timed_out else ""
        except RuntimeError:
            pass  # a broken server: grade this submission with a fresh process instead
        finally:
            forks.release(server)
    argv = wrap(python_module("nbgrader", *args), hide=list(hide), readonly=list(readonly), network=True)
    with open(log, "a") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, **popen_kwargs(limits, str(cwd), env))
        try:
            proc.wait(timeout=timeout)
            return ""
        except subprocess.TimeoutExpired:
            return f"nbgrader {args[0]} stopped after {timeout:g} s; "
        finally:
            kill_group(proc)
            proc.wait()


if __name__ == "__main__":
    serve()
