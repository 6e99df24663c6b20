"""Running untrusted student code: resource limits, a scrubbed environment and, where Linux allows it,
private namespaces that hide the course directory.

Two layers:

1. Always: a new session (so the whole process group can be killed), rlimits on address space
   (memory bombs end in MemoryError or a kill), CPU seconds, file size and core dumps, a fresh
   temporary working directory, and an environment without the TA's variables.
2. Where unprivileged user namespaces work (most Linux distributions; checked at run time):
   ``unshare --user --mount --pid`` with the course's sensitive paths (gradebook, submissions,
   autograded and feedback folders, reference solutions) covered by empty tmpfs mounts, the
   course directory and the Python installation re-mounted read-only, a private PID namespace (no
   process outlives the run) and, for the student-function worker, no network. Before the command
   runs, every capability is dropped (``setpriv``, or :func:`drop_capabilities` in a fork server's
   child): the namespace's root user created those mounts, so with its capabilities student code
   could simply unmount the covers (``umount2``) or re-mount the course directory read-write.

What this does not give (README, "Trust model"): protection of other files the TA's user can read
outside the course directory, or CPU/memory fairness beyond rlimits. On a shared server run the
grader as a separate OS user or in a container.
"""
from __future__ import annotations

import ctypes
import functools
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass

__all__ = ["Limits", "namespaces_available", "wrap", "popen_kwargs", "scrubbed_env", "kill_group", "python_module",
           "drop_capabilities"]

# jsonschema (imported by nbformat, hence by nbgrader and the trusted runner) imports its optional IRI format
# checker, rfc3987-syntax, which compiles a lark grammar on import: 1.3 s of every grading process on the
# 2-core course machine (python -X importtime). nbformat validates notebooks without format checks, so the
# grading processes start with that one import refused (jsonschema then simply has no "iri" checker).
# `make install` removes the package altogether (every process gains, not only grading); this refusal is for
# installations made without the Makefile, such as a hub image built with pip alone.
_BOOT = ("import runpy, sys; sys.modules.setdefault('rfc3987_syntax', None); sys.argv = sys.argv[1:]; "
         "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)")


# the command that runs the sandboxed program without any capability, and without a way to regain one
# (setuid programs included): util-linux's setpriv, from the same package as unshare
_NO_CAPS = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--ambient-caps=-all", "--no-new-privs", "--"]


@dataclass(frozen=True)
class Limits:
    """Resource limits of a sandboxed process (seconds and megabytes)."""

    memory_mb: int = 4096
    cpu_s: int = 600
    file_mb: int = 64


@functools.lru_cache(maxsize=1)
def namespaces_available() -> bool:
    """True if ``unshare --user --map-root-user --mount --pid`` and ``setpriv`` work for this user (checked once).

    Both are needed: the namespaces hide the course's files, and dropping the namespace root's
    capabilities (setpriv) keeps the student's code from unmounting what hides them.
    """
    if os.environ.get("COURSE_NO_NAMESPACES") == "1" or not sys.platform.startswith("linux"):
        return False
    if shutil.which("setpriv") is None:
        return False
    try:
        r = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "sh", "-c",
                            "mount -t tmpfs tmpfs /mnt 2>/dev/null || mount -t tmpfs tmpfs /tmp; exec \"$@\"",
                            "course-sandbox", *_NO_CAPS, "sh", "-c", "echo ok"],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0 and r.stdout.strip().endswith("ok")


def python_module(module: str, *args: str) -> list[str]:
    """The command line ``python -m module args...`` of a grading process, started without rfc3987-syntax.

    Args:
        module: the module to run as ``__main__`` (e.g. ``"nbgrader"``, ``"course_lib.grading.trusted"``).
        args: its command-line arguments.
    Returns:
        The argv list (this interpreter, ``-c`` and a two-line bootstrap that runs the module with runpy).
    """
    return [sys.executable, "-c", _BOOT, module, *map(str, args)]


