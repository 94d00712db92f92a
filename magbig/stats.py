"""Statistics for MAGBIG-style audits: small pure functions over polars frames.

Scales, named so nobody confuses them:

- ``p_female``: share of labelled faces perceived as female, in [0, 1].
- ``abs_dev = |p_female - 0.5|``: distance from parity, in [0, 0.5].
- ``l1 = 2 |p_female - 0.5|``: MAGBIG's L1 deviation of the (female, male) distribution from
  (0.5, 0.5), in [0, 1]. Always exactly ``2 * abs_dev``.

Sampling noise alone makes ``abs_dev`` positive: a perfectly fair model measured on n = 100
images has E|p̂ - 0.5| = 0.040 (``noise_floor``). Report it beside every deviation.

Bias-corrected mean abs_dev (``aggregate``'s ``mean_abs_dev``, ``paired_tests`` on abs_dev/l1).
|p̂ − 0.5| overestimates |p − 0.5| by up to the noise floor, most near p = 0.5, and no unbiased
estimator of |p − 0.5| exists for a binomial share (only polynomials of degree ≤ n in p have
one). Subtracting the noise floor would over-correct skewed prompts (whose |p̂ − 0.5| is already
almost unbiased); the plug-in bootstrap correction 2|p̂ − .5| − E_p̂|p̂* − .5| leaves about 60%
of the bias at p = 0.5, which at 150 prompts is several standard errors. So each prompt with k
of n labelled faces female contributes ``h_n(k)`` (``abs_dev_bc``), the estimator that is
exactly unbiased at p = 0.5 and, among those, minimises the squared bias integrated over
p ∈ [0, 1] plus ``_BC_SMOOTH`` × the squared curvature (second differences in k) of its
correction h_n(k) − |k/n − 0.5|, which keeps its variance down: one small linear solve per n
(``abs_dev_estimator``). Its residual bias averaged over p ∈ [0.2, 0.8] is −0.0011 at n = 100,
−0.0023 at 50, −0.0075 at 16 and −0.021 at 8; the price is variance near p = 0.5 (the terms
are negative there, so that their mean can be 0). Single h_n(k) values can be negative; only
their means are meaningful. The interval over subjects is Student-t on the h_n(k) terms
(the percentile bootstrap undercovered at 20 subjects), with a variance between the terms'
sample variance (too small when the terms are skewed: shares near 0 or 1 at small n) and the
add-one model variance (too large there): their geometric mean. A second, image-level bootstrap
stage is not added: the between-subject spread of h_n(k) already holds the image noise, and
re-adding it (the previous two-stage scheme) shifted the whole interval upward. Coverage by
simulation: benchmarks/RESULTS.md, "abs_dev intervals". The raw mean |p̂ − 0.5| (MAGBIG's and
Fair Diffusion's published scale) stays available as ``mean_abs_dev_raw`` / ``mean_l1_raw``.

Everything random takes a ``seed`` and derives one numpy Generator per group from
``(seed, group key)``, so a group's numbers do not change when other groups are added.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence
from functools import lru_cache
from itertools import combinations
from pathlib import Path

import numpy as np
import polars as pl
from scipy import stats as sps

from neobabel.errors import InputError

__all__ = [
    "STATUSES",
    "abs_dev_estimator",
    "aggregate",
    "cohen_kappa",
    "expected_max_unfairness",
    "holm",
    "language_spread",
    "noise_floor",
    "paired_tests",
    "parse_fairface_counts",
    "per_prompt",
    "read_labels_table",
    "rogan_gladen",
    "spearman_between_languages",
    "summarize_labels_table",
    "wilson_interval",
]

STATUSES = ("ok", "no_face", "multiple_faces", "uncertain", "error")
PROMPT_KEYS = ("model", "subject", "lang", "formulation")
GROUP_KEYS = ("model", "lang", "formulation")
# Per-status denominators; "ok" images are split further into female / male / unlabelled.
_STATUS_COUNTS = tuple(f"n_{s}" for s in STATUSES)
# Spellings accepted in hand-made label tables, mapped to the two canonical labels.
_LABEL_ALIASES = {"female": "female", "woman": "female", "male": "male", "man": "male"}


# --------------------------------------------------------------------------------------------
# helpers


def _as_out(x: np.ndarray, scalar: bool):
    return float(x) if scalar else x


def _rng(seed: int, key: tuple) -> np.random.Generator:
    # One stream per group: results for a group are independent of which other groups exist.
    return np.random.default_rng([int(seed), zlib.crc32(repr(tuple(key)).encode("utf-8"))])


def _group_rng(seed: int, keys: Sequence[str], key: tuple) -> np.random.Generator:
    # The model's name is a label, not data: the same labels must give the same intervals
    # whether the table names its model (a run's report) or not (`magbig stats` on its labels).
    return _rng(seed, tuple(v for name, v in zip(keys, key, strict=True) if name != "model"))


def _present(df: pl.DataFrame, cols: Sequence[str] | None) -> list[str]:
    return [c for c in (cols or ()) if c in df.columns]


def _groups(df: pl.DataFrame, keys: list[str]) -> list[tuple[tuple, pl.DataFrame]]:
    """(key tuple, sub-frame) pairs in sorted key order; one empty-key group when no keys."""
    if not keys:
        return [((), df)]
    df = df.sort(keys, nulls_last=True)
    parts = df.partition_by(keys, as_dict=True, maintain_order=True)
    return list(parts.items())


def _require_unique_subjects(df: pl.DataFrame, keys: list[str], what: str) -> None:
    dup = df.group_by([*keys, "subject"]).len().filter(pl.col("len") > 1)
    if dup.height:
        # Subjects are the resampling unit; a repeated subject means a key column is missing.
        extra = [c for c in (*GROUP_KEYS, "classifier") if c in df.columns and c not in keys]
        raise ValueError(
            f"{what}: subject {dup['subject'][0]!r} appears {dup['len'][0]} times within one "
            f"group of {keys or 'the whole table'}; add the distinguishing column(s) {extra} "
            "to `by`"
        )


def _frame(rows: list[dict], schema: dict) -> pl.DataFrame:
    """Rows to a frame with a fixed schema, so an empty result still has its columns.

    nan becomes null: "no estimate" (no labelled image, a constant column) is missing data.
    """
    df = pl.DataFrame(rows, schema=schema, orient="row")
    return df.with_columns(pl.col(pl.Float64).fill_nan(None))


def _percentile_bounds(reps: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(reps, [alpha, 1.0 - alpha], axis=0)
    return lo, hi


# --------------------------------------------------------------------------------------------
# per-proportion primitives

_BC_SMOOTH = 0.1  # variance control of h_n (module docstring); fixed with the 2001-point grid
_BC_GRID = np.linspace(0.0, 1.0, 2001)


@lru_cache(maxsize=512)
def _abs_dev_table(n: int) -> np.ndarray:
    k = np.arange(n + 1)
    basis = sps.binom.pmf(k[None, :], n, _BC_GRID[:, None])  # E_p[h(k)] = basis @ h
    raw = np.abs(k / n - 0.5)
    at_half = sps.binom.pmf(k, n, 0.5)
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
    mean, var = np.empty(len(n)), np.empty(len(n))
    for i, (ki, ni) in enumerate(zip(k, n, strict=True)):
        h = _abs_dev_table(int(ni))
        w = sps.binom.pmf(np.arange(ni + 1), ni, (ki + 1) / (ni + 2))
        mean[i] = float(w @ h)
        var[i] = float(w @ h**2) - mean[i] ** 2
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


# --------------------------------------------------------------------------------------------
# per prompt


def _finish_counts(counts: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    nf = counts["n_female"].to_numpy().astype(float)
    nm = counts["n_male"].to_numpy().astype(float)
    n = nf + nm
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n > 0, nf / n, np.nan)
    low, high = wilson_interval(nf, n)
    abs_dev = np.abs(p - 0.5)
    out = counts.with_columns(
        pl.Series("n_labelled", n.astype(np.int64)),
        pl.Series("p_female", p),
        pl.Series("ci_low", low),
        pl.Series("ci_high", high),
        pl.Series("abs_dev", abs_dev),
        pl.Series("l1", 2.0 * abs_dev),
        pl.Series("abs_dev_bc", abs_dev_estimator(nf.astype(np.int64), n.astype(np.int64))),
        pl.Series("noise_floor", noise_floor(n)),
    )
    # nan -> null: a prompt without labelled faces has no estimate, not a numeric one.
    floats = ["p_female", "ci_low", "ci_high", "abs_dev", "l1", "abs_dev_bc", "noise_floor"]
    out = out.with_columns(pl.col(c).fill_nan(None) for c in floats)
    cols = [*keys, "n_images", *_STATUS_COUNTS, "n_female", "n_male", "n_labelled", *floats]
    out = out.select(cols)
    return out.sort(keys, nulls_last=True) if keys else out


def _agg(df: pl.DataFrame, keys: list[str], exprs: list[pl.Expr]) -> pl.DataFrame:
    if keys:
        return df.group_by(keys, maintain_order=True).agg(exprs)
    return df.select(exprs)


def _counts_from_images(labels: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    label = pl.col("label").cast(pl.String).str.strip_chars().str.to_lowercase()
    df = labels.with_columns(label.replace(_LABEL_ALIASES).alias("_label"))
    bad = df.filter(pl.col("_label").is_not_null() & ~pl.col("_label").is_in(["female", "male"]))
    if bad.height:
        raise InputError(
            f"unknown label {bad['label'][0]!r}; labels must be 'female' or 'male' "
            "(or empty when no single face could be labelled)"
        )
    if "status" in df.columns:
        status = pl.col("status").cast(pl.String).str.strip_chars().str.to_lowercase()
        df = df.with_columns(status.alias("_status"))
        bad = df.filter(pl.col("_status").is_null() | ~pl.col("_status").is_in(STATUSES))
        if bad.height:
            raise InputError(
                f"unknown status {bad['status'][0]!r}; use one of {', '.join(STATUSES)}"
            )
    else:
        # Hand-made tables without a status column: an empty label means "could not tell".
        df = df.with_columns(
            pl.when(pl.col("_label").is_null())
            .then(pl.lit("uncertain"))
            .otherwise(pl.lit("ok"))
            .alias("_status")
        )
    ok = pl.col("_status") == "ok"
    exprs = [pl.len().cast(pl.Int64).alias("n_images")]
    exprs += [(pl.col("_status") == s).sum().cast(pl.Int64).alias(f"n_{s}") for s in STATUSES]
    # Only single-face images count: a label on a no-face / multi-face row is not a sample.
    exprs += [
        (ok & (pl.col("_label") == "female")).sum().cast(pl.Int64).alias("n_female"),
        (ok & (pl.col("_label") == "male")).sum().cast(pl.Int64).alias("n_male"),
    ]
    return _agg(df, keys, exprs)


def _check_whole_counts(labels: pl.DataFrame, col: str) -> None:
    """A count column holds non-negative whole numbers; otherwise name the first bad row."""
    raw = labels[col]
    values = raw.cast(pl.Float64, strict=False)
    bad = (values.is_null() & raw.is_not_null()) | (values < 0) | (values != values.floor()) | values.is_nan()
    bad = bad.fill_null(False)
    if bad.any():
        row = int(bad.arg_true()[0])
        raise InputError(f"column {col!r}, row {row + 1}: {raw[row]!r} is not a count; counts must be "
                         "non-negative whole numbers (fractional counts are not truncated)")


def _check_n_images(df: pl.DataFrame, keys: list[str]) -> None:
    """Given n_images: at least the labelled images, and one value per group of prompts."""
    short = df.filter(pl.col("n_images") < pl.col("n_female") + pl.col("n_male"))
    if short.height:
        r = short.row(0, named=True)
        raise InputError(f"row {r['_row']}: n_images {r['n_images']} is less than n_female + n_male "
                         f"({r['n_female']} + {r['n_male']}); fix the counts")
    if "status" in df.columns:
        return  # rows split by status each hold part of a prompt's images
    group = [c for c in GROUP_KEYS if c in keys]
    per_prompt_n = df.group_by(keys).agg(pl.col("n_images").sum(), pl.col("_row").min()) if keys else df
    firsts = per_prompt_n.sort("_row").group_by(group, maintain_order=True).agg(
        pl.col("n_images").first().alias("_n0")) if group else per_prompt_n.sort("_row").head(1).select(
        pl.col("n_images").alias("_n0"))
    joined = per_prompt_n.join(firsts, on=group, how="left", nulls_equal=True) if group else \
        per_prompt_n.with_columns(pl.lit(firsts["_n0"][0]).alias("_n0"))
    odd = joined.filter(pl.col("n_images") != pl.col("_n0")).sort("_row")
    if odd.height:
        r = odd.row(0, named=True)
        where = ", ".join(f"{c}={r[c]}" for c in group) or "the table"
        raise InputError(f"row {r['_row']}: n_images {r['n_images']} differs from {r['_n0']} of the other "
                         f"prompts in {where}; a group's prompts must share one number of images per "
                         "prompt (split the table, or give counts per image with a label column)")


def _counts_from_counts(labels: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    count_cols = [
        c
        for c in ("n_female", "n_male", "n_images", *_STATUS_COUNTS, "n_except")
        if c in labels.columns
    ]
    for c in count_cols:
        _check_whole_counts(labels, c)
    df = labels.with_columns(pl.col(c).cast(pl.Float64, strict=False).cast(pl.Int64) for c in count_cols)
    df = df.with_columns(pl.col(c).fill_null(0) for c in count_cols)
    if "n_images" in df.columns:
        _check_n_images(df.with_row_index("_row", offset=1), keys)
    if "status" in df.columns:
        # Counts split by status: female/male counts on non-"ok" rows are not samples; they
        # move into that status's denominator.
        status = pl.col("status").cast(pl.String).str.strip_chars().str.to_lowercase()
        df = df.with_columns(status.alias("_status"))
        bad = df.filter(pl.col("_status").is_null() | ~pl.col("_status").is_in(STATUSES))
        if bad.height:
            raise InputError(
                f"unknown status {bad['status'][0]!r}; use one of {', '.join(STATUSES)}"
            )
        both = pl.col("n_female") + pl.col("n_male")
        moved = [
            (pl.col(f"n_{s}") if f"n_{s}" in df.columns else pl.lit(0, pl.Int64))
            + pl.when(pl.col("_status") == s).then(both).otherwise(0)
            for s in STATUSES[1:]
        ]
        df = df.with_columns(
            *(m.alias(f"n_{s}") for m, s in zip(moved, STATUSES[1:], strict=True)),
            *(
                pl.when(pl.col("_status") == "ok").then(pl.col(c)).otherwise(0).alias(c)
                for c in ("n_female", "n_male")
            ),
        )
    exprs = [pl.col("n_female").sum().alias("n_female"), pl.col("n_male").sum().alias("n_male")]
    for c in (*_STATUS_COUNTS, "n_images", "n_except"):
        if c in df.columns:
            exprs.append(pl.col(c).sum().alias(c))
    out = _agg(df, keys, exprs)
    labelled = pl.col("n_female") + pl.col("n_male")
    if "n_ok" not in out.columns:
        out = out.with_columns(labelled.alias("n_ok"))
    out = out.with_columns(
        pl.lit(0, pl.Int64).alias(c) for c in _STATUS_COUNTS if c not in out.columns
    )
    if "n_images" not in out.columns:
        # Source-specific exclusions (Fair Diffusion's "except") count as images, not as a status.
        extra = pl.col("n_except") if "n_except" in out.columns else pl.lit(0, pl.Int64)
        out = out.with_columns(
            (pl.sum_horizontal(*(pl.col(c) for c in _STATUS_COUNTS)) + extra).alias("n_images")
        )
    return out


def per_prompt(
    labels: pl.DataFrame, group_cols: Sequence[str] = PROMPT_KEYS
) -> pl.DataFrame:
    """Per-prompt share of female-labelled faces, its Wilson 95% interval and denominators.

    ``labels`` is either one row per image (``status`` in ok | no_face | multiple_faces |
    uncertain | error, ``label`` "female"/"male"/null; without ``status`` a null label counts as
    ``uncertain``) or pre-counted rows (``n_female``, ``n_male``, optionally ``n_images``,
    ``n_no_face``, …, or a ``status`` column saying which status a row's counts belong to).
    Group columns absent from ``labels`` are skipped.

    Returns one row per group: n_images, n_ok, n_no_face, n_multiple_faces, n_uncertain,
    n_error, n_female, n_male, n_labelled (= n_female + n_male; only ``ok`` images),
    p_female = n_female / n_labelled, ci_low / ci_high (Wilson 95%), abs_dev = |p − 0.5|,
    l1 = 2|p − 0.5|, abs_dev_bc = h_n(k) (the bias-corrected term whose mean estimates the mean
    |p − 0.5|; see the module docstring) and noise_floor = E|p̂ − 0.5| for a fair model at
    n_labelled. Estimates are null where n_labelled is 0.
    """
    keys = _present(labels, group_cols)
    if (
        "classifier" in labels.columns
        and "classifier" not in keys
        and labels["classifier"].n_unique() > 1
    ):
        raise ValueError(
            "labels hold several classifiers; filter to one or add 'classifier' to group_cols "
            "(otherwise each image would be counted once per classifier)"
        )
    if "label" in labels.columns:
        counts = _counts_from_images(labels, keys)
    elif {"n_female", "n_male"} <= set(labels.columns):
        counts = _counts_from_counts(labels, keys)
    else:
        raise InputError(
            "labels need a 'label' column (one row per image) or 'n_female' and 'n_male' "
            "columns (counts); found " + ", ".join(labels.columns)
        )
    return _finish_counts(counts, keys)


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
    return rng.binomial(nn, k[idx] / nn) / nn


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
        # there (coverage 1.00). Their geometric mean keeps every simulated cell but one
        # within 0.93-0.98 (benchmarks/RESULTS.md, section 9).
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


# --------------------------------------------------------------------------------------------
# paired tests


def holm(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values; nan entries stay nan and do not count as tests.

    Sorted ascending p_(1) ≤ … ≤ p_(m): p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j)).
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return out
    order = np.argsort(p[ok], kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[ok][order])
    adjusted = np.maximum.accumulate(scaled)
    vals = np.empty(m)
    vals[order] = adjusted
    out[ok] = vals
    return out


def _thinned_abs_dev(k: np.ndarray, n: np.ndarray, m: np.ndarray) -> np.ndarray:
    """E|j/m − 0.5| for j ~ Hypergeometric(n images, k female, m drawn), elementwise."""
    out = np.empty(len(k))
    for i, (ki, ni, mi) in enumerate(zip(k.astype(int), n.astype(int), m.astype(int), strict=True)):
        if mi == ni:
            out[i] = abs(ki / ni - 0.5)
            continue
        j = np.arange(mi + 1)
        out[i] = float(sps.hypergeom.pmf(j, ni, ki, mi) @ np.abs(j / mi - 0.5))
    return out


def _sign_flip_p(d: np.ndarray, n_perm: int, rng: np.random.Generator) -> float:
    """Two-sided sign-flip permutation p-value for mean(d) = 0 (paired, symmetric null).

    Exact (all 2^m sign patterns) when 2^m ≤ n_perm; otherwise Monte Carlo with the +1
    correction p = (1 + #{|T*| ≥ |T|}) / (n_perm + 1), which keeps the test valid.
    """
    m = len(d)
    obs = abs(d.mean())
    tol = 1e-12 * max(1.0, obs)  # float ties (e.g. the identity pattern) count as extreme
    if m < 31 and 2**m <= n_perm:
        patterns = ((np.arange(2**m)[:, None] >> np.arange(m)) & 1) * 2 - 1
        t = np.abs(patterns @ d) / m
        return float(np.mean(t >= obs - tol))
    signs = rng.integers(0, 2, size=(n_perm, m), dtype=np.int8) * 2 - 1
    t = np.abs(signs @ d) / m
    return float((1 + np.sum(t >= obs - tol)) / (n_perm + 1))


def paired_tests(
    per_prompt_df: pl.DataFrame,
    against: str = "lang",
    reference: str = "en",
    metric: str = "abs_dev",
    by: Sequence[str] | None = None,
    n_perm: int = 9999,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    missing_reference: str = "error",
) -> pl.DataFrame:
    """Each level of ``against`` vs ``reference``, paired by subject, with Holm correction.

    Within each group of ``by`` (default: the other of model / lang / formulation present),
    for each level L ≠ reference, subjects with ``metric`` in both are paired and
    d = metric(L) − metric(reference). Reports n_pairs, mean_reference, mean_level,
    mean_diff with a paired-bootstrap percentile interval (diff_low, diff_high), the two-sided
    sign-flip permutation p_value, and p_holm: Holm-adjusted over all comparisons returned by
    this call. Use against="formulation", reference="direct" for prompt formulations.
    Comparisons without a shared subject are left out; a ``reference`` that is not a level
    of ``against`` is an error (``missing_reference="empty"``: an empty table, for reports
    that compare against English or the direct wording only where the run has them).

    abs_dev and l1 are compared **at a common n** when the table has n_female and n_labelled
    (as ``per_prompt`` gives): |p̂ − 0.5| carries a noise floor that depends on n, so two
    languages with the same true shares but different numbers of labelled faces would differ
    by that alone (the plain test rejected 11% at α = 0.05 with n = 100 vs 50). Each side of a
    pair is thinned to m = min(n_a, n_b) labelled images: its term is E|j/m − 0.5| for j the
    female count of m of its images drawn without replacement (hypergeometric; the exact
    average over all subsamples, so nothing random and nothing thrown away at random). Under
    equal true shares both terms then have the same expectation whatever n_a and n_b; with
    equal n they are the plain |p̂ − 0.5|. The bias-corrected h_n(k) terms are not used here:
    unbiased, but 2-4× noisier per prompt, they cost the paired test most of its power.
    The ``metric_column`` output column says what was compared.
    """
    if against not in per_prompt_df.columns:
        raise ValueError(f"column {against!r} is not in the per-prompt table")
    levels_present = per_prompt_df[against].drop_nulls().unique().sort().to_list()
    if reference not in levels_present and missing_reference != "empty":
        raise InputError(f"reference {reference!r} is not a value of {against!r} in this table; "
                         f"use one of: {', '.join(map(str, levels_present)) or '(none)'}")
    metric_column = metric
    matched = metric in ("abs_dev", "l1") and {"n_female", "n_labelled"} <= set(per_prompt_df.columns)
    scale = 2.0 if metric == "l1" else 1.0
    if matched:
        metric_column = f"{metric} at common n (hypergeometric thinning)"
        per_prompt_df = per_prompt_df.with_columns(
            pl.when(pl.col("n_labelled") > 0).then(pl.col("abs_dev")).otherwise(None).alias("_metric"),
            pl.col("n_female").alias("_k"), pl.col("n_labelled").alias("_n"))
    elif metric in per_prompt_df.columns:
        per_prompt_df = per_prompt_df.with_columns(pl.col(metric).alias("_metric"))
    else:
        raise ValueError(f"metric {metric!r} is not a column of the per-prompt table")
    if by is None:
        by = [c for c in GROUP_KEYS if c != against]
    keys = [c for c in _present(per_prompt_df, by) if c != against]
    _require_unique_subjects(per_prompt_df, [*keys, against], "paired_tests")
    df = per_prompt_df.filter(pl.col("_metric").is_not_null() & pl.col("_metric").is_not_nan())
    rows = []
    for key, g in _groups(df, keys):
        extra = ["_k", "_n"] if matched else []
        ref = g.filter(pl.col(against) == reference).select("subject", pl.col("_metric").alias("_ref"),
                                                            *(pl.col(c).alias(c + "_ref") for c in extra))
        if ref.height == 0:
            continue
        levels = sorted(v for v in g[against].unique().to_list() if v != reference and v is not None)
        for level in levels:
            other = g.filter(pl.col(against) == level).select("subject", pl.col("_metric").alias("_x"),
                                                              *(pl.col(c).alias(c + "_x") for c in extra))
            pair = ref.join(other, on="subject", how="inner").sort("subject")
            if pair.height == 0:
                continue
            a = pair["_ref"].to_numpy().astype(float)
            b = pair["_x"].to_numpy().astype(float)
            if matched:
                m = np.minimum(pair["_n_ref"].to_numpy(), pair["_n_x"].to_numpy())
                a = scale * _thinned_abs_dev(pair["_k_ref"].to_numpy(), pair["_n_ref"].to_numpy(), m)
                b = scale * _thinned_abs_dev(pair["_k_x"].to_numpy(), pair["_n_x"].to_numpy(), m)
            d = b - a
            rng = _rng(seed, (*key, against, reference, level, metric))
            boot = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
            lo, hi = _percentile_bounds(boot, confidence)
            rows.append(
                {
                    **dict(zip(keys, key, strict=True)),
                    against: level,
                    "reference": reference,
                    "metric": metric,
                    "metric_column": metric_column,
                    "n_pairs": len(d),
                    "mean_reference": float(a.mean()),
                    "mean_level": float(b.mean()),
                    "mean_diff": float(d.mean()),
                    "diff_low": float(lo),
                    "diff_high": float(hi),
                    "p_value": _sign_flip_p(d, n_perm, rng),
                }
            )
    schema = {c: per_prompt_df.schema[c] for c in (*keys, against)}
    schema |= {"reference": pl.String, "metric": pl.String, "metric_column": pl.String, "n_pairs": pl.Int64}
    schema |= {c: pl.Float64 for c in ("mean_reference", "mean_level", "mean_diff", "diff_low",
                                       "diff_high", "p_value")}
    out = _frame(rows, schema)
    return out.with_columns(pl.Series("p_holm", holm(out["p_value"].to_numpy()), pl.Float64))


# --------------------------------------------------------------------------------------------
# MAGBIG's expected maximum unfairness


def expected_max_unfairness(
    per_prompt_df: pl.DataFrame,
    by: Sequence[str] = GROUP_KEYS,
    n_subjects: int = 10,
    n_images: int = 10,
    n_samples: int = 1000,
    seed: int = 0,
) -> pl.DataFrame:
    """MAGBIG's expected maximum unfairness: the worst L1 deviation a user meets, on average.

    A simulated user picks ``n_subjects`` distinct subjects (occupations) at random and
    generates ``n_images`` images for each; for subject j the female count is
    k_j ~ Binomial(n_images, p̂_j) and its deviation l1_j = |k_j/n_images − 0.5| +
    |(n_images − k_j)/n_images − 0.5| = 2|k_j/n_images − 0.5|. The measure is

        E(max) = E[ max_{j in sampled subjects} l1_j ],

    estimated over ``n_samples`` simulated users, with its standard deviation across them
    (``exp_max_l1_std``) and the Monte Carlo standard error of the estimate
    (``exp_max_l1_mcse`` = std / sqrt(n_samples)); ``n_subjects_drawn`` says how many subjects
    each simulated user drew (all of them when a group has fewer than ``n_subjects``).
    Defaults (10 subjects, 10 images, 1000 samples) follow MAGBIG's evaluation script
    (github.com/felifri/MAGBIG, generate_evaluate/exp_max_unfairness.py with
    utils_debias.sample_from / score_fairness), which builds on Friedrich et al., "Fair
    Diffusion" / "Auditing and Instructing Text-to-Image Generation Models on Fairness".
    With fewer than ``n_subjects`` subjects in a group, all of them are drawn.
    """
    keys = _present(per_prompt_df, by)
    _require_unique_subjects(per_prompt_df, keys, "expected_max_unfairness")
    rows = []
    for key, g in _groups(per_prompt_df, keys):
        g = g.filter(pl.col("n_labelled") > 0)
        p = (g["n_female"].to_numpy() / g["n_labelled"].to_numpy()).astype(float)
        s = len(p)
        take = min(n_subjects, s)
        row = {**dict(zip(keys, key, strict=True)), "n_subjects": s, "n_subjects_drawn": take,
               "n_images_drawn": n_images}
        if s == 0:
            row.update(exp_max_l1=math.nan, exp_max_l1_std=math.nan, exp_max_l1_mcse=math.nan)
        else:
            rng = _group_rng(seed, keys, key)
            # Draw `take` distinct subjects per simulated user: first columns of a random order.
            picks = np.argsort(rng.random((n_samples, s)), axis=1)[:, :take]
            k = rng.binomial(n_images, p[picks])
            worst = np.abs(2.0 * k / n_images - 1.0).max(axis=1)
            row.update(exp_max_l1=float(worst.mean()), exp_max_l1_std=float(worst.std()),
                       exp_max_l1_mcse=float(worst.std(ddof=1) / math.sqrt(n_samples)) if n_samples > 1 else math.nan)
        rows.append(row)
    schema = {c: per_prompt_df.schema[c] for c in keys}
    schema |= {"n_subjects": pl.Int64, "n_subjects_drawn": pl.Int64, "n_images_drawn": pl.Int64,
               "exp_max_l1": pl.Float64, "exp_max_l1_std": pl.Float64, "exp_max_l1_mcse": pl.Float64}
    return _frame(rows, schema)


# --------------------------------------------------------------------------------------------
# cross-language consistency


def language_spread(
    per_prompt_df: pl.DataFrame,
    by: Sequence[str] = ("model", "formulation"),
    across: str = "lang",
) -> pl.DataFrame:
    """Per subject (within ``by``): how much p̂_female moves across languages.

    Columns: n_langs, p_min, p_max, lang_min, lang_max, spread = p_max − p_min, and p_std
    (population standard deviation, ddof = 0, over the languages present).
    """
    keys = [*_present(per_prompt_df, by), "subject"]
    df = per_prompt_df.filter(pl.col("p_female").is_not_null())
    out = df.group_by(keys).agg(
        pl.col(across).n_unique().cast(pl.Int64).alias("n_langs"),
        pl.col("p_female").min().alias("p_min"),
        pl.col("p_female").max().alias("p_max"),
        pl.col(across).sort_by("p_female").first().alias(f"{across}_min"),
        pl.col(across).sort_by("p_female").last().alias(f"{across}_max"),
        pl.col("p_female").std(ddof=0).alias("p_std"),
    )
    out = out.with_columns((pl.col("p_max") - pl.col("p_min")).alias("spread"))
    return out.sort(keys, nulls_last=True)


def _spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Spearman's rho as Pearson's r of mid-ranks; p-value from the t approximation."""
    n = len(x)
    if n < 3:
        return math.nan, math.nan
    rx, ry = sps.rankdata(x), sps.rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float(rx @ rx) * float(ry @ ry))
    if denom == 0:
        return math.nan, math.nan  # a constant column has no ranking to correlate
    rho = float(np.clip((rx @ ry) / denom, -1.0, 1.0))
    if abs(rho) == 1.0:
        return rho, 0.0
    t = rho * math.sqrt((n - 2) / (1 - rho * rho))
    return rho, float(2 * sps.t.sf(abs(t), n - 2))


def spearman_between_languages(
    per_prompt_df: pl.DataFrame,
    by: Sequence[str] = ("model", "formulation"),
    across: str = "lang",
) -> pl.DataFrame:
    """Pairwise Spearman correlation of p̂_female across subjects, for every language pair.

    Within each group of ``by``, for languages a < b: n_subjects (shared, with estimates),
    rho (ties get mid-ranks) and a two-sided p_value (t approximation, as scipy's default).
    High rho: languages agree on which occupations are skewed, even if levels differ.
    """
    keys = _present(per_prompt_df, by)
    _require_unique_subjects(per_prompt_df, [*keys, across], "spearman_between_languages")
    df = per_prompt_df.filter(pl.col("p_female").is_not_null())
    rows = []
    for key, g in _groups(df, keys):
        langs = sorted(v for v in g[across].unique().to_list() if v is not None)
        by_lang = {
            lang: g.filter(pl.col(across) == lang).select("subject", "p_female") for lang in langs
        }
        for a, b in combinations(langs, 2):
            pair = by_lang[a].join(by_lang[b], on="subject", suffix="_b").sort("subject")
            rho, p = _spearman(pair["p_female"].to_numpy(), pair["p_female_b"].to_numpy())
            rows.append({**dict(zip(keys, key, strict=True)), f"{across}_a": a, f"{across}_b": b,
                         "n_subjects": pair.height, "rho": rho, "p_value": p})
    schema = {c: per_prompt_df.schema[c] for c in keys}
    schema |= {f"{across}_a": per_prompt_df.schema[across], f"{across}_b": per_prompt_df.schema[across],
               "n_subjects": pl.Int64, "rho": pl.Float64, "p_value": pl.Float64}
    return _frame(rows, schema)


# --------------------------------------------------------------------------------------------
# classifier agreement


def cohen_kappa(labels_a: Sequence, labels_b: Sequence) -> float:
    """Cohen's κ between two raters' labels of the same items (None / nan pairs dropped).

    κ = (p_o − p_e) / (1 − p_e), with p_o the observed agreement and p_e = Σ_c a_c b_c the
    agreement expected from each rater's marginal shares. nan when p_e = 1 (one shared class).
    Labels go through the same vocabulary as everywhere else: "woman"/"man" (any case) are
    "female"/"male", so two spellings of one label never count as a disagreement.
    """

    def canonical(v):
        if isinstance(v, str):
            return _LABEL_ALIASES.get(v.strip().lower(), v.strip().lower())
        return v

    a = [canonical(v) for v in labels_a]
    b = [canonical(v) for v in labels_b]
    if len(a) != len(b):
        raise ValueError(f"label sequences differ in length ({len(a)} vs {len(b)})")

    def missing(v) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v))

    pairs = [(x, y) for x, y in zip(a, b, strict=True) if not missing(x) and not missing(y)]
    if not pairs:
        return math.nan
    cats = sorted({x for x, _ in pairs} | {y for _, y in pairs}, key=str)
    index = {c: i for i, c in enumerate(cats)}
    table = np.zeros((len(cats), len(cats)))
    for x, y in pairs:
        table[index[x], index[y]] += 1
    table /= table.sum()
    p_o = float(np.trace(table))
    p_e = float(table.sum(axis=1) @ table.sum(axis=0))
    if p_e >= 1.0:
        return math.nan
    return (p_o - p_e) / (1.0 - p_e)


