"""What `magbig stats LABELS` prints.

See magbig.stats for the scales and the choice of intervals."""

from __future__ import annotations

import math

import polars as pl

from magbig.stats._common import GROUP_KEYS
from magbig.stats.aggregates import aggregate
from magbig.stats.comparisons import expected_max_unfairness
from magbig.stats.tables import per_prompt


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
