"""Flatness and reliability measures of a trained ``nn.Module`` (the SAM-variants kit's metrics).

* :func:`module_sharpness` -- the top Hessian eigenvalue of the training loss, by Lanczos
  (:func:`course_lib.nonconvex.lanczos`) on exact Hessian-vector products (double backprop);
* :func:`weight_noise_accuracy`, :func:`input_noise_accuracy` -- accuracy under random
  perturbations of the weights (relative to each tensor's scale) or of the inputs;
* :func:`expected_calibration_error` -- ECE with equal-width confidence bins (Guo et al., ICML 2017);
* :func:`sharpness_gap_correlation` -- Kendall's tau and Spearman's rho (SciPy) between sharpness
  and the generalisation gap across runs, the test of the flat-minima hypothesis (Andriushchenko,
  Croce, Mueller, Hein & Flammarion, *A modern look at the relationship between sharpness and
  generalization*, ICML 2023, found the correlation weak and often negative).
"""
from __future__ import annotations

import numpy as np

from .nonconvex import lanczos
from .validation import CourseError, check_int, check_positive

__all__ = ["module_sharpness", "accuracy", "weight_noise_accuracy", "input_noise_accuracy",
           "expected_calibration_error", "sharpness_gap_correlation"]


def module_sharpness(model, loss_fn, X, y, k: int = 20, seed: int = 0) -> float:
    """lambda_max of the Hessian of ``loss_fn(model(X), y)`` w.r.t. all parameters, by k Lanczos steps.

    The Hessian-vector product is exact (Pearlmutter's trick: the gradient of <grad L, v>). With k
    steps the largest Ritz value is a lower bound that converges to lambda_max from below
    (Kaniel-Paige; Golub & Van Loan, Sec. 10.1); k = number of parameters gives it exactly.

    Args:
        model: an nn.Module. loss_fn: (outputs, targets) -> scalar. X, y: the data (full batch).
        k: Lanczos steps. seed: start-vector seed.
    Returns:
        The estimate, a float.
    """
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    loss = loss_fn(model(X), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    flat = torch.cat([g.reshape(-1) for g in grads])

    def hvp(v):
        hv = torch.autograd.grad(flat @ v, params, retain_graph=True)
        return torch.cat([h.reshape(-1) for h in hv]).detach()

    v0 = torch.as_tensor(np.random.default_rng(seed).standard_normal(flat.numel()), dtype=flat.dtype)
    return float(lanczos(hvp, v0, check_int(k, "k", 1))[0][-1])


def accuracy(model, X, y) -> float:
    """Fraction of argmax predictions equal to the labels."""
    import torch

    with torch.no_grad():
        return float((model(X).argmax(dim=1) == y).double().mean())


def weight_noise_accuracy(model, X, y, sigma: float, n_samples: int = 5, seed: int = 0) -> tuple[float, float]:
    """Accuracy when every weight tensor W gets Gaussian noise of standard deviation sigma ||W||/sqrt(numel).

    The relative scale makes the perturbation comparable across layers and networks (as in
    Keskar et al., ICLR 2017, and the filter-normalised directions of Li et al., NeurIPS 2018).
    The model is restored afterwards.

    Returns:
        (mean, standard deviation) of the accuracy over ``n_samples`` draws.
    """
    import torch

    sigma = check_positive(sigma, "sigma", allow_zero=True)
    gen = torch.Generator().manual_seed(int(seed))
    saved = [p.detach().clone() for p in model.parameters()]
    accs = []
    try:
        for _ in range(check_int(n_samples, "n_samples", 1)):
            with torch.no_grad():
                for p, s in zip(model.parameters(), saved):
                    scale = sigma * float(s.norm()) / max(1, s.numel()) ** 0.5
                    p.copy_(s + scale * torch.randn(s.shape, generator=gen, dtype=s.dtype))
            accs.append(accuracy(model, X, y))
    finally:
        with torch.no_grad():
            for p, s in zip(model.parameters(), saved):
                p.copy_(s)
    return float(np.mean(accs)), float(np.std(accs))


def input_noise_accuracy(model, X, y, sigma: float, n_samples: int = 5, seed: int = 0) -> tuple[float, float]:
    """Accuracy on X + N(0, sigma^2) (inputs standardised, so sigma is in units of a feature's spread).

    Returns:
        (mean, standard deviation) over ``n_samples`` draws.
    """
    import torch

    sigma = check_positive(sigma, "sigma", allow_zero=True)
    gen = torch.Generator().manual_seed(int(seed))
    accs = [accuracy(model, X + sigma * torch.randn(X.shape, generator=gen, dtype=X.dtype), y)
            for _ in range(check_int(n_samples, "n_samples", 1))]
    return float(np.mean(accs)), float(np.std(accs))


def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    """ECE = sum_b (|B_b|/n) |acc(B_b) - conf(B_b)| over equal-width bins of the top-class confidence.

    Guo, Pleiss, Sun & Weinberger, *On calibration of modern neural networks*, ICML 2017, eq. (3);
    bins are (0, 1/M], (1/M, 2/M], ..., as in their reference code.

    Args:
        probs: (n, C) predicted class probabilities (NumPy or torch). labels: (n,) integer labels.
        n_bins: M.
    Returns:
        ECE in [0, 1].
    """
    from .backend import to_numpy

    P, y = np.asarray(to_numpy(probs), dtype=float), np.asarray(to_numpy(labels)).astype(int)
    if P.ndim != 2 or y.shape != (P.shape[0],):
        raise CourseError(f"probs must be (n, C) and labels (n,), got {P.shape} and {y.shape}.")
    conf, pred = P.max(axis=1), P.argmax(axis=1)
    correct = (pred == y).astype(float)
    edges = np.linspace(0.0, 1.0, check_int(n_bins, "n_bins", 1) + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(ece)


def sharpness_gap_correlation(sharpness, gap) -> dict:
    """Rank correlations between sharpness and the generalisation gap across runs.

    Args:
        sharpness: one value per run. gap: test error - train error (or train acc - test acc) per run.
    Returns:
        {"kendall_tau", "kendall_p", "spearman_rho", "spearman_p", "n"} (scipy.stats).
    """
    from scipy import stats

    s, g = np.asarray(sharpness, dtype=float), np.asarray(gap, dtype=float)
    if s.shape != g.shape or s.ndim != 1 or len(s) < 3:
        raise CourseError(f"sharpness and gap must be 1-D of the same length >= 3, got {s.shape} and {g.shape}.")
    tau, tp = stats.kendalltau(s, g)
    rho, rp = stats.spearmanr(s, g)
    return {"kendall_tau": float(tau), "kendall_p": float(tp), "spearman_rho": float(rho),
            "spearman_p": float(rp), "n": int(len(s))}
