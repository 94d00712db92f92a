"""An audit's run-directory tables: one schema each, one key column (``key``) in all.

- ``units.parquet`` (:data:`UNITS_COLUMNS`): one row per (prompt, slot, attempt); ``in_audit``
  marks the images the statistics use. Runs made by ``neobabel generate`` have none: every
  image of their manifest is in the audit (:func:`read_units`).
- ``labels.parquet`` (:data:`LABELS_COLUMNS`): one row per (key, classifier), written through
  :class:`LabelStore` (crash-safe appends). Tables written before the column was named
  ``key`` (it was ``image``) are renamed on read (:func:`with_key_column`).
- ``rejections.parquet`` (:data:`REJECTIONS_COLUMNS`): one row per failed try of rejection
  sampling.

Shared by the audit, the alignment scores, the planted-share checks and the report, so none of
them reaches into another's private helpers. :func:`audit_frame` is what the statistics read:
the images in the audit joined with one classifier's labels.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from neobabel.errors import InputError
from neobabel.runs import RunDir, atomic_write_parquet

__all__ = [
    "LABELS_COLUMNS",
    "REJECTIONS_COLUMNS",
    "UNITS_COLUMNS",
    "LabelStore",
    "audit_frame",
    "classifier_column_name",
    "classifier_names",
    "config_id",
    "labels_frame",
    "open_run",
    "read_units",
    "with_key_column",
    "write_rejections",
    "write_units",
]

UNITS_FILE = "units.parquet"
LABELS_FILE = "labels.parquet"
REJECTIONS_FILE = "rejections.parquet"

#: labels.parquet: one row per (key, classifier); ``key`` is the image's content key.
LABELS_COLUMNS: dict[str, pl.DataType] = {
    "key": pl.String, "prompt_id": pl.String, "subject": pl.String, "lang": pl.String,
    "formulation": pl.String, "seed": pl.Int64, "classifier": pl.String, "config_id": pl.String,
    "faces": pl.Int64, "status": pl.String, "p_female": pl.Float64, "label": pl.String,
    "detail": pl.String,
}
#: units.parquet: one row per (prompt, slot, attempt).
UNITS_COLUMNS: dict[str, pl.DataType] = {
    "prompt_id": pl.String, "subject": pl.String, "lang": pl.String, "formulation": pl.String,
    "text": pl.String, "slot": pl.Int64, "attempt": pl.Int64, "seed": pl.Int64, "key": pl.String,
    "in_audit": pl.Boolean,
}
#: rejections.parquet: one row per failed try of rejection sampling.
REJECTIONS_COLUMNS: dict[str, pl.DataType] = {
    "prompt_id": pl.String, "subject": pl.String, "lang": pl.String, "formulation": pl.String,
    "slot": pl.Int64, "attempt": pl.Int64, "seed": pl.Int64, "key": pl.String,
    "classifier": pl.String, "faces": pl.Int64, "status": pl.String, "cap_reached": pl.Boolean,
}


# --------------------------------------------------------------------------------------------
# the run and its units


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


def write_units(run: RunDir, rows: Sequence[dict]) -> None:
    atomic_write_parquet(pl.DataFrame(rows, schema=UNITS_COLUMNS), run.path / UNITS_FILE)


def write_rejections(run: RunDir, rows: Sequence[dict]) -> None:
    atomic_write_parquet(pl.DataFrame(rows, schema=REJECTIONS_COLUMNS), run.path / REJECTIONS_FILE)


# --------------------------------------------------------------------------------------------
# labels


def with_key_column(df: pl.DataFrame) -> pl.DataFrame:
    """Labels with the image's key in ``key``: tables written before the rename call it ``image``."""
    if "key" not in df.columns and "image" in df.columns:
        return df.rename({"image": "key"})
    return df


def labels_frame(rows: Sequence[dict], results: Sequence, cid: str) -> pl.DataFrame:
    """labels.parquet rows: each manifest row's key and prompt beside its classifier result
    (a :class:`magbig.classify.ClassificationResult`); ``cid`` is the classifier's config_id."""
    return pl.DataFrame([{
        "key": r["key"], "prompt_id": r.get("prompt_id"), "subject": r.get("subject"),
        "lang": r.get("lang"), "formulation": r.get("formulation"), "seed": r.get("seed"),
        "classifier": res.classifier, "config_id": cid, "faces": res.faces,
        "status": res.status, "p_female": res.p_female, "label": res.label,
        "detail": res.detail,
    } for r, res in zip(rows, results)], schema=LABELS_COLUMNS)


def classifier_column_name(c: dict) -> str:
    """The ``classifier`` column value a ClassifierSpec produces (its alias, else the backend)."""
    alias = (c.get("options") or {}).get("alias")
    return str(alias).strip() if alias else str(c.get("name", "")).strip().lower()