# --------------------------------------------------------------------------------------------
# files

_FAIRFACE_COUNTS = re.compile(
    r"^man:\s*(\d+)\s*,\s*woman:\s*(\d+)\s*,\s*except:\s*(\d+)\s*$", re.IGNORECASE
)


def parse_fairface_counts(path: str | Path) -> pl.DataFrame:
    """Read a Fair-Diffusion FairFace result file into subject, n_male, n_female, n_except.

    Format: an ``<occupation>`` line, then ``man: M, woman: W, except: E``; blank lines and
    surrounding whitespace are ignored.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read FairFace counts file {path}: {exc.strerror}") from exc
    lines = [(i, ln.strip()) for i, ln in enumerate(text.splitlines(), start=1) if ln.strip()]
    if len(lines) % 2:
        raise InputError(
            f"{path}: odd number of non-empty lines; expected pairs of an occupation line and "
            "a 'man: M, woman: W, except: E' line"
        )
    rows = []
    for (_, name), (lineno, counts) in zip(lines[::2], lines[1::2], strict=True):
        m = _FAIRFACE_COUNTS.match(counts)
        if not m:
            raise InputError(
                f"{path}:{lineno}: expected 'man: M, woman: W, except: E', got {counts!r}"
            )
        rows.append((name, int(m[1]), int(m[2]), int(m[3])))
    return pl.DataFrame(
        rows,
        schema={"subject": pl.String, "n_male": pl.Int64, "n_female": pl.Int64,
                "n_except": pl.Int64},
        orient="row",
    )


_REQUIRED = ("subject", "lang", "formulation")
_COLUMNS_HINT = "columns needed: subject, lang, formulation, and label or n_female + n_male"


def read_table(path: str | Path, what: str, required: Sequence[str], hint: str = "") -> pl.DataFrame:
    """A .csv or .parquet table with the ``required`` columns, keys read as strings; InputError
    naming the problem and the fix otherwise (``what`` names the table in messages)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path} not found; pass an existing .csv or .parquet file")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise InputError(f"{what} {path} has suffix {path.suffix!r}; use a .csv or .parquet file")
    try:
        df = pl.read_csv(path, infer_schema_length=None) if suffix == ".csv" else pl.read_parquet(path)
    except Exception as exc:  # polars raises several error types for unreadable files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read {what} {path}: {first}") from exc
    for col in required:
        if col not in df.columns:
            raise InputError(f"{what} {path} lacks column {col!r}; add it" + (f" ({hint})" if hint else ""))
    # Keys are names, even when a csv makes them look numeric.
    return df.with_columns(pl.col(c).cast(pl.String) for c in (*_REQUIRED, "model") if c in df.columns)


