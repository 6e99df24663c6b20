"""Peak memory of one piece of work, measured in a fresh process (Linux ``/proc``).

A training step's memory is what the process holds at its peak: parameters, activations kept for backward,
gradients, optimizer state. On CPU, torch has no allocator statistics, so :func:`peak_memory` runs the work in a
fresh child process (``python -m course_lib.memory``) and reads the kernel's resident-set high-water mark (``VmHWM``), after resetting it
(``echo 5 > /proc/self/clear_refs``) once the set-up is done. Reported relative to the process before the set-up,
so the Python interpreter and the imported libraries (the same in every measurement) are not counted.

On a CUDA device pass ``device="cuda"``: the child then reports ``torch.cuda.max_memory_allocated``.
"""
from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import time

from .validation import CourseError

__all__ = ["peak_memory", "rss_mb", "allocate"]


def _status(field: str) -> float:
    with open("/proc/self/status") as fh:
        m = re.search(rf"^{field}:\s+(\d+) kB", fh.read(), flags=re.M)
    return int(m.group(1)) / 1024 if m else float("nan")


def rss_mb() -> float:
    """The current resident set size of this process in MiB."""
    return _status("VmRSS")


def allocate(mb: int = 100, setup_mb: int = 0):
    """Calibration probe: the set-up holds ``setup_mb`` MiB, the step touches ``mb`` MiB more, then frees them."""
    held = bytearray(int(setup_mb) * 2 ** 20)

    def step():
        block = bytearray(int(mb) * 2 ** 20)
        block[:: 4096] = b"x" * len(block[:: 4096])
        del block
        return len(held)

    return step


def _child(target: str, kwargs: dict, device: str) -> dict:
    """Runs in the child process (``python -m course_lib.memory``): set up, reset the high-water mark, measure."""
    import torch

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    try:  # the libraries every probe shares are loaded before the baseline
        import transformers  # noqa: F401
    except ImportError:
        pass
    module, _, name = target.partition(":")
    factory = getattr(importlib.import_module(module), name)
    before = rss_mb()
    step = factory(**kwargs)
    after_setup = rss_mb()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2 ** 20
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    start = time.perf_counter()
    step()
    out = {"before_mb": before, "setup_mb": after_setup - before, "peak_mb": _status("VmHWM") - before,
           "seconds": time.perf_counter() - start}
    if device == "cuda":
        torch.cuda.synchronize()
        out.update(cuda_setup_mb=base, cuda_peak_mb=torch.cuda.max_memory_allocated() / 2 ** 20)
    return out


def peak_memory(target: str, timeout: float = 600.0, device: str = "cpu", **kwargs) -> dict:
    """Run ``step = factory(**kwargs); step()`` in a fresh Python process and measure its peak memory.

    Args:
        target: "module:factory"; the factory sets the work up (loads the model, the batch) and returns a
            zero-argument callable, the work to measure.
        timeout: seconds before the child is killed. device: "cpu" (RSS) or "cuda" (also torch's CUDA peak).
        **kwargs: passed to the factory (JSON-serialisable).
    Returns:
        dict with ``setup_mb`` (RSS the set-up added: the model and data), ``peak_mb`` (peak RSS during the step,
        over the process before set-up), ``seconds`` (the step's wall time), and on CUDA ``cuda_setup_mb`` /
        ``cuda_peak_mb``.
    Raises:
        CourseError: the child failed or ran past ``timeout``.
    """
    if ":" not in target:
        raise CourseError(f"target must be 'module:factory', got {target!r}.")
    spec = json.dumps({"target": target, "kwargs": kwargs, "device": device})
    try:
        proc = subprocess.run([sys.executable, "-m", "course_lib.memory", spec], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise CourseError(f"measuring {target} did not finish in {timeout:g} s; raise timeout= or shrink the "
                          "batch.") from exc
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise CourseError(f"measuring {target} failed in the child process: {tail[0]}")
    return json.loads(lines[-1])


if __name__ == "__main__":
    _spec = json.loads(sys.argv[1])
    print(json.dumps(_child(_spec["target"], _spec["kwargs"], _spec["device"])))
