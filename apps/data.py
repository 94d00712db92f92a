"""The explorer's data layer: which folders are runs or jobs, what they hold, and the cached
queries the pages show. No Streamlit widgets here (apps/explorer.py draws).

- Reading: polars lazy scans of a run's tables (``scan_audit``), collected once per file
  identity. Statistics are :mod:`magbig.stats` / :mod:`magbig.reporting` (the code behind
  ``magbig stats`` and ``magbig report``), never recomputed here.
- Caching: every cached function takes the identity (path, size, mtime_ns) of each file it
  reads (``file_identity``), so a rewritten file is read again and an unchanged one never is.
  Frames are cached as resources (polars frames are immutable: no copy per rerun), small
  results as data.
- Safety: only files inside the run directories given on the command line are read.
  ``safe_path`` refuses an image path that is absolute, climbs with ``..``, or resolves
  (symlinks followed) outside its run.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import polars as pl
import streamlit as st

from magbig.rundata import LABELS_FILE, UNITS_FILE, classifier_column_name
from neobabel.errors import InputError
from neobabel.rundir import PathOutsideRunError, resolve_in_run
from neobabel.runlock import LOCK_OWNER_NAME

__all__ = [
    "Filters", "JobDir", "RunSummary", "UnsafePath", "agreement", "alignment_scores", "audit_identity",
    "discover", "env_run_args", "file_identity", "filtered", "first_line", "image_rows", "kappa_table", "load_audit",
    "png_info", "read_image_bytes", "report_for", "safe_path", "scan_audit", "stats_groups", "to_csv_bytes",
    "to_parquet_bytes", "trend",
]

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MAX_IMAGE_BYTES = 20 * 1024 * 1024  # a PNG this large is not one of ours: refused, not decoded


class UnsafePath(Exception):
    """An image path from a table that points outside its run directory."""


# --------------------------------------------------------------------------------------------
# file identity and path safety


def file_identity(*paths: Path) -> tuple:
    """(path, size, mtime_ns) of each path (None for a missing one): the cache key of anything
    read from them."""
    out = []
    for p in paths:
        try:
            s = p.stat()
            out.append((str(p), s.st_size, s.st_mtime_ns))
        except OSError:
            out.append((str(p), None, None))
    return tuple(out)


def _label_files(run: Path) -> list[Path]:
    parts = run / ".labels-parts"
    extra = sorted(parts.glob("*.parquet")) if parts.is_dir() else []
    return [run / LABELS_FILE, *extra]


def safe_path(run: Path, rel: str | None) -> Path:
    """The file ``rel`` names inside ``run``; UnsafePath when it is absolute, has ``..``, or
    resolves (symlinks followed) outside the run."""
    if rel is None or str(rel).strip() == "":
        raise UnsafePath("no path recorded")
    text = str(rel)
    if "\x00" in text:
        raise UnsafePath("path holds a NUL byte")
    p = Path(text)
    if p.is_absolute() or text.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", text):
        raise UnsafePath(f"absolute path {text!r} refused: images must lie inside the run")
    if ".." in re.split(r"[\\/]", text):
        raise UnsafePath(f"path {text!r} climbs out with '..': refused")
    try:  # the run-directory contract's own confinement (symlinks followed), as every reader uses
        return resolve_in_run(run, p)
    except PathOutsideRunError:
        raise UnsafePath(f"path {text!r} resolves outside the run (a symlink out): refused") from None


def read_image_bytes(run: Path, rel: str | None) -> bytes:
    """An image's bytes, read only inside ``run`` (UnsafePath otherwise; OSError when missing)."""
    full = safe_path(run, rel)
    if full.stat().st_size > _MAX_IMAGE_BYTES:
        raise UnsafePath(f"{rel!r} is larger than {_MAX_IMAGE_BYTES // 2**20} MiB: not shown")
    return full.read_bytes()


def png_info(data: bytes) -> dict[str, str]:
    """The PNG's text chunks (neobabel.pngmeta writes them), as strings."""
    from PIL import Image  # heavy-ish: only when an image is opened

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return {str(k): str(v) for k, v in getattr(im, "text", {}).items()}


