"""Means over subjects (occupations) with their intervals: `aggregate`.

See magbig.stats for the scales and the choice of intervals."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy import stats as sps

from magbig.stats._common import (
    GROUP_KEYS, _STATUS_COUNTS, _frame, _groups, _percentile_bounds, _present,
    _group_rng, _require_unique_subjects,
)
from magbig.stats.shares import (
    _abs_dev_conditional, _abs_dev_variance, abs_dev_estimator, binom_pmf_rows, noise_floor,
)
from magbig.stats.tables import _agg


# --------------------------------------------------------------------------------------------
# aggregates over subjects


_SCHEMES = ("two_stage", "subjects", "images")


def _cluster_bootstrap(
    k: np.ndarray, n: np.ndarray, n_boot: int, rng: np.random.Generator, scheme: str = "two_stage"
) -> np.ndarray:
    """Replicates of per-subject p̂, shape (n_boot, S).

    two_stage: draw S subjects with replacement (occupations as a sample of possible
    occupations), then redraw each drawn subject's images as k* ~ Binomial(n, p̂).
    subjects: stage 1 only. images: stage 2 only, for the fixed set of subjects.
    """
    s = len(n)
    if scheme == "images":
        idx = np.broadcast_to(np.arange(s), (n_boot, s))
    else:
        idx = rng.integers(0, s, size=(n_boot, s))
    nn = n[idx]
    if scheme == "subjects":
        return k[idx] / nn
    return _binomial_by_inverse_cdf(k, n, idx, rng) / nn


_GUIDE_BUCKETS = 4096  # a power of two: u * buckets and the bucket edges are exact


def _binomial_by_inverse_cdf(k: np.ndarray, n: np.ndarray, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """k* ~ Binomial(n[i], k[i] / n[i]) for every i in idx, by inverse CDF with a guide table.

    numpy's binomial redoes its sampler's set-up whenever (n, p) changes between elements, which
    made this draw most of `magbig stats`' time (RESULTS.md §15). Here each subject's CDF F_i is
    built once and k* = #{j : F_i(j) <= u} = min{j : F_i(j) > u} for one uniform u per draw. The
    guide table (Chen & Asau's indexed search) holds k* at each bucket edge b / 4096; a draw whose
    bucket has the same k* at both edges takes it from there (k* is monotone in u), and the few
    (~1%) whose bucket holds a CDF step are searched exactly in their own subject's CDF.
    """
    width = int(n.max()) + 1
    cdf = np.ones((len(n), width))
    for value in np.unique(n):
        sel = np.flatnonzero(n == value)
        cdf[sel, : value + 1] = np.cumsum(binom_pmf_rows(int(value), k[sel] / value), axis=1)
        cdf[sel, value:] = 1.0  # exactly 1 at and past n: rounding may leave 1 ± 1e-16
    np.clip(cdf, 0.0, 1.0, out=cdf)
    rows = np.arange(len(n))[:, None]
    # guide[i, b] = #{j : F_i(j) <= b / B} = #{j : ceil(F_i(j) * B) <= b}: a histogram per row of
    # the first bucket edge each CDF value lies at or below, summed along the buckets.
    first_edge = np.ceil(cdf * _GUIDE_BUCKETS).astype(np.int64) + rows * (_GUIDE_BUCKETS + 1)
    guide = np.bincount(first_edge.ravel(), minlength=len(n) * (_GUIDE_BUCKETS + 1))
    guide = np.cumsum(guide.reshape(len(n), _GUIDE_BUCKETS + 1), axis=1, dtype=np.int32)
    u = rng.random(idx.shape)
    bucket = (u * _GUIDE_BUCKETS).astype(np.int64)
    draws = guide[idx, bucket].astype(np.int64)
    step = np.nonzero(draws != guide[idx, bucket + 1])
    at, u_step = idx[step], u[step]
    found = np.empty(len(at), dtype=np.int64)
    for row in np.unique(at):  # per subject, in its own CDF: no offset to round (F = 1 at n, so k* <= n)
        sel = at == row
        found[sel] = np.searchsorted(cdf[row], u_step[sel], side="right")
    draws[step] = found
    return draws


def aggregate(
    per_prompt_df: pl.DataFrame,
    by: Sequence[str] = GROUP_KEYS,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    scheme: str = "two_stage",
) -> pl.DataFrame:
    """Means over subjects (occupations) per group, with intervals that say how sure they are.

    Per group of ``by`` (absent columns skipped): n_subjects (with ≥ 1 labelled image),
    n_labelled (labelled images), mean_p_female, mean_abs_dev, mean_l1, each with ``_low`` /
    ``_high`` bounds at ``confidence``; mean_abs_dev_raw / mean_l1_raw (the plain mean of
    |p̂ − 0.5|, MAGBIG's published scale, biased upward by up to the noise floor);
    mean_noise_floor (the mean over subjects of E|p̂ − 0.5| a fair model would show at each
    subject's n); interval_note (null, or why an interval is narrower in scope than usual).
    Also the face-filter totals n_images (every generated image), n_no_face,
    n_multiple_faces, n_uncertain, n_error.

    mean_abs_dev is bias-corrected: the mean of the per-prompt h_n(k) terms (module docstring),
    clipped to [0, 0.5] with its bounds; l1 is exactly twice it, bounds included.

    ``scheme`` picks what the intervals are about:

    - ``"two_stage"`` (default): the mean over a population of possible occupations. p_female:
      resample subjects with replacement, then images within each (k* ~ Binomial(n, p̂)).
      abs_dev: Student-t over the subjects' h_n(k) terms (their spread holds the image noise;
      no second stage, which would add it twice and shift the interval), the variance
      stabilised against skewed terms (module docstring).
    - ``"subjects"``: stage 1 only (Davison & Hinkley's cluster resampling), same target.
    - ``"images"``: the mean over exactly these subjects (e.g. MAGBIG's fixed 151
      occupations); image noise alone. abs_dev: normal interval with each term's variance at
      the add-one share (k + 1) / (n + 2).

    No zero-width interval is printed as certainty: with one subject (nothing to say about
    other occupations) or when every subject gave the same estimate (e.g. every p̂ ∈ {0, 1}),
    the interval falls back to image noise at add-one shares, and interval_note says so.
    The point estimate always lies inside its interval.
    """
    if scheme not in _SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(_SCHEMES)}; got {scheme!r}")
    keys = _present(per_prompt_df, by)
    if "subject" in keys:
        raise ValueError("aggregate averages over subjects; do not put 'subject' in `by`")
    _require_unique_subjects(per_prompt_df, keys, "aggregate")
    rows = []
    for key, g in _groups(per_prompt_df, keys):
        g = g.filter(pl.col("n_labelled") > 0)
        k = g["n_female"].to_numpy().astype(np.int64)
        n = g["n_labelled"].to_numpy().astype(np.int64)
        row = {**dict(zip(keys, key, strict=True)), "n_subjects": len(n), "n_labelled": int(n.sum())}
        for name in ("p_female", "abs_dev"):
            row.update({f"mean_{name}{x}": math.nan for x in ("", "_low", "_high")})
        row.update(mean_abs_dev_raw=math.nan, mean_noise_floor=math.nan, interval_note=None)
        if len(n):
            rng = _group_rng(seed, keys, key)
            p_est, p_lo, p_hi, p_note = _mean_share_interval(k, n, n_boot, rng, scheme, confidence)
            d_est, d_lo, d_hi, d_note = _mean_abs_dev_interval(k, n, scheme, confidence)
            row.update(mean_p_female=p_est, mean_p_female_low=p_lo, mean_p_female_high=p_hi,
                       mean_abs_dev=d_est, mean_abs_dev_low=d_lo, mean_abs_dev_high=d_hi,
                       mean_abs_dev_raw=float(np.abs(k / n - 0.5).mean()),
                       mean_noise_floor=float(np.mean(noise_floor(n))),
                       interval_note="; ".join(dict.fromkeys(x for x in (p_note, d_note) if x)) or None)
        for suffix in ("", "_low", "_high", "_raw"):
            row[f"mean_l1{suffix}"] = 2.0 * row[f"mean_abs_dev{suffix}"]
        rows.append(row)
    schema = {c: per_prompt_df.schema[c] for c in keys}
    schema |= {"n_subjects": pl.Int64, "n_labelled": pl.Int64}
    for name in ("p_female", "abs_dev", "l1"):
        schema |= {f"mean_{name}{x}": pl.Float64 for x in ("", "_low", "_high")}
    schema |= {"mean_abs_dev_raw": pl.Float64, "mean_l1_raw": pl.Float64, "mean_noise_floor": pl.Float64,
               "interval_note": pl.String}
    out = _frame(rows, schema)
    # Face-filter totals over every prompt, including those with no labelled image.
    sums = [pl.col("n_images").sum()]
    sums += [pl.col(c).sum() for c in _STATUS_COUNTS[1:] if c in per_prompt_df.columns]
    totals = _agg(per_prompt_df, keys, sums)
    if not keys:
        return pl.concat([out, totals], how="horizontal")
    return out.join(totals, on=keys, how="left", nulls_equal=True, maintain_order="left")


_NOTE_ONE_SUBJECT = "one subject: image noise only (no spread between occupations to estimate)"
_NOTE_CONSTANT = "every subject gave the same estimate: image noise only, at add-one shares"
_NOTE_SINGLE_IMAGES = "every prompt has one labelled image: no estimate of abs_dev (one image cannot tell)"


def _mean_share_interval(k, n, n_boot, rng, scheme, confidence):
    est = float((k / n).mean())
    lo, hi = _percentile_bounds(_cluster_bootstrap(k, n, n_boot, rng, scheme).mean(axis=1), confidence)
    note = _NOTE_ONE_SUBJECT if len(n) == 1 and scheme != "images" else None
    if hi - lo <= 0:
        # E.g. every p̂ ∈ {0, 1}: redrawing images at p̂ repeats p̂. Add-one shares keep the
        # image noise an observed 0 of n is compatible with.
        shares = (k + 1) / (n + 2)
        reps = (rng.binomial(n, shares, size=(n_boot, len(n))) / n).mean(axis=1)
        lo, hi = _percentile_bounds(reps, confidence)
        note = _NOTE_ONE_SUBJECT if len(n) == 1 and scheme != "images" else _NOTE_CONSTANT
    return est, float(min(lo, est)), float(max(hi, est)), note


def _mean_abs_dev_interval(k, n, scheme, confidence):
    # One labelled image says nothing about a prompt's distance from parity (h_1 is 0 whatever
    # the label, the only estimator unbiased at p = 0.5): such prompts are left out, and said so.
    one = np.asarray(n) < 2
    if one.all():
        return math.nan, math.nan, math.nan, _NOTE_SINGLE_IMAGES
    left_out = f"{int(one.sum())} prompt(s) with one labelled image left out of abs_dev" if one.any() else None
    k, n = np.asarray(k)[~one], np.asarray(n)[~one]
    est, lo, hi, note = _corrected_interval(k, n, scheme, confidence)
    return est, lo, hi, "; ".join(x for x in (note, left_out) if x) or None


def _corrected_interval(k, n, scheme, confidence):
    terms = abs_dev_estimator(k, n)
    est = float(terms.mean())
    s = len(terms)
    spread = float(terms.std(ddof=1)) if s > 1 else 0.0
    note = None
    if scheme != "images" and s > 1 and spread > 1e-12:
        # The sample variance of the terms underestimates when they are skewed (shares near 0
        # or 1 at small n: a rare outlying term carries the tail, and most draws of prompts miss
        # it; coverage fell to 0.90); the add-one model variance, between-prompt variance of
        # the terms' conditional means plus their mean conditional variance, overestimates
        # there (coverage 1.00). Their geometric mean keeps every simulated cell but one at or
        # above 0.93, at most 0.995 (conservative for skewed shares; benchmarks/RESULTS.md §9).
        cond_mean, cond_var = _abs_dev_conditional(k, n)
        model_var = float(cond_mean.var(ddof=1) + cond_var.mean())
        sd = math.sqrt(spread * math.sqrt(model_var)) if model_var > 0 else spread
        half = sps.t.ppf(0.5 + confidence / 2, s - 1) * sd / math.sqrt(s)
    else:
        half = sps.norm.ppf(0.5 + confidence / 2) * math.sqrt(_abs_dev_variance(k, n).sum()) / s
        if scheme != "images":
            note = _NOTE_ONE_SUBJECT if s == 1 else _NOTE_CONSTANT
    # |p − 0.5| lies in [0, 0.5]: clipping estimate and bounds keeps coverage and containment.
    clip = lambda x: float(min(max(x, 0.0), 0.5))  # noqa: E731
    return clip(est), clip(est - half), clip(est + half), note
