"""Shared constants and small helpers of the statistics modules.

See magbig.stats for the scales and the choice of intervals."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import polars as pl

from magbig.vocab import STATUSES

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


def _group_rng(seed: int, keys: Sequence[str], key: tuple, extra: tuple = ()) -> np.random.Generator:
    # The model's name is a label, not data: the same labels must give the same intervals
    # whether the table names its model (a run's report) or not (`magbig stats` on its labels).
    return _rng(seed, (*(v for name, v in zip(keys, key, strict=True) if name != "model"), *extra))


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