# --------------------------------------------------------------------------------------------
# discovery


@dataclass
class RunSummary:
    """One folder given to the explorer that is an audit run (or why it is not usable)."""

    path: Path
    name: str
    ok: bool
    problem: str | None = None
    writing: bool = False  # still being written: numbers may change
    run_info: dict = field(default_factory=dict)
    classifiers: list[str] = field(default_factory=list)


@dataclass
class JobDir:
    """A scheduled job's folder (``<out>/<job>/``) with its dated outputs."""

    path: Path
    name: str
    dates: list[str]


def _run_json(path: Path) -> dict:
    p = path / "run.json"
    if not p.is_file():
        return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"_unreadable": True}
    return data if isinstance(data, dict) else {"_unreadable": True}


def _is_writing(path: Path, info: dict) -> bool:
    if info.get("status") == "running" or info.get("audit_status") == "running":
        return True
    if (path / LOCK_OWNER_NAME).is_file() or (path / ".labels-parts").is_dir():
        return True
    return False


def _job_dates(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()
                  if p.is_dir() and _DATE_RE.match(p.name) and (p / "summary.json").is_file())


def discover(paths: list[str]) -> tuple[list[RunSummary], list[JobDir]]:
    """Sort the given folders into runs and jobs. A folder that is neither becomes a RunSummary
    with ``ok=False`` and the reason; a job's date folders contribute their audit runs too."""
    runs: list[RunSummary] = []
    jobs: list[JobDir] = []
    seen: set[Path] = set()

    def add_run(p: Path, name: str) -> None:
        rp = p.resolve()
        if rp in seen:
            return
        seen.add(rp)
        runs.append(_describe_run(p, name))

    for raw in paths:
        p = Path(raw)
        if not p.is_dir():
            runs.append(RunSummary(p, raw, False, f"{raw}: no such directory"))
            continue
        if (p / "generations.parquet").is_file() or (p / "run.json").is_file():
            add_run(p, p.name or raw)
            continue
        if _DATE_RE.match(p.name) and (p / "summary.json").is_file():  # one date of a job
            p = p.parent
        if p.is_dir() and _job_dates(p):
            dates = _job_dates(p)
            jobs.append(JobDir(p, p.name, dates))
            latest = p / dates[-1]
            for sub in sorted(latest.iterdir()):
                if sub.is_dir() and (sub / "generations.parquet").is_file():
                    add_run(sub, f"{p.name}/{dates[-1]}/{sub.name}")
            continue
        runs.append(RunSummary(p, p.name or raw, False,
                               f"{raw} is not a run directory (no generations.parquet) nor a job folder "
                               "(no dated YYYY-MM-DD/summary.json); pass the --out folder of `magbig audit` "
                               "or a job's output folder"))
    return runs, jobs


def _describe_run(p: Path, name: str) -> RunSummary:
    info = _run_json(p)
    if info.get("_unreadable"):
        return RunSummary(p, name, False, f"{p}/run.json is not valid JSON (a run still being written, or damaged)")
    writing = _is_writing(p, info)
    if not (p / "generations.parquet").is_file():
        return RunSummary(p, name, False, f"{p} has no generations.parquet yet"
                          + (" (the run is still being written)" if writing else ""), writing, info)
    for table in (UNITS_FILE, "generations.parquet"):
        if (p / table).is_file():
            try:  # the footer only: a truncated or foreign file fails here, cheaply
                pl.read_parquet_schema(p / table)
            except Exception as e:
                return RunSummary(p, name, False, f"{p}: tables unreadable ({table}: {first_line(e)})",
                                  writing, info)
    try:
        names = _classifier_names(str(p), file_identity(*_label_files(p), p / "run.json"))
    except Exception as e:  # a truncated or foreign labels file: say so, keep the rest working
        return RunSummary(p, name, False, f"{p}: labels unreadable ({first_line(e)})", writing, info)
    if not names:
        return RunSummary(p, name, False, f"{p} has no labels yet; label it with "
                          f"`magbig classify {p} --classifier NAME`", writing, info)
    return RunSummary(p, name, True, None, writing, info, names)


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:300]


