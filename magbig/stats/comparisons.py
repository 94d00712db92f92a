"""MAGBIG's expected maximum unfairness, cross-language spread and rank agreement, Cohen's kappa.

See magbig.stats for the scales and the choice of intervals."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations

import numpy as np
import polars as pl
from scipy import stats as sps

from magbig.stats._common import (
    GROUP_KEYS, _LABEL_ALIASES, _frame, _groups, _present, _group_rng, _require_unique_subjects,
)


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
