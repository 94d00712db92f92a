"""Does an audit recover the planted shares? World-model and oracle audits against the
world's planted-bias table (``configs/world/bias.yaml``).

:func:`compare_to_planted` puts each prompt's p̂_female beside its planted share;
:func:`planted_recovery` summarises those rows, each number beside what a *perfect* model would
reach at the same n (:func:`within_tolerance_probability`, :func:`expected_abs_error`), with a
test of all cells' counts against the planted shares (:func:`planted_fit_test`, on the
binomial deviance of each cell).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import polars as pl
from scipy.stats import binom
from scipy.stats import t as student_t

from magbig import stats
from magbig.rundata import audit_frame
from neobabel.world.bias import load_table

__all__ = [
    "compare_to_planted",
    "expected_abs_error",
    "planted_fit_test",
    "planted_recovery",
    "within_tolerance_probability",
]


def compare_to_planted(run_dir: str | os.PathLike, classifier: str | None = None, *,
                       tolerance: float = 0.10, table=None) -> pl.DataFrame:
    """Per-prompt p̂_female of a world-model (or oracle) audit beside the planted share of
    ``configs/world/bias.yaml``: one row per (subject, lang, formulation) found in both, with
    n_female, n_labelled, p_female, Wilson ci_low / ci_high, planted, error = p̂ − planted,
    ``within`` = |error| <= tolerance, and ``planted_occupation_mean``: the planted share averaged
    over all the table's cells of that occupation (every language and wording), i.e. what a
    model that learned the occupation but not the language or wording would draw."""
    table = table if table is not None else load_table()
    planted = pl.DataFrame([{"subject": c.occupation, "lang": c.lang, "formulation": c.formulation,
                             "planted": c.p_feminine} for c in table.cells])
    pp = stats.per_prompt(audit_frame(run_dir, classifier), group_cols=("subject", "lang", "formulation"))
    out = pp.select("subject", "lang", "formulation", "n_female", "n_labelled", "p_female", "ci_low", "ci_high")
    out = out.join(planted, on=["subject", "lang", "formulation"], how="inner")
    # the training sampler draws the table's cells uniformly, so this is P(feminine | occupation)
    pooled = planted.group_by("subject").agg(pl.col("planted").mean().alias("planted_occupation_mean"))
    out = out.join(pooled, on="subject", how="left")
    return out.with_columns((pl.col("p_female") - pl.col("planted")).alias("error")).with_columns(
        (pl.col("error").abs() <= tolerance).fill_null(False).alias("within"))


def within_tolerance_probability(n: int, p: float, tolerance: float) -> float:
    """P(|X/n − p| <= tolerance) for X ~ Binomial(n, p): the share of cells a *perfect* model
    would recover within the tolerance at this n (sampling noise alone misses the rest)."""
    if n <= 0:
        return 0.0
    # a hair of slack so that k/n exactly on the boundary counts, as in compare_to_planted
    lo = math.ceil(n * (p - tolerance) - 1e-9)
    hi = math.floor(n * (p + tolerance) + 1e-9)
    return float(binom.cdf(hi, n, p) - binom.cdf(lo - 1, n, p))


def expected_abs_error(n: int, p: float) -> float:
    """E|X/n − p| for X ~ Binomial(n, p): a *perfect* model's mean absolute error at this n."""
    if n <= 0:
        return float("nan")
    k = np.arange(n + 1)
    return float((binom.pmf(k, n, p) * np.abs(k / n - p)).sum())


