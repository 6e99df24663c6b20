"""Layer-wise pruning (course_lib.pruning): masks, the least-squares refit, IHT and ADMM against brute force."""
import itertools

import numpy as np
import pytest

from course_lib.preliminaries import fd_gradient
from course_lib.pruning import (LayerReconstruction, admm_prune, keep_count, magnitude_mask, prune_iht,
                                reconstruction_error, refit, wanda_mask)
from course_lib.sparsity import hard_threshold
from course_lib.validation import CourseError


def layer(seed, n=30, d_in=8, d_out=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d_in)) @ np.diag(np.linspace(0.3, 3, d_in)) + 0.5 * rng.standard_normal((n, 1))
    return rng.standard_normal((d_in, d_out)), X


def brute_force(W, X, k):
    d = W.shape[0]
    return min(reconstruction_error(W, refit(W, X, np.isin(np.arange(d), S)[:, None]), X)
               for S in itertools.combinations(range(d), k))


def test_magnitude_mask_is_hard_thresholding_of_the_flattened_layer():
    W, _ = layer(0, d_in=10, d_out=4)
    mask = magnitude_mask(W, 0.7)
    assert mask.sum() == keep_count(40, 0.7) == 12
    np.testing.assert_array_equal(W * mask, hard_threshold(W.reshape(-1), 12).reshape(W.shape))
    per = magnitude_mask(W, 0.5, per_output=True)
    np.testing.assert_array_equal(per.sum(axis=0), [5, 5, 5, 5])


def test_wanda_scores_weights_by_input_norm_per_output():
    W, X = layer(1, d_in=10, d_out=3)
    mask = wanda_mask(W, X, 0.6)
    np.testing.assert_array_equal(mask.sum(axis=0), [4, 4, 4])
    score = np.abs(W) * np.linalg.norm(X, axis=0)[:, None]
    for j in range(3):
        assert score[mask[:, j], j].min() >= score[~mask[:, j], j].max()
    Xe = X / np.linalg.norm(X, axis=0)               # equal column norms: Wanda = per-output magnitude
    np.testing.assert_array_equal(wanda_mask(W, Xe, 0.6), magnitude_mask(W, 0.6, per_output=True))


def test_refit_is_the_least_squares_optimum_on_the_support():
    W, X = layer(2, d_in=9, d_out=2)
    mask = magnitude_mask(W, 0.5, per_output=True)
    Wr = refit(W, X, mask, damping=0.0)
    for j in range(2):
        S = np.flatnonzero(mask[:, j])
        w_ls = np.linalg.lstsq(X[:, S], X @ W[:, j], rcond=None)[0]
        np.testing.assert_allclose(Wr[S, j], w_ls, rtol=1e-10, atol=1e-12)
        assert np.all(Wr[~mask[:, j], j] == 0)
    G = X.T @ X
    np.testing.assert_allclose((G @ (Wr - W))[mask], 0, atol=1e-9)   # optimality on the kept weights
    assert reconstruction_error(W, Wr, X) <= reconstruction_error(W, W * mask, X)


def test_layer_reconstruction_is_the_quadratic_it_says():
    W, X = layer(3, d_in=5, d_out=3)
    p = LayerReconstruction(W, X)
    x = np.random.default_rng(0).standard_normal(p.dim)
    np.testing.assert_allclose(p.grad(x), fd_gradient(p.value, x), rtol=1e-6, atol=1e-6)
    assert p.value(p.x_star) == 0
    np.testing.assert_allclose(2 * p.value(x), reconstruction_error(W, x.reshape(W.shape), X, relative=False),
                               rtol=1e-12)
    np.testing.assert_allclose(p.L, np.linalg.eigvalsh(X.T @ X)[-1], rtol=1e-12)


def test_iht_pruning_is_exactly_sparse_and_no_worse_than_magnitude():
    W, X = layer(4, d_in=12, d_out=3)
    Wp, tr = prune_iht(W, X, 0.75)
    assert np.count_nonzero(Wp) == keep_count(36, 0.75)
    assert np.all(np.diff(tr.f) <= 1e-12)                                   # monotone at every iteration
    mag = refit(W, X, magnitude_mask(W, 0.75))
    assert reconstruction_error(W, Wp, X) <= reconstruction_error(W, mag, X) + 1e-12