# --------------------------------------------------------------------------------------------
# tables (lazy scans, collected once per file identity)


def _scan_labels(run: Path) -> pl.LazyFrame:
    files = [f for f in _label_files(run) if f.is_file()]
    if not files:
        raise InputError(f"{run} has no labels.parquet")
    frames = []
    for f in files:
        lf = pl.scan_parquet(f)
        names = lf.collect_schema().names()
        if "key" not in names and "image" in names:  # tables written before the rename
            lf = lf.rename({"image": "key"})
        frames.append(lf)
    if len(frames) == 1:
        # labels.parquet alone is already one row per (key, classifier): LabelStore.merge writes
        # it deduplicated. Skipping the dedup saves ~1 s per million rows.
        return frames[0]
    # Parts of a run being labelled: the rule of rundata.LabelStore.frame, the newest row wins.
    lf = pl.concat(frames, how="diagonal_relaxed")
    return lf.unique(subset=["key", "classifier"], keep="last", maintain_order=True)


@st.cache_resource(show_spinner=False, max_entries=64)
def _classifier_names(run_path: str, ident: tuple) -> list[str]:
    run = Path(run_path)
    files = [f for f in _label_files(run) if f.is_file()]
    if not files:
        raise InputError(f"{run} has no labels.parquet")
    present = pl.concat([pl.scan_parquet(f).select("classifier") for f in files]).select(
        pl.col("classifier").unique(maintain_order=True)).collect()
    present = present["classifier"].drop_nulls().to_list()
    audit = (_run_json(run).get("audit") or {})
    order = [classifier_column_name(c) for c in audit.get("classifiers", []) if isinstance(c, dict)]
    return [c for c in order if c in present] + [c for c in present if c not in order]


def _scan_units(run: Path) -> pl.LazyFrame:
    path = run / UNITS_FILE
    if path.is_file():
        return pl.scan_parquet(path).filter(pl.col("in_audit"))
    # A `neobabel generate` run: every image of its manifest is in the audit (rundata.read_units).
    m = pl.scan_parquet(run / "generations.parquet")
    return m.select(
        "prompt_id", pl.coalesce(pl.col("subject"), pl.col("prompt_id")).alias("subject"), "lang",
        pl.coalesce(pl.col("formulation"), pl.lit("unspecified")).alias("formulation"), "text",
        pl.lit(None, pl.Int64).alias("slot"), pl.lit(0, pl.Int64).alias("attempt"), "seed", "key",
        pl.lit(True).alias("in_audit"))


def scan_audit(run: Path, classifier: str) -> pl.LazyFrame:
    """rundata.audit_frame as a lazy query: the images in the audit joined with one
    classifier's labels, less the prompt text (image paths and texts are looked up per cell:
    ``image_rows``)."""
    lab = _scan_labels(run).filter(pl.col("classifier") == classifier).select(
        "key", "classifier", "faces", "status", "p_female", "label", "detail")
    # Prompt texts (long strings, one per image) are looked up per cell too: ``image_rows``.
    units = _scan_units(run).select("prompt_id", "subject", "lang", "formulation", "slot", "attempt", "seed", "key")
    return units.join(lab, on="key", how="inner")


def audit_identity(run: Path) -> tuple:
    return file_identity(*_label_files(run), run / UNITS_FILE, run / "generations.parquet", run / "run.json")


@st.cache_resource(show_spinner=False, max_entries=8)  # ~100 MB per million rows: keep few
def load_audit(run_path: str, ident: tuple, classifier: str) -> pl.DataFrame:
    """One classifier's audit frame of a run (cached per file identity; the identity is part of
    the key, ``run_path`` says where to read)."""
    return scan_audit(Path(run_path), classifier).collect()


class Filters(NamedTuple):
    """What the sidebar selects; empty tuples mean 'all'. A tuple, so Streamlit's cache hashes it."""

    subjects: tuple[str, ...] = ()
    langs: tuple[str, ...] = ()
    formulations: tuple[str, ...] = ()


