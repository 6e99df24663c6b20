"""The warm worker sandbox forks student workers that behave like fresh ones and cannot reach each other.

Real sandboxes (user namespaces, no capability), real student programs; each test compares a forked
worker with a fresh ``python -m course_lib.grading.worker`` where both exist.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from course_lib.grading.sandbox import namespaces_available
from course_lib.grading.student import StudentCrash, StudentError, StudentProcess
from course_lib.grading.worker_server import ForkedWorker, WorkerServer

pytestmark = pytest.mark.skipif(not namespaces_available(), reason="the worker sandbox needs user namespaces")

PROGRAM = [
    "import numpy as np\nimport os, random",
    "def double(x):\n    return np.asarray(x) * 2",
    "def draws():\n    return [random.random(), float(np.random.rand())]",
    "import sys\ndef where():\n    return [os.getcwd(), os.environ['HOME'], os.environ.get('COURSE_GRADING_WORKER'), sys.path]",
    "def broken(:\n    pass",
    "undefined_name + 1",
]


@pytest.fixture
def hidden(tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "answers.txt").write_text("the hidden tests")
    return secret


@pytest.fixture
def server(hidden):
    ws = WorkerServer([str(hidden)], [])
    yield ws
    ws.close()


def _worker(cells, server=None, hide=(), **kw) -> StudentProcess:
    return StudentProcess(cells, hide=[str(h) for h in hide], workers=server, **kw)


def test_a_forked_worker_answers_like_a_fresh_one(server, hidden):
    with _worker(PROGRAM, server, [hidden]) as forked, _worker(PROGRAM, None, [hidden]) as fresh:
        assert forked.call("double", ([1, 2],), {}).tolist() == fresh.call("double", ([1, 2],), {}).tolist() == [2, 4]
        assert isinstance(forked.proc, ForkedWorker) and not isinstance(fresh.proc, ForkedWorker)
        assert forked.load_errors == fresh.load_errors and len(forked.load_errors) == 2  # same messages, same cells
        cwd, home, flag, path = forked.call("where", (), {})
        assert cwd == home == forked.home and flag == "1"  # its own home, the worker's environment
        fresh_path = fresh.call("where", (), {})[3]
        assert path[0] == forked.home and path[1:] == fresh_path[1:]  # imports resolve as in a fresh worker
        assert forked.get("missing_name") == fresh.get("missing_name") == {"kind": "missing"}


def test_forked_workers_get_fresh_random_seeds(server, hidden):
    seen = []
    for _ in range(2):
        with _worker(PROGRAM, server, [hidden]) as w:
            seen.append(w.call("draws", (), {}))
    assert seen[0] != seen[1]  # as two fresh processes: not one inherited generator state


def test_nothing_of_one_worker_reaches_the_next(server, hidden, tmp_path):
    flag = tmp_path / "daemon_alive"
    tamper = ["import numpy, subprocess, sys",
              "numpy.allclose = lambda *a, **k: True",
              "daemon = %r" % f"import time, pathlib\nwhile True:\n    pathlib.Path({str(flag)!r}).touch(); time.sleep(0.1)",
              "subprocess.Popen([sys.executable, '-c', daemon], start_new_session=True)",
              "def ok():\n    return True"]
    with _worker(tamper, server, [hidden]) as first:
        assert first.call("ok", (), {}) is True and first.load_errors == []
        deadline = time.monotonic() + 20
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert flag.exists()  # its daemon (own session) runs
    flag.unlink()
    time.sleep(0.5)
    assert not flag.exists()  # closing the worker killed everything it had started
    check = ["import numpy", "def same():\n    return bool(numpy.allclose(0.0, 1.0))"]
    with _worker(check, server, [hidden]) as second:
        assert second.call("same", (), {}) is False  # the real numpy.allclose: the first one's patch is gone


def test_a_worker_can_neither_undo_its_sandbox_nor_take_over_the_server(server, hidden):
    attack = ["import ctypes, os, signal",
              "def unmount():\n    return ctypes.CDLL(None, use_errno=True).umount2(%r.encode(), 2)" % str(hidden),
              "def peek():\n    try:\n        return os.listdir(%r)\n    except OSError as e:\n        return type(e).__name__"
              % str(hidden),
              "def server_memory():\n    try:\n        return len(open('/proc/1/mem', 'rb').read(1))\n"
              "    except OSError as e:\n        return type(e).__name__",
              "def signal_server():\n    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL):\n"
              "        os.kill(1, s)\n    return os.getpid() != 1"]
    with _worker(attack, server, [hidden]) as w:
        assert w.call("unmount", (), {}) == -1
        assert w.call("peek", (), {}) == "PermissionError"
        assert w.call("server_memory", (), {}) == "PermissionError"  # not dumpable, and the worker has no capability
        assert w.call("signal_server", (), {}) is True
    assert server.alive  # a namespace's init ignores what its own processes send
    with _worker(PROGRAM, server, [hidden]) as w:
        assert w.call("double", ([3],), {}).tolist() == [6] and isinstance(w.proc, ForkedWorker)


def test_crashes_and_time_limits_read_like_a_fresh_workers(server, hidden):
    cells = ["import os", "def leave():\n    os._exit(3)", "def spin():\n    while True:\n        pass",
             "def fine():\n    return 1"]
    messages = []
    for workers in (server, None):
        with _worker(cells, workers, [hidden], call_timeout=2) as w:
            got = []
            for name in ("leave", "spin"):
                with pytest.raises(StudentCrash) as err:
                    w.call(name, (), {})
                got.append(str(err.value))
            assert w.call("fine", (), {}) == 1 and w.restarts == 2  # a fresh worker after each
            messages.append(got)
    assert messages[0] == messages[1]
    assert "exited with code 3" in messages[0][0] and "Time limit" in messages[0][1]


def test_a_dead_or_mismatched_server_means_a_fresh_worker(server, hidden):
    with _worker(PROGRAM, server, []) as other:  # other hidden paths than the server's sandbox: not forked there
        assert not isinstance(other.proc, ForkedWorker) and other.call("double", ([1],), {}).tolist() == [2]
    server.proc.kill()
    server.proc.wait()
    with _worker(PROGRAM, server, [hidden]) as w:
        assert not isinstance(w.proc, ForkedWorker) and w.call("double", ([1],), {}).tolist() == [2]
    broken = WorkerServer([str(hidden)], [])
    try:
        broken.sock.close()  # alive, but no request reaches it
        with _worker(PROGRAM, broken, [hidden]) as w:
            assert not isinstance(w.proc, ForkedWorker) and w.call("double", ([1],), {}).tolist() == [2]
        assert not broken.alive  # stopped when it failed
    finally:
        broken.close()


def test_the_server_refuses_to_serve_unless_it_is_its_namespaces_init():
    """kill(-1) from anything but a namespace's init would reach every process of the user.

    Run as PID 2 of a throw-away namespace, next to a sleeping sibling: the server returns at once
    (with end of input it would otherwise kill everything) and the sibling lives.
    """
    import subprocess

    from course_lib.grading.sandbox import python_module

    script = 'sleep 30 & s=$!; "$@" </dev/null; echo "server exited $?"; kill -0 "$s" && echo "sibling alive"; kill "$s"'
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--pid", "--fork", "sh", "-c", script, "sh",
                           *python_module("course_lib.grading.worker_server")], capture_output=True, text=True,
                          timeout=60, cwd=str(Path(__file__).resolve().parents[1]))
    assert proc.stdout.split("\n")[:2] == ["server exited 0", "sibling alive"], proc


def test_student_errors_are_reported_alike(server, hidden):
    cells = ["class Custom(Exception):\n    pass", "def boom():\n    raise Custom('nope')",
             "def value():\n    raise ValueError('bad value')"]
    seen = []
    for workers in (server, None):
        with _worker(cells, workers, [hidden]) as w:
            with pytest.raises(StudentError) as custom:
                w.call("boom", (), {})
            with pytest.raises(ValueError) as builtin:
                w.call("value", (), {})
            seen.append((str(custom.value), str(builtin.value)))
    assert seen[0] == seen[1]
