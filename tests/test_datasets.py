"""course_lib.datasets: generators do what their docstrings say, seeded; bundled sets load offline."""
import numpy as np
import pytest

from course_lib import datasets as D
from course_lib.backend import backend_of, get_backend, to_numpy
from course_lib.validation import CourseError


def test_random_spd_has_exact_spectrum():
    A = D.random_spd(12, cond=1e3, seed=4, mu=0.1)
    np.testing.assert_array_equal(A, A.T)
    eig = np.linalg.eigvalsh(A)
    assert eig[0] == pytest.approx(0.1, rel=1e-10) and eig[-1] == pytest.approx(100.0, rel=1e-10)
    np.testing.assert_allclose(eig, 0.1 * np.logspace(0, 3, 12), rtol=1e-9)
    np.testing.assert_array_equal(A, D.random_spd(12, cond=1e3, seed=4, mu=0.1))
    assert not np.array_equal(A, D.random_spd(12, cond=1e3, seed=5, mu=0.1))
    assert D.random_spd(1, cond=5.0, mu=2.0).tolist() == [[2.0]]


def test_random_spd_bad_input():
    with pytest.raises(CourseError, match=r"cond must be >= 1 .*got 0.5"):
        D.random_spd(3, cond=0.5)
    with pytest.raises(CourseError, match="dim must be >= 1, got 0"):
        D.random_spd(0)
    with pytest.raises(CourseError, match="mu must be > 0"):
        D.random_spd(3, mu=0.0)


def test_make_regression(backend):
    A, b, x = D.make_regression(n=50, dim=4, noise=0.0, seed=1, backend=backend)
    assert backend_of(A) == backend_of(b) == backend_of(x) == get_backend(backend)
    assert A.shape == (50, 4) and b.shape == (50,) and x.shape == (4,)
    np.testing.assert_allclose(to_numpy(b), to_numpy(A) @ to_numpy(x), rtol=1e-14)  # noise 0: exact model
    An, bn, xn = D.make_regression(n=50, dim=4, noise=0.0, seed=1)
    np.testing.assert_array_equal(to_numpy(A), An)  # same seed, same data on every backend
    _, b1, _ = D.make_regression(n=50, dim=4, noise=0.3, seed=1)
    resid = b1 - An @ xn
    assert 0.2 < resid.std() < 0.4


def test_make_regression_cond_makes_the_design_ill_conditioned():
    A1, _, _ = D.make_regression(n=2000, dim=5, seed=0)
    A2, _, _ = D.make_regression(n=2000, dim=5, seed=0, cond=100.0)
    k1, k2 = np.linalg.cond(A1.T @ A1), np.linalg.cond(A2.T @ A2)
    assert k1 < 2 and 50 < k2 < 200  # the sample covariance's condition number follows Sigma's


def test_make_classification(backend):
    X, y, w = D.make_classification(n=4000, dim=6, seed=2, flip=0.1, backend=backend)
    assert backend_of(X) == get_backend(backend)
    X, y, w = to_numpy(X), to_numpy(y), to_numpy(w)
    assert set(np.unique(y)) == {-1.0, 1.0}
    flipped = np.mean(y != np.where(X @ w >= 0, 1.0, -1.0))
    assert 0.08 < flipped < 0.12
    X0, y0, w0 = D.make_classification(n=100, dim=3, seed=2, flip=0.0)
    np.testing.assert_array_equal(y0, np.where(X0 @ w0 >= 0, 1.0, -1.0))
    with pytest.raises(CourseError, match=r"flip must be a label-noise fraction in \[0, 0.5\], got 0.7"):
        D.make_classification(flip=0.7)


@pytest.mark.parametrize("name, shape, labels", [
    ("breast_cancer", (569, 30), {-1.0, 1.0}), ("diabetes", (442, 10), None),
    ("digits", (1797, 64), set(range(10))), ("iris", (150, 4), {0.0, 1.0, 2.0}), ("wine", (178, 13), {0.0, 1.0, 2.0}),
])
def test_bundled_datasets_load_offline_and_standardized(name, shape, labels):
    X, y = D.load_dataset(name)
    X, y = to_numpy(X), to_numpy(y)
    assert X.shape == shape and y.shape == (shape[0],) and X.dtype == np.float64
    if labels is not None:
        assert set(np.unique(y).tolist()) == set(float(v) for v in labels)
    np.testing.assert_allclose(X.mean(axis=0), 0.0, atol=1e-12)
    sd = X.std(axis=0)
    assert np.all((np.abs(sd - 1) < 1e-12) | (sd == 0))  # digits has constant (blank) pixels
    raw, _ = D.load_dataset(name, standardize=False)
    assert not np.allclose(to_numpy(raw).std(axis=0), 1.0)  # (diabetes comes centred, not unit-variance)


def test_load_dataset_backend_and_errors(backend):
    X, y = D.load_dataset("iris", backend=backend)
    assert backend_of(X) == backend_of(y) == get_backend(backend)
    with pytest.raises(CourseError, match="Unknown dataset 'mnist'; the bundled ones are breast_cancer"):
        D.load_dataset("mnist")


def test_digits_binary():
    X, y = D.digits_binary()
    Xd, yd = D.load_dataset("digits")
    np.testing.assert_array_equal(X, Xd)
    np.testing.assert_array_equal(y, np.where(yd <= 4, 1.0, -1.0))
    assert 0.45 < np.mean(y == 1) < 0.55


def test_train_test_split(backend):
    X, y = D.load_dataset("wine", backend=backend)
    Xtr, Xte, ytr, yte = D.train_test_split(X, y, test_fraction=0.25, seed=3)
    assert Xte.shape[0] == round(0.25 * 178) and Xtr.shape[0] + Xte.shape[0] == 178
    assert backend_of(Xtr) == get_backend(backend)
    rows = {tuple(r) for r in to_numpy(X)}
    parts = [tuple(r) for r in np.vstack([to_numpy(Xtr), to_numpy(Xte)])]
    assert set(parts) == rows and len(parts) == len(rows)  # a partition of the rows
    again = D.train_test_split(X, y, test_fraction=0.25, seed=3)
    np.testing.assert_array_equal(to_numpy(again[1]), to_numpy(Xte))
    with pytest.raises(CourseError, match=r"test_fraction must lie in \(0, 1\), got 1.0"):
        D.train_test_split(X, y, test_fraction=1.0)


def test_shakespeare_texts_ship_with_the_package_and_lines_carry_genres():
    from course_lib.datasets import PLAYS, shakespeare_lines, shakespeare_text

    text = shakespeare_text("hamlet")
    assert "To be, or not to be" in text
    lines, genres, plays = shakespeare_lines(["tempest", "hamlet"], max_lines_per_play=50, seed=3)
    assert len(lines) == len(genres) == len(plays) == 100
    assert genres.count("comedy") == genres.count("tragedy") == 50
    assert all(len(s) >= 20 and not s.startswith("[") and not s.isupper() for s in lines)
    assert all(line in text for line, p in zip(lines, plays) if p == "hamlet")
    assert shakespeare_lines(["tempest"], max_lines_per_play=50, seed=3)[0] == lines[:50]
    assert {g for g in PLAYS.values()} == {"comedy", "history", "tragedy"}


def test_shakespeare_unknown_play_names_the_choices():
    from course_lib.datasets import shakespeare_text
    from course_lib.validation import CourseError

    with pytest.raises(CourseError, match="Unknown play 'hamlett'.*hamlet"):
        shakespeare_text("hamlett")
