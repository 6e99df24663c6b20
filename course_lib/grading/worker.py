"""The untrusted side: runs a student's notebook code and answers calls to its functions.

Started by :class:`course_lib.grading.student.StudentProcess` inside the sandbox as
``python -m course_lib.grading.worker``. It reads length-prefixed JSON requests on its original
stdin and answers on its original stdout; the student's own prints go to a log file, never into
the protocol. Requests:

- ``{"op": "load", "cells": [...], "forbidden": [...]}``: run the notebook's code cells (IPython
  syntax, magics included) after replacing each forbidden library function by one that refuses. A
  second ``load`` first empties the namespace (``InteractiveShell.reset``): ``course check`` grades
  many mutants of the reference solution in one warm worker.
- ``{"op": "get", "name": n}``: is ``n`` defined, callable, and if not its value.
- ``{"op": "call", "name": n, "args": ..., "kwargs": ...}``: call ``n`` and return its value.

Nothing here is trusted: a student can replace any of it at run time. The trusted grader only
ever decodes plain data from the answers (``protocol.decode``), so the worst a student can do is
choose what their own functions appear to return.
"""
from __future__ import annotations

import importlib
import os
import sys
import traceback

from .protocol import decode, encode, recv, send


class ForbiddenCall(RuntimeError):
    """Raised when a submission calls the library's reference implementation of the task."""


def _forbid(path: str) -> None:
    module_name, _, qual = path.rpartition(".")
    owner_path = module_name
    try:
        owner = importlib.import_module(module_name)
        parent, attr = owner, qual
    except ImportError:  # a method: course_lib.problems.LogisticRegression.grad
        owner_path, _, cls_name = module_name.rpartition(".")
        parent, attr = getattr(importlib.import_module(owner_path), cls_name), qual

    def refuse(*args, **kwargs):
        raise ForbiddenCall(f"This assignment asks you to implement this yourself: calling the course "
                            f"library's {path} is not allowed here.")

    refuse.__name__ = attr
    setattr(parent, attr, refuse)


def _short_traceback(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "course_lib/grading" not in f.filename]
    lines = traceback.format_list(frames[-4:])
    return "".join(lines) + "".join(traceback.format_exception_only(type(exc), exc)).strip()


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except BaseException:  # noqa: BLE001 - a student's exception may refuse to print
        text = "<unprintable>"
    return f"{type(exc).__name__}: {text}"[:2000]


def main() -> None:
    rfd, wfd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    log = os.open("student_output.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    shell = None
    while True:
        try:
            msg = recv(rfd)
        except EOFError:
            break
        op = msg.get("op")
        try:
            if op == "load":
                for path in msg.get("forbidden", []):
                    _forbid(path)
                from IPython.core.interactiveshell import InteractiveShell

                if shell is not None:  # another program in this warm worker (course check: the next mutant)
                    shell.reset(new_session=False)
                shell = InteractiveShell.instance()
                errors = []
                for i, src in enumerate(msg["cells"]):
                    res = shell.run_cell(src, store_history=False, silent=False)
                    err = res.error_before_exec or res.error_in_exec
                    if err is not None:
                        errors.append({"cell": i, "error": _describe(err)})
                reply = {"ok": True, "errors": errors}
            elif op == "get":
                ns = shell.user_ns if shell else {}
                name = msg["name"]
                if name not in ns:
                    reply = {"ok": True, "kind": "missing"}
                elif callable(ns[name]):
                    reply = {"ok": True, "kind": "callable"}
                else:
                    reply = {"ok": True, "kind": "value", "value": encode(ns[name])}
            elif op == "call":
                fn = shell.user_ns[msg["name"]]
                args = decode(msg.get("args", []), allow_refs=True)
                kwargs = decode(msg.get("kwargs", {}), allow_refs=True)
                try:
                    value = fn(*args, **kwargs)
                except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt too
                    reply = {"ok": False, "error": _describe(exc), "traceback": _short_traceback(exc)}
                else:
                    try:
                        reply = {"ok": True, "value": encode(value)}
                    except TypeError as exc:
                        reply = {"ok": False, "error": f"your function returned a value that cannot be graded: {exc}"}
            elif op == "exit":
                break
            else:
                reply = {"ok": False, "error": f"unknown request {op!r}"}
        except BaseException as exc:  # noqa: BLE001
            reply = {"ok": False, "error": _describe(exc)}
        sys.stdout.flush()
        send(wfd, reply)


if __name__ == "__main__":
    main()
