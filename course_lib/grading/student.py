"""The trusted side's handle on a sandboxed student process: start, call with a time limit, restart.

A :class:`StudentProcess` runs the student's notebook code once in a sandboxed worker
(:mod:`course_lib.grading.worker`) and then forwards calls to the student's functions. Each call
has a wall-time limit; a call that times out, or a worker that dies (``sys.exit``, ``os._exit``,
a segfault, the memory limit), fails that call with a clear message and the next call starts a
fresh worker, so one bad function costs only the tests that use it.
"""
from __future__ import annotations

import builtins
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from . import protocol
from .sandbox import Limits, kill_group, popen_kwargs, scrubbed_env, stop, wrap

__all__ = ["StudentProcess", "StudentError", "StudentCrash"]


class StudentError(Exception):
    """The student's function raised an exception that is not a Python built-in one."""


class StudentCrash(AssertionError):
    """The student's process ended, or a call ran out of time or memory."""


class StudentProcess:
    """A sandboxed worker running one submission's code.

    Args:
        cells: the student program (code cells, IPython syntax).
        forbidden: dotted paths of library functions the submission may not call.
        limits: memory/CPU/file limits of the worker.
        call_timeout: wall seconds per call of a student function.
        load_timeout: wall seconds to run the notebook's code before the first call.
        hide, readonly: paths hidden from / read-only for the worker (see sandbox.wrap).
        home_root: where the worker's home folder is made (None: the system's temporary folder).
        workers: a warm worker sandbox (:class:`~course_lib.grading.worker_server.WorkerServer`) with the
            same hidden and read-only paths to fork the worker from; None, another sandbox, or a failed
            one: the worker starts fresh (``python -m course_lib.grading.worker`` in its own sandbox).
    """

    def __init__(self, cells: list[str], forbidden: list[str] = (), limits: Limits = Limits(),
                 call_timeout: float = 20.0, load_timeout: float = 120.0, hide=(), readonly=(),
                 home_root: str | None = None, workers=None):
        self.home_root, self.workers = home_root, workers
        self.cells, self.forbidden = list(cells), list(forbidden)
        self.limits, self.call_timeout, self.load_timeout = limits, float(call_timeout), float(load_timeout)
        self.hide, self.readonly = list(hide), list(readonly)
        self.proc: subprocess.Popen | None = None
        self.home: str | None = None
        self.load_errors: list[dict] = []
        self.load_failure: str | None = None
        self.restarts = 0
        self._loading: float | None = None  # when the load request was sent, while its reply is awaited

    # -- process management ----------------------------------------------------------------
    def _spawn(self, wait: bool = True):
        if self.home:  # a restart: the crashed worker's folder goes
            shutil.rmtree(self.home, ignore_errors=True)
        self.home = tempfile.mkdtemp(prefix="course-student-", dir=self.home_root)
        env = scrubbed_env(self.home, {"COURSE_GRADING_WORKER": "1"})
        self.proc = None
        if self.workers is not None and self.workers.alive and self.workers.key == (tuple(self.hide),
                                                                                    tuple(self.readonly)):
            try:
                self.proc = self.workers.spawn(self.home, env, self.limits)
            except RuntimeError:
                self.proc = None  # a failed sandbox: start this worker fresh
        if self.proc is None:
            argv = wrap([sys.executable, "-m", "course_lib.grading.worker"], hide=self.hide,
                        readonly=self.readonly, network=False)
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                **popen_kwargs(self.limits, self.home, env,
                               die_with_parent=threading.current_thread() is threading.main_thread()))
        self._loading = time.monotonic()
        try:
            protocol.send(self.proc.stdin.fileno(), {"op": "load", "cells": self.cells, "forbidden": self.forbidden})
        except OSError:
            pass  # the worker is already gone: waiting for its reply says why
        if wait:
            self._await_load()

    def _await_load(self):
        started, self._loading = self._loading, None
        left = max(0.0, self.load_timeout - (time.monotonic() - started))
        reply = self._request(None, left, what="running your notebook's code", timeout_shown=self.load_timeout)
        self.load_errors = reply.get("errors", [])

    def start(self):
        """Start the worker and send it the notebook now, without waiting (the first call waits for it).

        The worker's Python start-up and the notebook's code then run while the trusted side sets up
        its test session; the load time limit still counts from this moment.
        """
        if self.proc is None and self.load_failure is None:
            self._spawn(wait=False)

    def ensure(self):
        """Start the worker if it is not running (raises StudentCrash if the notebook itself cannot run)."""
        if self.load_failure is not None:
            raise StudentCrash(self.load_failure)
        if self._loading is not None:  # started early: wait for the notebook's code to finish
            try:
                self._await_load()
            except StudentCrash as err:
                self.load_failure = str(err)
                raise
            return
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                self.restarts += 1
            try:
                self._spawn()
            except StudentCrash as err:
                self.load_failure = str(err)
                raise

    def reload(self, cells: list[str]):
        """Run another program in the same warm worker, if it is alive (else the next call starts a fresh one).

        For ``course check`` only: its mutants are the instructor's own code, so one sandbox start can
        serve many of them (a submission always gets a worker of its own). The namespace is emptied
        first; imported modules stay imported.
        """
        self.cells, self.load_errors, self.load_failure, self.restarts = list(cells), [], None, 0
        if self.proc is None or self.proc.poll() is not None:
            self.close()
            return
        try:
            reply = self._request({"op": "load", "cells": self.cells, "forbidden": self.forbidden}, self.load_timeout,
                                  what="running your notebook's code")
            self.load_errors = reply.get("errors", [])
        except StudentCrash as err:
            self.load_failure = str(err)

    def _kill(self):
        """Kill the worker and everything it started (a forked worker: through its sandbox's server)."""
        if isinstance(self.proc, subprocess.Popen):
            kill_group(self.proc)
            self.proc.wait()
        else:
            self.proc.kill()

    def close(self):
        """Stop the worker and remove its temporary directory."""
        if self.proc is not None:
            if isinstance(self.proc, subprocess.Popen):
                stop(self.proc)  # nothing of the worker is kept: no need to wait for a clean exit
            else:
                self.proc.close()
            self.proc = None
        self._loading = None
        if self.home:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _death_reason(self) -> str:
        code = self.proc.poll() if self.proc else None
        if code is None:
            return "it stopped answering"
        if code < 0:
            sig = signal.Signals(-code).name
            hint = " (the memory or CPU limit of the sandbox)" if sig in ("SIGKILL", "SIGXCPU", "SIGSEGV") else ""
            return f"it was killed by {sig}{hint}"
        return f"it exited with code {code} (sys.exit, os._exit or a crash)"

    def _request(self, message: dict | None, timeout: float, what: str, timeout_shown: float | None = None) -> dict:
        """Send ``message`` (None: only wait for the reply to one sent before) and return the worker's reply."""
        try:
            if message is not None:
                protocol.send(self.proc.stdin.fileno(), message)
            return protocol.recv(self.proc.stdout.fileno(), time.monotonic() + timeout)
        except TimeoutError:
            self._kill()
            raise StudentCrash(f"Time limit: {what} took longer than {timeout_shown or timeout:g} s (an infinite loop?). "
                               "The sandbox was stopped.") from None
        except (EOFError, BrokenPipeError, OSError):
            time.sleep(0.05)
            reason = self._death_reason()
            self._kill()
            raise StudentCrash(f"Your code ended the grading process while {what}: {reason}.") from None
        except (protocol.ProtocolError, ValueError) as err:
            self._kill()
            raise StudentCrash(f"Invalid reply from your code while {what}: {err}") from None

    # -- the calls the trusted tests make ----------------------------------------------------
    def get(self, name: str) -> dict:
        """{'kind': 'missing' | 'callable' | 'value', 'value': decoded value}."""
        self.ensure()
        reply = self._request({"op": "get", "name": name}, self.call_timeout, what=f"looking up {name!r}")
        if not reply.get("ok"):
            raise StudentCrash(f"Could not read {name!r} from your notebook: {reply.get('error')}")
        kind = reply.get("kind")
        if kind not in ("missing", "callable", "value"):
            raise StudentCrash(f"Invalid reply while looking up {name!r}.")
        out = {"kind": kind}
        if kind == "value":
            out["value"] = protocol.decode(reply.get("value"))
        return out

    def call(self, name: str, args: tuple, kwargs: dict):
        """Call the student's ``name(*args, **kwargs)`` in the sandbox; return plain decoded data."""
        self.ensure()
        message = {"op": "call", "name": name, "args": protocol.encode(list(args), allow_refs=True),
                   "kwargs": protocol.encode(dict(kwargs), allow_refs=True)}
        reply = self._request(message, self.call_timeout, what=f"running {name}()")
        if reply.get("ok"):
            return protocol.decode(reply.get("value"))
        error = str(reply.get("error", "unknown error"))[:2000]
        etype = error.partition(":")[0]
        exc_cls = getattr(builtins, etype, None)
        text = f"{name}() raised {error}"
        if isinstance(exc_cls, type) and issubclass(exc_cls, Exception) and not issubclass(exc_cls, StopIteration):
            raise exc_cls(text)
        raise StudentError(text)