def filtered(df: pl.DataFrame, f: Filters) -> pl.DataFrame:
    lf = df.lazy()
    if f.subjects:
        lf = lf.filter(pl.col("subject").is_in(list(f.subjects)))
    if f.langs:
        lf = lf.filter(pl.col("lang").is_in(list(f.langs)))
    if f.formulations:
        lf = lf.filter(pl.col("formulation").is_in(list(f.formulations)))
    return lf.collect()


def _stats_input(df: pl.DataFrame) -> pl.DataFrame:
    """The columns `magbig stats` reads from a labels table (one row per image)."""
    return df.select("subject", "lang", "formulation", "status", "label")


# --------------------------------------------------------------------------------------------
# statistics: magbig.stats / magbig.reporting, cached per (files, filters, settings)


@st.cache_data(show_spinner=False, max_entries=64)
def stats_groups(run_path: str, ident: tuple, classifier: str, f: Filters, n_boot: int,
                 seed: int) -> list[dict]:
    """Exactly what `magbig stats LABELS --classifier C --n-boot N --seed S` prints for the
    filtered images (magbig.stats.summarize_labels_table)."""
    from magbig import stats  # heavy: scipy; imported by the first page that needs it
    df = filtered(load_audit(run_path, ident, classifier), f)
    if df.height == 0:
        return []
    return stats.summarize_labels_table(_stats_input(df), n_boot=n_boot, seed=seed)


@st.cache_resource(show_spinner=False, max_entries=16)
def report_for(run_path: str, ident: tuple, classifier: str, f: Filters, n_boot: int,
               seed: int, n_perm: int):
    """The report's numbers (magbig.reporting.build_report) for the filtered images, with the
    run's alignment.parquet when present; None when the filter leaves nothing."""
    from magbig.alignment import alignment_for_report  # heavy: only where alignment is shown
    from magbig.reporting import build_report  # heavy: matplotlib, scipy

    run = Path(run_path)
    df = filtered(load_audit(run_path, ident, classifier), f)
    if df.height == 0:
        return None
    info = dict(_run_json(run))
    info["classifier"] = {"name": classifier}
    align = alignment_for_report(run)
    if align is not None:
        if f.subjects and "subject" in align.columns:
            align = align.filter(pl.col("subject").is_in(list(f.subjects)))
        if f.langs:
            align = align.filter(pl.col("lang").is_in(list(f.langs)))
        if align.height == 0:
            align = None
    return build_report(df, run_info=info, alignment=align, n_boot=n_boot, seed=seed,
                        n_perm=n_perm)


@st.cache_data(show_spinner=False, max_entries=16)
def agreement(run_path: str, ident: tuple, classifiers: tuple[str, ...]) -> list[dict]:
    """Cohen's κ (magbig.stats.cohen_kappa) of every pair of classifiers on the images both
    labelled, with the share of matching labels."""
    from magbig import stats  # heavy: scipy
    frames = {c: load_audit(run_path, ident, c).select("key", "label", "status") for c in classifiers}
    out = []
    for i, a in enumerate(classifiers):
        for b in classifiers[i + 1:]:
            j = frames[a].join(frames[b], on="key", how="inner", suffix="_b")
            kappa = stats.cohen_kappa(j["label"].to_list(), j["label_b"].to_list())
            both = j.filter(pl.col("label").is_not_null() & pl.col("label_b").is_not_null())
            agree = float((both["label"] == both["label_b"]).mean()) if both.height else None
            out.append({"classifier_a": a, "classifier_b": b, "n_images": j.height,
                        "n_both_labelled": both.height, "agreement": agree,
                        "kappa": None if kappa is None or (isinstance(kappa, float) and math.isnan(kappa)) else kappa})
    return out


@st.cache_resource(show_spinner=False, max_entries=16)
def kappa_table(run_path: str, ident: tuple, a: str, b: str) -> pl.DataFrame:
    """Confusion table of two classifiers: rows a's label (or status), columns b's."""
    def lab(c):
        d = load_audit(run_path, ident, c).select(
            "key", pl.coalesce(pl.col("label"), pl.col("status")).fill_null("none").alias(c))
        return d

    j = lab(a).join(lab(b), on="key", how="inner", suffix="_b")
    col_b = b if b != a else f"{b}_b"
    counts = j.group_by(a, col_b).len()
    return counts.pivot(on=col_b, index=a, values="len").fill_null(0).sort(a)