def config_id(classifier) -> str:
    """Short hash of a classifier's configuration, minus what does not change its labels."""
    cfg = {k: v for k, v in classifier.config().items() if k not in ("batch_size", "device")}
    blob = json.dumps(cfg, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


class LabelStore:
    """``labels.parquet`` with crash-safe appends.

    Each classifier batch is written at once, atomically, as a small part file under
    ``.labels-parts/``; parts are merged into ``labels.parquet`` (atomically, then deleted)
    every ``merge_every`` parts and whenever a labelling pass ends, however it ends. Reading
    merges ``labels.parquet`` and any leftover parts and keeps, per (key, classifier), the
    newest row. So a kill loses at most the batch in flight, and nothing is ever duplicated.
    """

    def __init__(self, run_path: str | os.PathLike, merge_every: int = 64):
        self.run_path = Path(run_path)
        self.path = self.run_path / LABELS_FILE
        self.parts_dir = self.run_path / ".labels-parts"
        self.merge_every = merge_every
        self._counter = 0
        # No temp cleanup here: readers hold no lock; the writer's run lock cleans dead owners' files.

    def _parts(self) -> list[Path]:
        return sorted(self.parts_dir.glob("*.parquet")) if self.parts_dir.is_dir() else []

    def _read(self, path: Path) -> pl.DataFrame:
        try:
            return with_key_column(pl.read_parquet(path))
        except FileNotFoundError:
            raise  # merged away by the writer meanwhile: frame() reads again
        except Exception as e:
            raise InputError(f"{path} is unreadable ({type(e).__name__}); delete it and rerun to "
                             "re-label the images") from None

    def frame(self) -> pl.DataFrame:
        # A reader holds no lock: if the writer merges parts into labels.parquet while we read,
        # a part vanishes; its rows are then in labels.parquet, so read the whole set again.
        for attempt in range(5):
            try:
                frames = [self._read(self.path)] if self.path.is_file() else []
                frames += [self._read(p) for p in self._parts()]
                break
            except FileNotFoundError:
                if attempt == 4:
                    raise
        frames = [f for f in frames if f.height]
        if not frames:
            return pl.DataFrame(schema=LABELS_COLUMNS)
        df = pl.concat(frames, how="diagonal_relaxed")
        return df.unique(subset=["key", "classifier"], keep="last", maintain_order=True)

    def append(self, df: pl.DataFrame) -> None:
        if df.height == 0:
            return
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        self._counter += 1
        name = f"{time.time_ns():020d}-{os.getpid()}-{self._counter:06d}.parquet"
        atomic_write_parquet(df, self.parts_dir / name)
        if len(self._parts()) >= self.merge_every:
            self.merge()

    def merge(self) -> None:
        parts = self._parts()
        if not parts:
            return
        df = self.frame()
        atomic_write_parquet(df.sort(["classifier", "key"]), self.path)
        for p in parts:
            p.unlink(missing_ok=True)
        try:
            self.parts_dir.rmdir()
        except OSError:
            pass

    def done_keys(self, classifier: str, cid: str | None = None) -> set[str]:
        df = self.frame().filter(pl.col("classifier") == classifier)
        if cid is not None and "config_id" in df.columns:
            df = df.filter(pl.col("config_id") == cid)
        return set(df["key"].to_list())


# --------------------------------------------------------------------------------------------
# what the statistics read


def classifier_names(run_dir: str | os.PathLike) -> list[str]:
    """Classifiers with labels in the run, the audit's first classifier first."""
    run = open_run(run_dir)
    labels = LabelStore(run.path).frame()
    present = labels["classifier"].unique(maintain_order=True).to_list()
    audit = run.read_run_json().get("audit") or {}
    order = [classifier_column_name(c) for c in audit.get("classifiers", [])]
    return [c for c in order if c in present] + [c for c in present if c not in order]


def audit_frame(run_dir: str | os.PathLike, classifier: str | None = None) -> pl.DataFrame:
    """The images in the audit (``units.in_audit``) joined with ONE classifier's labels
    (default: the audit's first). Images not labelled yet are left out."""
    run = open_run(run_dir)
    names = classifier_names(run.path)
    if not names:
        raise InputError(f"run {run.path} has no labels yet; label it with `magbig classify {run.path} "
                         "--classifier NAME`")
    name = classifier or names[0]
    if name not in names:
        raise InputError(f"run {run.path} has no labels from classifier {name!r} (it has: {', '.join(names)}); "
                         f"label it with `magbig classify {run.path} --classifier {name}`")
    lab = LabelStore(run.path).frame().filter(pl.col("classifier") == name).select(
        "key", "classifier", "faces", "status", "p_female", "label", "detail")
    units = read_units(run).filter(pl.col("in_audit"))
    return units.join(lab, on="key", how="inner")
