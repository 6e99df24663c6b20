"""Shared fixtures of the test suite.

* matplotlib runs headless (Agg) in every test.
* ``backend``: every backend usable here -- "numpy", "torch" and, where a GPU is, "torch:cuda".
* ``torch_backend``: the non-NumPy backends only (for NumPy-vs-torch agreement tests).
"""
import sys

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib.backend import available_backends  # noqa: E402

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