def wrap(argv: list[str], hide: list[str] = (), readonly: list[str] = (), network: bool = True,
         keep_capabilities: bool = False) -> list[str]:
    """The command line that runs ``argv`` inside private namespaces (or ``argv`` itself where unavailable).

    Args:
        argv: the command.
        hide: paths to cover (directories by an empty tmpfs, files by /dev/null).
        readonly: directories to re-mount read-only.
        network: keep the network namespace (False: no network at all).
        keep_capabilities: run ``argv`` as the namespace's root *with* its capabilities -- only for a
            trusted fork server that gives each child a PID namespace of its own and then calls
            :func:`drop_capabilities` there, before any student code runs. Otherwise (the default)
            ``argv`` runs without any capability, so it cannot undo the mounts above.
    """
    if not namespaces_available():
        return list(argv)
    lines = ["set -e", "mount --make-rprivate /"]
    for path in readonly:
        if os.path.isdir(path):
            q = shlex.quote(path)
            lines.append(f"mount --bind {q} {q}; mount -o remount,bind,ro {q}")
    for path in hide:
        q = shlex.quote(path)
        if os.path.isdir(path):
            lines.append(f"mount -t tmpfs -o size=64k,mode=000 tmpfs {q}")
        elif os.path.exists(path):
            lines.append(f"mount --bind /dev/null {q}")
    lines.append('exec "$@"')
    flags = ["--user", "--map-root-user", "--mount", "--pid", "--fork", "--kill-child"]
    if not network:
        flags.append("--net")
    caps = [] if keep_capabilities else _NO_CAPS
    return ["unshare", *flags, "sh", "-c", "\n".join(lines), "course-sandbox", *caps, *argv]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities() -> None:
    """Drop every capability of this process for good, as ``setpriv`` does in :func:`wrap`.

    Empties the bounding set (``PR_CAPBSET_DROP`` for each capability up to
    ``/proc/sys/kernel/cap_last_cap``) and the ambient set, sets the effective, permitted and
    inheritable sets to zero (``capset``, version 3) and sets ``PR_SET_NO_NEW_PRIVS``: neither this
    process nor anything it executes (root's ``execve`` rule: permitted = bounding set) has a
    capability, so none can unmount or re-mount what hides the course's files (capabilities(7)).

    Raises:
        OSError: the kernel refused (the caller must not run student code then).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/sys/kernel/cap_last_cap") as fh:
        last = int(fh.read())
    for cap in range(last + 1):
        if libc.prctl(24, cap, 0, 0, 0) != 0 and ctypes.get_errno() != 22:  # PR_CAPBSET_DROP; EINVAL: unknown cap
            raise OSError(ctypes.get_errno(), f"PR_CAPBSET_DROP {cap}: {os.strerror(ctypes.get_errno())}")
    libc.prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL (older kernels: no ambient set)
    header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()  # _LINUX_CAPABILITY_VERSION_3, all zero
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), f"capset: {os.strerror(ctypes.get_errno())}")
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), f"PR_SET_NO_NEW_PRIVS: {os.strerror(ctypes.get_errno())}")


def _die_with_parent() -> None:
    """prctl(PR_SET_PDEATHSIG, SIGKILL): this process is killed when the thread that started it ends."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pipe's end of input still stops the worker
        pass


def _limit(limits: Limits, die_with_parent: bool = False):
    def apply():
        os.setsid()
        if die_with_parent:
            _die_with_parent()
        mem = limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 5))
        fsize = limits.file_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def scrubbed_env(home: str, extra: dict | None = None) -> dict:
    """A minimal environment for student code: no TA variables, one BLAS thread, headless plots."""
    env = {
        "PATH": os.path.dirname(sys.executable) + os.pathsep + "/usr/local/bin:/usr/bin:/bin",
        "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8", "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "JUPYTER_PLATFORM_DIRS": "1",
    }
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "VIRTUAL_ENV"):
        if key in os.environ:
            env[key] = os.environ[key]
    env.update(extra or {})
    return env


def popen_kwargs(limits: Limits, cwd: str, env: dict, die_with_parent: bool = False) -> dict:
    """Keyword arguments for subprocess.Popen/run that apply the limits, cwd and environment.

    Args:
        die_with_parent: the process (and, through ``unshare --kill-child``, what it runs) is killed when
            the thread that starts it ends -- for the student worker, whose trusted runner may be killed
            at its time limit. Only for processes started by a single-threaded process's main thread.
    """
    return {"preexec_fn": _limit(limits, die_with_parent), "cwd": cwd, "env": env, "close_fds": True}


def kill_group(proc: subprocess.Popen) -> None:
    """Kill a sandboxed process and everything it started (its session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except ProcessLookupError:
        pass


def stop(proc: subprocess.Popen) -> None:
    """Kill a sandboxed process's session, close its pipes and reap it (nothing of it is kept)."""
    kill_group(proc)
    for f in (proc.stdin, proc.stdout):
        try:
            if f is not None:
                f.close()
        except OSError:
            pass
    proc.wait()