@pytest.mark.parametrize("per_output", [False, True])
def test_admm_iterates_are_exactly_sparse(per_output):
    W, X = layer(5, d_in=10, d_out=4)
    Wp, info = admm_prune(W, X, 0.6, per_output=per_output, refit_support=False)
    assert np.count_nonzero(Wp) == keep_count(40, 0.6)
    if per_output:
        np.testing.assert_array_equal(np.count_nonzero(Wp, axis=0), [4, 4, 4, 4])
    assert info["support_changes"][-1] == 0                                 # the growing penalty froze it


def test_admm_against_the_brute_force_optimum_on_tiny_layers():
    """40 layers of 8 weights, keep 3 (56 supports each): ADMM + refit finds the optimum on most, is never worse
    than its start (Wanda's support, refitted) and rarely worse than magnitude pruning refitted."""
    optimal, ratios, beats_magnitude = 0, [], 0
    for seed in range(40):
        W, X = layer(seed)
        best = brute_force(W, X, 3)
        Wp, _ = admm_prune(W, X, 1 - 3 / 8)
        err = reconstruction_error(W, Wp, X)
        assert np.count_nonzero(Wp) == 3
        assert err >= best - 1e-12
        assert err <= reconstruction_error(W, refit(W, X, wanda_mask(W, X, 5 / 8)), X) + 1e-12
        beats_magnitude += err <= reconstruction_error(W, refit(W, X, magnitude_mask(W, 5 / 8)), X) + 1e-12
        optimal += np.isclose(err, best, rtol=1e-9)
        ratios.append(err / best)
    assert optimal >= 32, optimal            # measured: 36 of 40
    assert max(ratios) < 2.0, max(ratios)    # measured: 1.66
    assert beats_magnitude >= 36, beats_magnitude


def test_pruning_refuses_bad_input():
    W, X = layer(6)
    with pytest.raises(CourseError, match="X has 8 columns but W has 5 rows"):
        wanda_mask(W[:5], X, 0.5)
    with pytest.raises(CourseError, match="sparsity"):
        magnitude_mask(W, 1.5)
    with pytest.raises(CourseError, match="mask has shape"):
        refit(W, X, np.ones((3, 3), dtype=bool))
    with pytest.raises(CourseError, match="rho_growth"):
        admm_prune(W, X, 0.5, rho_growth=0.5)


@pytest.mark.slow
def test_prune_linear_layers_of_a_digits_mlp_at_90_percent():
    """One-shot pruning of a trained MLP: exact per-layer sparsity, reconstruction error ordered
    magnitude > Wanda + refit > ADMM, and ADMM keeps the accuracy that magnitude pruning loses."""
    import copy

    import torch

    from course_lib.datasets import load_dataset, train_test_split
    from course_lib.pruning import prune_linear_layers

    torch.manual_seed(0)
    X, y = load_dataset("digits")
    Xtr, Xte, ytr, yte = (torch.as_tensor(a) for a in train_test_split(X, y, 0.3, seed=0))
    ytr, yte = ytr.long(), yte.long()
    model = torch.nn.Sequential(torch.nn.Linear(64, 128, dtype=torch.float64), torch.nn.Tanh(),
                                torch.nn.Linear(128, 64, dtype=torch.float64), torch.nn.Tanh(),
                                torch.nn.Linear(64, 10, dtype=torch.float64))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(Xtr), ytr).backward()
        opt.step()

    def accuracy(m):
        with torch.no_grad():
            return (m(Xte).argmax(1) == yte).double().mean().item()

    dense = accuracy(model)
    assert dense > 0.94
    result = {}
    for method in ("magnitude", "wanda+refit", "admm"):
        m = copy.deepcopy(model)
        report = prune_linear_layers(m, lambda net: net(Xtr), 0.9, method)
        # Wanda keeps round(0.1 d_in) weights per output (6 of 64 -> 0.906), the others 10% of the layer
        expect = [1 - 6 / 64, 1 - 13 / 128, 1 - 6 / 64] if method == "wanda+refit" else [0.9, 0.9, 0.9]
        assert [r["sparsity"] for r in report] == pytest.approx(expect, abs=1e-3)
        assert [float((layer.weight == 0).double().mean()) for layer in m
                if isinstance(layer, torch.nn.Linear)] == pytest.approx(expect, abs=1e-3)
        result[method] = (accuracy(m), [r["reconstruction_error"] for r in report])
    for i in range(3):
        assert result["admm"][1][i] < result["wanda+refit"][1][i] < result["magnitude"][1][i]
    assert result["admm"][0] > result["magnitude"][0] + 0.2      # measured: 0.907 vs 0.417 (dense 0.965)
    assert model[0].weight.count_nonzero() == 64 * 128           # the original model is untouched
