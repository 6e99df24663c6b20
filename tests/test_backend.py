"""course_lib.backend and course_lib.validation: names, conversions, seeded RNG, input checks."""
import numpy as np
import pytest
import torch

from course_lib import backend as B
from course_lib.validation import (CourseError, check_array, check_in_range, check_int, check_positive,
                                   check_same_backend, check_step_size)


# ---------------------------------------------------------------------------------------------
# names and conversions
# ---------------------------------------------------------------------------------------------
def test_backend_names():
    assert B.get_backend(None) == B.get_backend("numpy") == B.Backend("numpy")
    assert B.get_backend("torch") == B.get_backend("torch:cpu") == B.Backend("torch", "cpu")
    assert str(B.get_backend("torch")) == "torch"
    b = B.get_backend("torch")
    assert B.get_backend(b) is b
    assert B.available_backends()[:2] == ["numpy", "torch"]


@pytest.mark.parametrize("bad", ["jax", "Numpy", "torchx", "torch:gpu", "torch:cuda:x", "", 3])
def test_bad_backend_names_are_refused(bad):
    with pytest.raises(ValueError, match=r"Unknown backend .*Use 'numpy', 'torch'"):
        B.get_backend(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_gpu_says_why():
    with pytest.raises(ValueError, match=r"torch.cuda.is_available\(\) is False.*Use 'torch' \(CPU\)"):
        B.get_backend("torch:cuda")
    assert "torch:cuda" not in B.available_backends()


def test_backend_of_round_trips(backend):
    """An array made on a backend reports that backend (also on CUDA, where devices carry an index)."""
    x = B.asarray([1.0, 2.0], backend=backend)
    assert B.backend_of(x) == B.get_backend(backend)
    assert B.is_torch(x) == (backend != "numpy")


def test_asarray_defaults_to_float64_and_converts(backend):
    x = B.asarray([1, 2, 3], backend=backend)
    assert "float64" in str(x.dtype)
    assert B.to_numpy(x).dtype == np.float64
    np.testing.assert_array_equal(B.to_numpy(x), [1.0, 2.0, 3.0])
    kept = B.asarray(np.arange(3), backend=backend, dtype=None)
    assert "int64" in str(kept.dtype)
    f32 = B.asarray([1.0], backend=backend, dtype="float32")
    assert "float32" in str(f32.dtype)
    assert B.to_float(B.namespace(x).sum(x)) == 6.0 and isinstance(B.to_float(x[0]), float)


def test_like_follows_the_reference(backend):
    ref = B.asarray(np.zeros(2), backend=backend, dtype="float32")
    y = B.like([1.0, 2.0], ref)
    assert B.backend_of(y) == B.backend_of(ref) and y.dtype == ref.dtype
    z = B.asarray(np.ones(2), like=ref)  # ``like`` beats ``backend``
    assert B.backend_of(z) == B.backend_of(ref)


def test_namespace_ignores_scalars_and_defaults_to_numpy():
    assert B.namespace() is B.namespace(np.ones(1))
    assert B.namespace(1.0, None, np.ones(2)) is B.namespace(np.ones(1))
    t = torch.ones(2, dtype=torch.float64)
    assert B.namespace(t, 2.0) is B.get_backend("torch").xp
    assert B.to_numpy([t, t]).shape == (2, 2)


# ---------------------------------------------------------------------------------------------
# RNG
# ---------------------------------------------------------------------------------------------
def _draws(rng):
    return [B.to_numpy(a) for a in (rng.normal((3, 2), scale=2.0), rng.uniform((4,), -1.0, 3.0),
                                     rng.integers(0, 10, (5,)), rng.permutation(6), rng.choice(9, 4),
                                     rng.choice(9, 4, replace=False))]


def test_rng_same_seed_same_numbers(backend):
    a, b = _draws(B.RNG(3, backend)), _draws(B.RNG(3, backend))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    c = _draws(B.RNG(4, backend))
    assert not np.array_equal(a[0], c[0])


def test_rng_agrees_across_backends(backend):
    """The default generator is NumPy's PCG64 on every backend, so runs agree across backends."""
    for u, v in zip(_draws(B.RNG(8, "numpy")), _draws(B.RNG(8, backend))):
        np.testing.assert_array_equal(u, v)
    x = B.RNG(8, backend).normal((3,))
    assert B.backend_of(x) == B.get_backend(backend) and "float64" in str(x.dtype)
    i = B.RNG(8, backend).integers(0, 5, (3,))
    assert "int64" in str(i.dtype)


def test_rng_draws_follow_their_laws():
    rng = B.RNG(0)
    z = rng.normal((200_000,))
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    u = rng.uniform((200_000,), 2.0, 4.0)
    assert u.min() >= 2.0 and u.max() < 4.0 and abs(u.mean() - 3.0) < 0.01
    assert sorted(rng.permutation(50).tolist()) == list(range(50))
    assert len(set(rng.choice(20, 20, replace=False).tolist())) == 20


def test_native_torch_rng_is_deterministic_per_seed():
    a = B.RNG(5, "torch", native=True)
    b = B.RNG(5, "torch", native=True)
    for u, v in zip(_draws(a), _draws(b)):
        np.testing.assert_array_equal(u, v)
    assert a.native and not B.RNG(5, "numpy", native=True).native  # native only means something for torch


def test_spawn_gives_reproducible_independent_children():
    kids = B.RNG(1).spawn(3)
    again = B.RNG(1).spawn(3)
    draws = [k.normal((4,)) for k in kids]
    for d, k in zip(draws, again):
        np.testing.assert_array_equal(d, k.normal((4,)))
    assert not np.array_equal(draws[0], draws[1])


def test_rng_bad_input():
    with pytest.raises(TypeError, match=r"seed must be an int, got 1.5\. Pass e.g. seed=0"):
        B.RNG(1.5)
    with pytest.raises(TypeError, match="seed must be an int"):
        B.RNG(True)
    with pytest.raises(ValueError, match=r"size=5 indices without replacement from n=3"):
        B.RNG(0).choice(3, 5, replace=False)
    assert "RNG(seed=2" in repr(B.RNG(2, "torch"))


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------
def test_check_array_messages(backend):
    x = B.asarray(np.zeros((2, 3)), backend=backend)
    assert check_array(x, "X", ndim=2, shape=(None, 3)) is x
    with pytest.raises(CourseError, match=r"X must have 1 dimension\(s\), got .*shape \(2, 3\)"):
        check_array(x, "X", ndim=1)
    with pytest.raises(CourseError, match=r"X must have shape \('any', 4\), got .*\(2, 3\)"):
        check_array(x, "X", shape=(None, 4))
    with pytest.raises(CourseError, match="X must have a floating dtype.*int"):
        check_array(B.asarray(np.zeros(3), backend=backend, dtype="int64"), "X")
    bad = B.asarray([1.0, float("nan"), float("inf")], backend=backend)
    with pytest.raises(CourseError, match="v contains 2 NaN or inf entries"):
        check_array(bad, "v")
    assert check_array(bad, "v", finite=False) is bad
    with pytest.raises(CourseError, match="w must be an array.*Convert it with course_lib.backend.asarray"):
        check_array([1.0, 2.0], "w")


def test_scalar_checks():
    assert check_positive(2, "eta") == 2.0 and check_positive(0, "lam", allow_zero=True) == 0.0
    assert check_positive(np.float32(0.5), "eta") == 0.5
    for bad, msg in [(0.0, "eta must be > 0, got 0.0"), (-1.0, "eta must be > 0, got -1.0"),
                     (float("nan"), "eta must be finite"), (float("inf"), "eta must be finite"),
                     ("abc", "eta must be a real number, got 'abc'"), (True, "eta must be a real number")]:
        with pytest.raises(CourseError, match=msg):
            check_positive(bad, "eta")
    assert check_positive(float("inf"), "L", allow_inf=True) == float("inf")
    assert check_in_range(0.5, "beta", 0, 1, high_open=True) == 0.5
    with pytest.raises(CourseError, match=r"beta must lie in \[0, 1\), got 1"):
        check_in_range(1, "beta", 0, 1, high_open=True)
    with pytest.raises(CourseError, match=r"beta must lie in"):
        check_in_range(float("nan"), "beta", 0, 1)
    assert check_int(np.int64(3), "k") == 3
    with pytest.raises(CourseError, match="k must be an integer, got 2.5"):
        check_int(2.5, "k")
    with pytest.raises(CourseError, match="max_iter must be >= 1, got 0"):
        check_int(0, "max_iter", 1)


def test_check_step_size_against_2_over_L():
    assert check_step_size(0.1, L=10.0) == 0.1
    assert check_step_size(5.0, L=None) == 5.0  # nothing to check against
    with pytest.raises(CourseError, match=r"step_size=0.2 is >= 2/L = 0.2 \(L=10\).*Try step_size=1/L=0.1.*check_step=False"):
        check_step_size(0.2, L=10.0)
    with pytest.raises(CourseError, match="step_size must be > 0, got -0.1"):
        check_step_size(-0.1, L=10.0)
    with pytest.raises(CourseError, match="lr must be > 0"):
        check_step_size(0.0, L=1.0, name="lr")


def test_check_same_backend():
    a = np.zeros(2)
    t = torch.zeros(2, dtype=torch.float64)
    assert check_same_backend(a, np.ones(2), None) is B.namespace(a)
    with pytest.raises(CourseError, match=r"different backends or devices \(x: NumPy array.*y: torch tensor"):
        check_same_backend(a, t, names=("x", "y"))
