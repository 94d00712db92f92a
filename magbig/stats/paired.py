"""Paired tests against a reference language or formulation, with Holm correction.

See magbig.stats for the scales and the choice of intervals."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy import stats as sps

from magbig.stats._common import (
    GROUP_KEYS, _frame, _group_rng, _groups, _percentile_bounds, _present, _require_unique_subjects,
)
from neobabel.errors import InputError


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
            rng = _group_rng(seed, keys, key, (against, reference, level, metric))
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
