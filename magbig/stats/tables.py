"""Label tables to per-prompt counts (`per_prompt`), and reading label/count files.

See magbig.stats for the scales and the choice of intervals."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from magbig.stats._common import (
    GROUP_KEYS, PROMPT_KEYS, STATUSES, _LABEL_ALIASES, _STATUS_COUNTS, _present,
)
from magbig.stats.shares import abs_dev_estimator, noise_floor, wilson_interval
from neobabel.errors import InputError


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


def _with_normalised_status(df: pl.DataFrame) -> pl.DataFrame:
    """``_status``: the status column trimmed and lower-cased; an unknown status is an InputError."""
    status = pl.col("status").cast(pl.String).str.strip_chars().str.to_lowercase()
    df = df.with_columns(status.alias("_status"))
    bad = df.filter(pl.col("_status").is_null() | ~pl.col("_status").is_in(STATUSES))
    if bad.height:
        raise InputError(f"unknown status {bad['status'][0]!r}; use one of {', '.join(STATUSES)}")
    return df


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
        df = _with_normalised_status(df)
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
        df = _with_normalised_status(df)
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
