"""Plain-text formatting shared by the HTML and Markdown renderings, and JSON cleaning.

Nothing here knows about markup: every function returns text (or plain JSON values) that
a rendering then escapes in its own way (Jinja2 autoescaping for HTML, ``md_cell`` for
Markdown). The paired-test columns live here because both renderings show the same table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import polars as pl

from neobabel.formulations import FORMULATIONS as FORMULATION_ORDER
from neobabel.languages import LANGUAGE_CODES

MISSING = "–"  # shown for a number that is null, nan or infinite
PROMPT_SAMPLES = 3  # prompt strings kept and shown per (lang, formulation)

# The words summary.json and both renderings use for the scales and the intervals.
INTERVALS_NOTE = (
    "Per prompt: Wilson score 95% interval for p̂_female at that prompt's labelled images. "
    "Aggregates (means over occupations): 95% percentile interval of a two-stage cluster "
    "bootstrap (resample occupations with replacement, then each drawn occupation's images "
    "as Binomial(n, p̂)). Paired tests: paired-bootstrap 95% interval of the mean difference "
    "and a two-sided sign-flip permutation p-value, Holm-adjusted within each family "
    "(all languages vs English; all formulations vs direct)."
)
SCALES_NOTE = (
    "p̂_female = share of single-face ('ok') images labelled female; "
    "abs_dev = |p̂ − 0.5| (distance from parity, 0 to 0.5); "
    "l1 = 2|p̂ − 0.5| (MAGBIG's L1 deviation, 0 to 1; always 2 × abs_dev); "
    "means of abs_dev and l1 over occupations are bias-corrected (about 0 for a fair model)."
)


# --------------------------------------------------------------------------------------------
# numbers


def finite(x) -> float | None:
    """``x`` as a float, or None when it is missing, not a number, nan or infinite."""
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def fixed(x, digits: int = 3) -> str:
    """``0.123`` style, or the missing mark."""
    v = finite(x)
    return MISSING if v is None else f"{v:.{digits}f}"


def interval(estimate, low, high, digits: int = 3) -> str:
    """``estimate [low, high]``; the missing mark when there is no estimate."""
    if finite(estimate) is None:
        return MISSING
    return f"{fixed(estimate, digits)} [{fixed(low, digits)}, {fixed(high, digits)}]"


def p_value(x) -> str:
    """Three decimals, or ``< 0.001`` (more digits would claim a precision permutations lack)."""
    v = finite(x)
    if v is None:
        return MISSING
    return "< 0.001" if v < 0.001 else f"{v:.3f}"


# --------------------------------------------------------------------------------------------
# JSON


def jsonable(value):
    """Plain JSON types; nan/inf become None; anything unknown becomes its str()."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return finite(value)
    if value is None or isinstance(value, str):
        return value
    return str(value)


def records(df: pl.DataFrame | None) -> list[dict]:
    """A frame's rows as JSON-clean dicts ([] for no frame)."""
    return [] if df is None else jsonable(df.to_dicts())


# --------------------------------------------------------------------------------------------
# the order readers scan in: English first, direct first, the rest alphabetical


def order(values: Iterable, preferred: Sequence[str]) -> list:
    """Distinct non-null ``values``: those in ``preferred`` in its order, then the rest sorted."""
    present = [v for v in dict.fromkeys(values) if v is not None]
    first = [p for p in preferred if p in present]
    return first + sorted((v for v in present if v not in preferred), key=str)


def lang_order(values: Iterable) -> list:
    return order(values, LANGUAGE_CODES)


def form_order(values: Iterable) -> list:
    return order(values, FORMULATION_ORDER)


# --------------------------------------------------------------------------------------------
# the paired-difference table (languages vs English, formulations vs direct)


def paired_test_headers(against: str, other: str) -> list[str]:
    """Columns of a paired-test table comparing levels of ``against`` within ``other``."""
    return ["model", other, against, "reference", "n pairs", "mean abs_dev (reference)",
            f"mean abs_dev ({against})", "difference [95% CI]", "p (sign-flip)", "p (Holm)"]


def paired_test_rows(tests: pl.DataFrame, against: str, other: str) -> Iterator[list[str]]:
    """One formatted row per paired test of :func:`magbig.stats.paired_tests`."""
    for row in tests.iter_rows(named=True):
        yield [
            row.get("model", ""), row.get(other, ""), row[against], row["reference"],
            str(row["n_pairs"]), fixed(row["mean_reference"]), fixed(row["mean_level"]),
            interval(row["mean_diff"], row["diff_low"], row["diff_high"]),
            p_value(row["p_value"]), p_value(row["p_holm"]),
        ]
