"""Shared fixtures of the test suite.

* matplotlib runs headless (Agg) in every test.
* ``backend``: every backend usable here -- "numpy", "torch" and, where a GPU is, "torch:cuda".
* ``torch_backend``: the non-NumPy backends only (for NumPy-vs-torch agreement tests).
* under pytest-xdist, one BLAS/OpenMP/torch thread per worker.
"""
import os
import sys

# Under pytest-xdist each of the 2 workers gets one BLAS/OpenMP thread: two workers with two threads each
# oversubscribe a 2-core machine, and small matrix operations then spend most of their time waiting on
# threads (measured: test_admm_against_the_brute_force_optimum_on_tiny_layers 94 s vs 1 s). Set before numpy
# loads, so that notebook kernels and subprocesses started by the tests inherit it too.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib.backend import available_backends  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is part of the course environment
        pass

BACKENDS = available_backends()
TORCH_BACKENDS = [b for b in BACKENDS if b != "numpy"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """A backend name: each test using it runs once per backend available on this machine."""
    return request.param


@pytest.fixture(params=TORCH_BACKENDS or [pytest.param("torch", marks=pytest.mark.skip("torch not installed"))])
def torch_backend(request):
    """A torch backend name ("torch", and "torch:cuda" where a GPU is)."""
    return request.param


@pytest.fixture
def rng():
    """A seeded NumPy generator for test data."""
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def _close_figures():
    """Close matplotlib figures a test opened, so long runs do not accumulate them."""
    yield
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close("all")