# --------------------------------------------------------------------------------------------
# cells, images


def image_rows(run: Path, df: pl.DataFrame, subject: str, lang: str, formulation: str,
               limit: int = 48) -> pl.DataFrame:
    """The images of one cell (prompt), for the grid, with each image's path from the manifest
    (``path`` is as recorded: read it only through :func:`read_image_bytes`)."""
    rows = (df.lazy().filter((pl.col("subject") == subject) & (pl.col("lang") == lang)
                             & (pl.col("formulation") == formulation))
            .sort("slot", "seed", nulls_last=True).head(limit).collect())
    paths = (pl.scan_parquet(run / "generations.parquet").select("key", "path")
             .filter(pl.col("key").is_in(rows["key"].to_list())).unique("key", keep="first").collect())
    texts = (_scan_units(run).select("key", "text").filter(pl.col("key").is_in(rows["key"].to_list()))
             .unique("key", keep="first").collect())
    return rows.join(paths, on="key", how="left", maintain_order="left").join(
        texts, on="key", how="left", maintain_order="left")


# --------------------------------------------------------------------------------------------
# alignment scores (neobabel eval), job trends


@st.cache_data(show_spinner=False, max_entries=16)
def alignment_scores(run_path: str, ident: tuple) -> dict:
    """A run's alignment evaluation (scores.parquet and its summary.json from `neobabel eval`):
    means of the numeric columns per scorer/task/lang. {} when the run has none."""
    run = Path(run_path)
    path = run / "scores.parquet"
    if not path.is_file():
        return {}
    lf = pl.scan_parquet(path)
    schema = lf.collect_schema()
    keys = [c for c in ("scorer", "suite", "task", "check", "lang", "formulation") if c in schema.names()]
    nums = [c for c, t in schema.items() if t.is_numeric() and c not in ("seed", "slot", "attempt", "n")]
    table = (lf.group_by(keys).agg(pl.len().alias("n_rows"), *(pl.col(c).mean() for c in nums)).sort(keys)
             if keys else lf.select(pl.len().alias("n_rows"), *(pl.col(c).mean() for c in nums)))
    return {"keys": keys, "table": table.collect().to_dicts()}


def trend(job: JobDir) -> tuple[pl.DataFrame, list[dict]]:
    """The job's trend table (magbig.batch.trend_frame, what `magbig batch history` prints) and
    every date's fired alerts."""
    return _trend(str(job.path), file_identity(*[job.path / d / n for d in job.dates
                                                 for n in ("summary.json", "alerts.json")]))


@st.cache_resource(show_spinner=False, max_entries=16)
def _trend(job_path: str, ident: tuple) -> tuple[pl.DataFrame, list[dict]]:
    from magbig.batch import trend_frame  # heavy: the audit code; only where trends are shown

    job = Path(job_path)
    frame = trend_frame(job)
    alerts = []
    for d in _job_dates(job):
        p = job / d / "alerts.json"
        if not p.is_file():
            continue
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            alerts.append({"date": d, "rule": "alerts.json unreadable"})
            continue
        for a in data.get("alerts", []) if isinstance(data, dict) else []:
            alerts.append({"date": d, **{k: v for k, v in a.items() if not isinstance(v, (dict, list))}})
    return frame, alerts


# --------------------------------------------------------------------------------------------
# downloads


def to_csv_bytes(df: pl.DataFrame) -> bytes:
    return df.write_csv().encode("utf-8")


def to_parquet_bytes(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.write_parquet(buf)
    return buf.getvalue()


def env_run_args() -> list[str]:
    """Run folders from the NEOBABEL_EXPLORER_RUNS environment variable (os.pathsep-separated),
    for launchers that cannot pass script arguments."""
    raw = os.environ.get("NEOBABEL_EXPLORER_RUNS", "")
    return [p for p in raw.split(os.pathsep) if p]