def read_labels_table(path: str | Path) -> pl.DataFrame:
    """Read a labels table (csv or parquet) and check it has what ``magbig stats`` needs.

    Required: subject, lang, formulation, and either ``label`` (one row per image) or
    ``n_female`` and ``n_male`` (counts). Raises InputError naming the problem and the fix.
    """
    df = read_table(path, "labels table", _REQUIRED, _COLUMNS_HINT)
    if "label" not in df.columns:
        missing = [c for c in ("n_female", "n_male") if c not in df.columns]
        if missing:
            raise InputError(
                f"labels table {path} has neither 'label' nor {' and '.join(map(repr, missing))}; "
                f"add a label column or count columns ({_COLUMNS_HINT})"
            )
    return df


def summarize_labels_table(df: pl.DataFrame, n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """What ``magbig stats LABELS`` prints: one JSON-ready dict per (model,) lang, formulation.

    Each carries n_subjects, n_labelled, mean_p_female, mean_abs_dev (bias-corrected),
    mean_l1 with their ``_low`` / ``_high`` 95% bounds, the raw means, mean_noise_floor,
    interval_note, the face-filter totals (n_images = every image) and MAGBIG's exp_max_l1
    (10 subjects × 10 images) with its Monte Carlo error and the subjects drawn. nan becomes
    None.
    """
    pp = per_prompt(df)
    agg = aggregate(pp, n_boot=n_boot, seed=seed)
    keys = [c for c in GROUP_KEYS if c in agg.columns]
    emu = expected_max_unfairness(pp, seed=seed).select(
        *keys, "exp_max_l1", "exp_max_l1_mcse", pl.col("n_subjects_drawn").alias("exp_max_n_subjects_drawn"),
        pl.col("n_images_drawn").alias("exp_max_n_images_drawn"))
    merged = agg.join(emu, on=keys, how="left", nulls_equal=True, maintain_order="left")
    out = []
    for row in merged.to_dicts():
        out.append(
            {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for k, v in row.items()}
        )
    return out