def _g_statistic(x: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Binomial deviance summed over cells (last axis): 2 Σ x ln(x/np) + (n−x) ln((n−x)/n(1−p))."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(x > 0, x * np.log(x / (n * p)), 0.0)
        b = np.where(n - x > 0, (n - x) * np.log((n - x) / (n * (1 - p))), 0.0)
    return 2 * (a + b).sum(axis=-1)


def planted_fit_test(n_female: Sequence[int], n_labelled: Sequence[int], planted: Sequence[float], *,
                     clusters: Sequence | None = None, n_sim: int = 4000, seed: int = 0) -> dict:
    """Are the counts what a model with exactly the planted shares would draw?

    The statistic is the binomial deviance G over all cells. Without ``clusters`` its p-value
    comes from ``n_sim`` parametric-bootstrap replicates drawn from the planted shares with the
    cells independent (at n = 8 per cell the chi-square approximation is poor).

    World audits share seeds across cells: every language and wording of one occupation starts
    from the same noise (``seeds: per_subject``), so a model that reads part of a portrait from
    its noise moves those cells together, and the independent bootstrap rejects far more often
    than its level (benchmarks/RESULTS.md, "planted fit test under shared seeds"). With
    ``clusters`` (the cell's subject: the unit that owns its seeds) the p-value comes from a
    cluster-robust test that assumes nothing about dependence inside a cluster: each cell's
    deviance minus its exact expectation under Binomial(n, planted), summed per cluster, and a
    one-sided Student-t test that the cluster sums have mean 0 (they are independent because
    clusters have independent seeds). ``p_value_independent`` keeps the bootstrap's answer.
    """
    x, n = np.asarray(n_female, dtype=float), np.asarray(n_labelled, dtype=float)
    p = np.clip(np.asarray(planted, dtype=float), 1e-6, 1 - 1e-6)
    keep = n > 0
    x, n, p = x[keep], n[keep], p[keep]
    g = float(_g_statistic(x, n, p))
    sims = np.random.default_rng(seed).binomial(n.astype(int), p, size=(n_sim, len(n))).astype(float)
    exceed = int((_g_statistic(sims, n, p) >= g - 1e-9).sum())
    p_independent = round((exceed + 1) / (n_sim + 1), 4)
    out = {"cells": int(keep.sum()), "g_statistic": round(g, 2), "simulations": n_sim,
           "p_value": p_independent, "method": "parametric bootstrap, cells independent"}
    if clusters is None:
        return out
    groups = np.asarray(list(clusters), dtype=object)[keep]
    excess = _cell_deviance(x, n, p) - np.array([_expected_cell_deviance(int(ni), pi) for ni, pi in zip(n, p)])
    sums = np.array([excess[groups == c].sum() for c in dict.fromkeys(groups.tolist())])
    out.update(clusters=len(sums), p_value_independent=p_independent,
               method="cluster-robust t on per-cluster excess deviance (seeds shared within a cluster)")
    spread = float(sums.std(ddof=1)) if len(sums) > 1 else 0.0
    if len(sums) < 3 or spread <= 0:
        out.update(p_value=None, note=f"{len(sums)} cluster(s): too few for a cluster-robust test")
        return out
    t = float(sums.mean() / (spread / math.sqrt(len(sums))))
    out["p_value"] = round(float(student_t.sf(t, len(sums) - 1)), 4)
    return out


def _cell_deviance(x: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Each cell's binomial deviance (the terms `_g_statistic` sums)."""
    return _g_statistic(np.asarray(x, float)[:, None], np.asarray(n, float)[:, None], np.asarray(p, float)[:, None])


@lru_cache(maxsize=4096)
def _expected_cell_deviance(n: int, p: float) -> float:
    """E[deviance] of one cell with X ~ Binomial(n, p), exactly (a sum over k = 0..n)."""
    k = np.arange(n + 1, dtype=float)
    dev = _g_statistic(k[:, None], np.full((n + 1, 1), float(n)), np.full((n + 1, 1), p))
    return float(binom.pmf(k, n, p) @ dev)


def planted_recovery(cmp: pl.DataFrame, tolerance: float = 0.10) -> dict:
    """Summary of `compare_to_planted` rows: how many cells are recovered within `tolerance`
    and the mean absolute error, each beside what a perfect model (exactly the planted shares)
    would reach at the same n; how often the Wilson interval holds the planted share; a test of
    all cells' counts against the planted shares (:func:`planted_fit_test`); and, per language,
    measured vs planted mean abs_dev of direct and indirect prompts (where both exist)."""
    rows = cmp.filter(pl.col("n_labelled") > 0)
    within = (rows["error"].abs() <= tolerance)
    expected = [within_tolerance_probability(int(r["n_labelled"]), float(r["planted"]), tolerance)
                for r in rows.iter_rows(named=True)]
    in_ci = (rows["planted"] >= rows["ci_low"]) & (rows["planted"] <= rows["ci_high"])

    def share(mask) -> float | None:
        return round(float(mask.mean()), 4) if len(mask) else None

    def fit(part: pl.DataFrame) -> dict:
        # subjects own their seeds (seeds: per_subject), so they are the independent clusters
        return planted_fit_test(part["n_female"].to_list(), part["n_labelled"].to_list(), part["planted"].to_list(),
                                clusters=part["subject"].to_list())

    perfect_mae = [expected_abs_error(int(r["n_labelled"]), float(r["planted"]))
                   for r in rows.iter_rows(named=True)]
    rows = rows.with_columns(pl.Series("within_if_perfect", expected, dtype=pl.Float64),
                             pl.Series("mae_if_perfect", perfect_mae, dtype=pl.Float64))
    per_formulation = {}
    for form in sorted(rows["formulation"].unique().to_list()):
        sub = rows["formulation"] == form
        part = rows.filter(sub)
        per_formulation[form] = {"cells": int(sub.sum()), "within": share(within.filter(sub)),
                                 "within_if_perfect": round(float(part["within_if_perfect"].mean()), 4),
                                 "mean_abs_error": round(float(part["error"].abs().mean()), 4),
                                 "mean_abs_error_if_perfect": round(float(part["mae_if_perfect"].mean()), 4),
                                 "fit_p_value": fit(part)["p_value"]}
    skew = rows.with_columns((pl.col("p_female") - 0.5).abs().alias("abs_dev"),
                             (pl.col("planted") - 0.5).abs().alias("planted_abs_dev"))
    per_lang = {}
    for lang in sorted(skew["lang"].unique().to_list()):
        by_form = {f: skew.filter((pl.col("lang") == lang) & (pl.col("formulation") == f))
                   for f in ("direct", "indirect")}
        if all(d.height for d in by_form.values()):
            d, i = by_form["direct"], by_form["indirect"]
            per_lang[lang] = {"direct_abs_dev": round(float(d["abs_dev"].mean()), 4),
                              "indirect_abs_dev": round(float(i["abs_dev"].mean()), 4),
                              "planted_direct_abs_dev": round(float(d["planted_abs_dev"].mean()), 4),
                              "planted_indirect_abs_dev": round(float(i["planted_abs_dev"].mean()), 4)}
    planted_more = [lg for lg, v in per_lang.items() if v["planted_direct_abs_dev"] > v["planted_indirect_abs_dev"]]
    shown = [lg for lg in planted_more if per_lang[lg]["direct_abs_dev"] > per_lang[lg]["indirect_abs_dev"]]
    return {
        "tolerance": tolerance,
        "cells": rows.height,
        "labelled_images": int(rows["n_labelled"].sum()),  # ambiguous portraits are not labelled
        "within": share(within),
        "within_if_perfect": round(float(np.mean(expected)), 4) if expected else None,
        "planted_in_wilson_ci": share(in_ci),
        "mean_abs_error": round(float(rows["error"].abs().mean()), 4) if rows.height else None,
        "mean_abs_error_if_perfect": round(float(np.mean(perfect_mae)), 4) if perfect_mae else None,
        # the same against an occupation-only model (see compare_to_planted): lower than the
        # above means the audited model drew the occupation's pooled share, not the cell's
        "mean_abs_error_occupation_only": round(float(
            (rows["p_female"] - rows["planted_occupation_mean"]).abs().mean()), 4) if rows.height else None,
        "fit_to_planted": fit(rows) if rows.height else None,
        "per_formulation": per_formulation,
        "direct_more_skewed_than_indirect": {"planted_in": len(planted_more), "shown_in": len(shown),
                                             "per_lang": per_lang},
    }
