"""`magbig merge OUT SHARD...`: join the run directories of `magbig audit --shard I/N` jobs.

Images, manifest and run.json are merged by :func:`neobabel.shards.merge_runs` (same spec
required, PNGs checked against their sha256). The audit's own tables follow: units and
rejections are united (a slot lives in exactly one shard), labels are united per (key,
classifier) (an image two shards share has the same pixels, so the same label), and run.json
gets the audit's fields with ``audit_result`` recounted from the merged tables, so the merged
directory is the run one process would have made: ``magbig report OUT`` reads it as any audit.
Merging again changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from magbig.audit import audit_result
from magbig.auditspec import AuditSpec
from magbig.rundata import (
    REJECTIONS_COLUMNS, REJECTIONS_FILE, UNITS_COLUMNS, UNITS_FILE, LabelStore, open_run,
)
from neobabel.errors import InputError
from neobabel.runs import atomic_write_parquet, locked
from neobabel.shards import merge_runs

_AUDIT_FIELDS = ("audit", "prompt_set", "images_per_prompt", "base_seed", "classifiers")


def _read(path: Path, schema: dict) -> pl.DataFrame:
    return pl.read_parquet(path) if path.is_file() else pl.DataFrame(schema=schema)


def _write_if_changed(df: pl.DataFrame, path: Path) -> None:
    if path.is_file() and pl.read_parquet(path).equals(df):
        return  # merging again rewrites nothing
    atomic_write_parquet(df, path)


def merge_audits(out: str | Path, shard_dirs: Sequence[str | Path]) -> dict:
    """Merge complete audit shards into ``out`` (idempotent); returns counts."""
    runs = [open_run(p) for p in shard_dirs]
    infos = [r.read_run_json() for r in runs]
    for path, info in zip(shard_dirs, infos):
        if "audit" not in info:
            raise InputError(f"{path} is not a `magbig audit` run; merge generate shards with `neobabel merge`")
        if info.get("audit_status") != "complete":
            raise InputError(f"audit shard {path} is {info.get('audit_status', 'unfinished')}; rerun its "
                             "command to finish it, then merge")
    # Refuses mixed specs and an incomplete shard set before anything is written. The audit's
    # own run.json fields are written last, after its tables: a merge killed in between leaves
    # a run without audit_status, never one that claims a complete audit.
    counts = merge_runs(out, shard_dirs, drop_fields=_AUDIT_FIELDS + ("audit_status", "audit_result"))
    run = open_run(out)
    units = pl.concat([_read(r.path / UNITS_FILE, UNITS_COLUMNS) for r in runs], how="vertical_relaxed")
    dup = units.group_by("prompt_id", "slot", "attempt").len().filter(pl.col("len") > 1)
    if dup.height:
        raise InputError(f"shards overlap: slot {dup.row(0)[:2]} is in two of them; give each shard index once")
    units = units.sort("attempt", "prompt_id", "slot")
    rejections = pl.concat([_read(r.path / REJECTIONS_FILE, REJECTIONS_COLUMNS) for r in runs],
                           how="vertical_relaxed").sort("attempt", "prompt_id", "slot")
    labels = pl.concat([LabelStore(r.path).frame() for r in runs], how="diagonal_relaxed")
    labels = labels.unique(subset=["key", "classifier"], keep="first").sort("classifier", "key")
    with locked(run):
        _write_if_changed(units, run.path / UNITS_FILE)
        _write_if_changed(rejections, run.path / REJECTIONS_FILE)
        store = LabelStore(run.path)
        store.merge()
        _write_if_changed(labels, store.path)
        info = run.read_run_json()
        spec = AuditSpec.model_validate(infos[0]["audit"])
        info.update({k: infos[0][k] for k in _AUDIT_FIELDS if k in infos[0]})
        info.update(command="magbig merge", audit_status="complete",
                    audit_result=audit_result(spec, int(infos[0].get("audit_result", {}).get("prompts", 0)),
                                              units.to_dicts(), rejections.to_dicts()))
        run.write_run_json(info)
    return {**counts, "units": units.height, "labels": labels.height, "rejections": rejections.height}
