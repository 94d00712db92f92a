"""Per-proportion primitives: Wilson interval, noise floor, Rogan-Gladen, the bias-corrected abs_dev estimator h_n(k).

See magbig.stats for the scales and the choice of intervals."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import special as spsp
from scipy import stats as sps

from magbig.stats._common import _as_out


# --------------------------------------------------------------------------------------------
# per-proportion primitives

_BC_SMOOTH = 0.1  # variance control of h_n (module docstring); fixed with the 2001-point grid
_BC_GRID = np.linspace(0.0, 1.0, 2001)


def binom_pmf_rows(n: int, p) -> np.ndarray:
    """Binomial(n, p_i) pmf over k = 0..n, one row per p_i: shape (len(p), n + 1).

    The closed form through log-gamma and xlogy (exact at p ∈ {0, 1}), one vectorised pass:
    scipy.stats.binom.pmf agrees to ~1e-13 but costs ~50× more per row through its argument
    checks, and the share view and `magbig stats` build thousands of rows (RESULTS.md §15).
    """
    k = np.arange(n + 1, dtype=float)
    p = np.asarray(p, dtype=float).reshape(-1, 1)
    log_choose = spsp.gammaln(n + 1.0) - spsp.gammaln(k + 1.0) - spsp.gammaln(n - k + 1.0)
    return np.exp(log_choose + spsp.xlogy(k, p) + spsp.xlog1py(n - k, -p))


@lru_cache(maxsize=512)
def _abs_dev_table(n: int) -> np.ndarray:
    k = np.arange(n + 1)
    basis = binom_pmf_rows(n, _BC_GRID)  # E_p[h(k)] = basis @ h
    raw = np.abs(k / n - 0.5)
    at_half = binom_pmf_rows(n, 0.5)[0]
    # Penalise the curvature of the correction h - raw: a smooth correction has a small variance.
    curvature = np.diff(np.eye(n + 1), 2, axis=0)
    penalty = _BC_SMOOTH * curvature.T @ curvature
    gram = basis.T @ basis + penalty + 1e-9 * np.eye(n + 1)
    rhs = basis.T @ np.abs(_BC_GRID - 0.5) + penalty @ raw
    # Equality-constrained least squares (E_0.5[h] = 0) through its KKT system.
    kkt = np.block([[2 * gram, at_half[:, None]], [at_half[None, :], np.zeros((1, 1))]])
    solution = np.linalg.solve(kkt, np.concatenate([2 * rhs, [0.0]]))[: n + 1]
    solution.setflags(write=False)
    return solution


def abs_dev_estimator(k, n):
    """Bias-corrected per-prompt term h_n(k) for |p − 0.5| (module docstring); n == 0 -> nan.

    Vectorised over k and n. Its mean over prompts estimates the mean |p − 0.5|: exactly
    unbiased when every p = 0.5, nearly so elsewhere (RESULTS.md has the bias per n).
    """
    scalar = np.ndim(k) == 0 and np.ndim(n) == 0
    k_arr, n_arr = np.broadcast_arrays(np.asarray(k), np.asarray(n))
    out = np.full(k_arr.shape, np.nan)
    finite = np.isfinite(n_arr.astype(float)) & (n_arr > 0)
    for value in np.unique(n_arr[finite]):
        sel = finite & (n_arr == value)
        out[sel] = _abs_dev_table(int(value))[k_arr[sel].astype(np.int64)]
    return _as_out(out, scalar)


def _abs_dev_conditional(k, n) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of h_n(k*) for k* ~ Binomial(n, p̃), p̃ = (k + 1) / (n + 2).

    Add-one shares: never 0 at p̂ ∈ {0, 1}, where an observed 0 of n still allows some image noise.
    """
    k, n = np.asarray(k, dtype=np.int64), np.asarray(n, dtype=np.int64)
    mean, var = np.empty(len(n)), np.empty(len(n))
    for value in np.unique(n):  # one pmf matrix per distinct n, not one scipy call per prompt
        sel = n == value
        h = _abs_dev_table(int(value))
        w = binom_pmf_rows(int(value), (k[sel] + 1) / (value + 2))
        mean[sel] = w @ h
        var[sel] = w @ h**2 - mean[sel] ** 2
    return mean, var


def _abs_dev_variance(k, n) -> np.ndarray:
    """Var of h_n(k*) for k* ~ Binomial(n, p̃), p̃ = (k + 1) / (n + 2) (add-one: never 0 at p̂ ∈ {0, 1})."""
    return _abs_dev_conditional(k, n)[1]


def wilson_interval(k, n, confidence: float = 0.95):
    """Wilson score interval for a binomial proportion k/n, vectorized; n == 0 gives nan.

    low, high = (p̂ + z²/2n ∓ z·sqrt(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n), z = Φ⁻¹(1 − α/2).
    Chosen over the Wald interval because it keeps its coverage near p = 0 or 1, where
    heavily skewed occupations sit.
    """
    scalar = np.ndim(k) == 0 and np.ndim(n) == 0
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    z = sps.norm.ppf(1.0 - (1.0 - confidence) / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denom = 1.0 + z * z / n
        center = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
        low = np.where(n > 0, np.clip(center - half, 0.0, 1.0), np.nan)
        high = np.where(n > 0, np.clip(center + half, 0.0, 1.0), np.nan)
    return _as_out(low, scalar), _as_out(high, scalar)


def noise_floor(n, p: float = 0.5):
    """Exact E|p̂ − 0.5| for p̂ = k/n, k ~ Binomial(n, p); vectorized over n; n == 0 -> nan.

    E|p̂ − 0.5| = Σ_k C(n,k) p^k (1−p)^(n−k) |k/n − 0.5|. With p = 0.5 this is the deviation
    a perfectly fair model shows from sampling noise alone (0.0398 at n = 100, 0.0561 at 50).
    """
    scalar = np.ndim(n) == 0
    n_arr = np.asarray(n, dtype=float)
    out = np.full(n_arr.shape, np.nan)
    finite = np.isfinite(n_arr) & (n_arr > 0)
    for value in np.unique(n_arr[finite]):
        m = int(value)
        k = np.arange(m + 1)
        out[n_arr == value] = float(np.sum(sps.binom.pmf(k, m, p) * np.abs(k / m - 0.5)))
    return _as_out(out, scalar)


def rogan_gladen(p_observed, sensitivity: float, specificity: float):
    """Correct an observed share for classifier error (Rogan & Gladen 1978), clipped to [0, 1].

    p_true = (p_observed + specificity − 1) / (sensitivity + specificity − 1), where
    sensitivity = P(labelled female | female) and specificity = P(labelled male | male).
    Needs sensitivity + specificity > 1 (a classifier better than chance).
    """
    if not sensitivity + specificity > 1.0:
        raise ValueError(
            f"sensitivity + specificity must exceed 1 (got {sensitivity} + {specificity}); "
            "a classifier no better than chance carries no information to correct with"
        )
    scalar = np.ndim(p_observed) == 0
    p = np.asarray(p_observed, dtype=float)
    corrected = np.clip((p + specificity - 1.0) / (sensitivity + specificity - 1.0), 0.0, 1.0)
    return _as_out(corrected, scalar)
