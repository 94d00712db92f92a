"""An audit's run-directory tables, read: the run itself and its units (which images count).

Shared by the audit, the alignment scores and the report, so none of them reaches into
another's private helpers. Labels stay with their writer (:class:`magbig.audit.LabelStore`).
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from neobabel.errors import InputError
from neobabel.runs import RunDir

UNITS_FILE = "units.parquet"


def open_run(run_dir: str | os.PathLike) -> RunDir:
    """The run directory of an audit or a `neobabel generate` run, or InputError saying what
    to pass instead."""
    path = Path(run_dir)
    if not path.is_dir():
        raise InputError(f"run directory {path} not found; pass the --out folder of `magbig audit`")
    run = RunDir(path)
    if not run.manifest_path.is_file():
        raise InputError(f"{path} is not a run directory (no generations.parquet); pass the --out folder "
                         "of `magbig audit` or `neobabel generate`")
    return run


def read_units(run: RunDir) -> pl.DataFrame:
    """units.parquet: one row per (prompt, slot, attempt); ``in_audit`` marks the images the
    statistics use."""
    path = run.path / UNITS_FILE
    if path.is_file():
        return pl.read_parquet(path)
    # A run made by `neobabel generate`: every image is in the audit.
    m = run.load_manifest()
    return m.select(
        "prompt_id",
        pl.coalesce(pl.col("subject"), pl.col("prompt_id")).alias("subject"), "lang",
        pl.coalesce(pl.col("formulation"), pl.lit("unspecified")).alias("formulation"), "text",
        pl.lit(None, pl.Int64).alias("slot"), pl.lit(0, pl.Int64).alias("attempt"), "seed", "key",
        pl.lit(True).alias("in_audit"),
    )
