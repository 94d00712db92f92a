"""Audits: n images per prompt -> run directory -> perceived-gender labels -> report.

``run_audit(spec, out)`` is one resumable command over one run directory (design.md, "Run
directory contract"):

1. select prompts (built-in set, an official MAGBIG folder or the Hub) by set, languages,
   formulations and subjects (``subjects: world`` = the 12 occupations of the Babel world);
2. one work unit per (prompt, image slot i), seed ``seed + i`` plus the prompt's subject offset
   (:func:`image_seed`; ``seeds: shared`` drops the offset); images are generated through
   :func:`neobabel.runs.generate_into_run` (content keys, atomic writes, skips keys done);
3. every image not yet labelled by a classifier (same name and same configuration) is
   classified and its rows are appended to ``labels.parquet`` — one row per (key,
   classifier), never duplicated — after every classifier batch (see :class:`LabelStore`);
4. face policy ``keep`` (default): every image is in the audit with its face status.
   ``reject`` is MAGBIG's rejection sampling: slot i of a prompt tries seeds
   ``seed + i``, ``seed + i + n``, ``seed + i + 2n``, … (plus the subject offset) until the
   FIRST classifier sees exactly one face (status ``ok`` or ``uncertain`` with ``faces == 1``),
   at most ``max_tries`` times. Every failed try is logged in ``rejections.parquet``. The
   statistics use, per slot, the
   accepted image; when all ``max_tries`` tries failed, the last one stays in the audit (it
   counts in the face-filter denominators as ``no_face`` / ``multiple_faces``, never in
   p̂_female) and its rejection row has ``cap_reached = true``;
5. ``summary.json``, ``report.html`` and ``report.md`` from :mod:`magbig.report` on the
   first classifier's labels; ``run.json`` records the audit spec, the prompt set and every
   classifier's ``config()``.

Which images are "in the audit" is recorded in ``units.parquet`` (one row per prompt slot and
try: prompt_id, subject, lang, formulation, text, slot, attempt, seed, key, in_audit);
``labels.parquet`` holds every labelled image, rejected tries included, so the statistics
always join ``units`` (``in_audit``) with ``labels`` (one classifier): :func:`audit_frame`.
Two prompts with the same text and language (e.g. a language whose direct form is already
feminine) share their images: same text, language and seed give the same pixels.

A kill at any point loses at most the batch in flight; rerunning the same command resumes.
One run directory holds one audit: resuming it with another model, params or prompt selection
(:func:`_audit_selection`) is refused before anything is written, so its tables never mix
rows of two audits. The audit, ``magbig classify`` and ``magbig report`` hold the directory's
lock (:func:`neobabel.runs.locked`) while they write.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
import time
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from magbig.rundata import open_run as _open_run
from magbig.rundata import read_units as _units
from neobabel.configfile import read_yaml_mapping, resolve_config, validate_spec
from neobabel.errors import InputError
from neobabel.progress import progress_bar
from neobabel.runs import (
    RunDir, WorkUnit, atomic_write_parquet, check_run_spec, clean_temp_files, generate_into_run, generation_spec,
    image_key, key_params, locked,
)

__all__ = [
    "SUBJECT_SEED_STRIDE",
    "AuditSpec",
    "ClassifierSpec",
    "LABELS_COLUMNS",
    "LabelStore",
    "audit_frame",
    "compare",
    "compare_to_planted",
    "expected_abs_error",
    "image_seed",
    "planted_fit_test",
    "planted_recovery",
    "load_audit_config",
    "load_pipeline",
    "relabel",
    "report",
    "run_audit",
    "select_prompts",
]

FACE_OK_STATUSES = ("ok", "uncertain")

#: labels.parquet: one row per (key, classifier).
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
# the spec


def _default_model() -> str:
    from neobabel.builtins import default_model

    return default_model()


class ClassifierSpec(BaseModel):
    """One classifier of an audit: a backend name of :func:`magbig.classify.get_classifier`
    and its options (e.g. ``{name: deepface, options: {detector_backend: opencv}}``)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    def build(self, allow_pickle: bool = False):
        from magbig.classify import get_classifier

        return get_classifier(self.name, allow_pickle=allow_pickle, **self.options)


# Per-subject seeds are subject_offset + seed + slot (+ attempt x n), subject_offset = this stride
# times 32 bits of sha256(subject): slots of one subject never reach another subject's range.
SUBJECT_SEED_STRIDE = 2**20


def image_seed(subject: str, base_seed: int, slot: int, seeds: str = "per_subject") -> int:
    """The seed of one image slot (``slot`` already includes ``attempt x n``)."""
    if seeds == "shared":
        return base_seed + slot
    offset = int.from_bytes(hashlib.sha256(subject.encode("utf-8")).digest()[:4], "big")
    return offset * SUBJECT_SEED_STRIDE + base_seed + slot


_SIZE_RE = re.compile(r"^\s*(\d+)\s*(?:[x×]\s*(\d+))?\s*$", re.IGNORECASE)


class AuditSpec(BaseModel):
    """An audit, as written in ``configs/audits/*.yaml`` (unknown fields are errors).

    ``langs`` / ``formulations``: lists (or comma-separated strings) or ``all``;
    ``subjects``: list, ``all`` or ``world`` (the Babel world's 12 occupations). ``n`` images
    per prompt with seeds ``seed .. seed+n-1``, offset per subject (``seeds``, below).
    ``steps`` / ``guidance`` / ``size`` / ``scheduler`` override the model's defaults. ``model: oracle`` renders world portraits
    with the planted shares of ``configs/world/bias.yaml`` (no diffusion; see
    :mod:`magbig.selftest`).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = "audit"
    model: str = Field(default_factory=_default_model)
    prompts: str = "builtin"
    set: Literal["occupations", "traits"] = "occupations"
    langs: list[str] | Literal["all"] = "all"
    formulations: list[str] | Literal["all"] = "all"
    subjects: list[str] | Literal["all", "world"] = "all"
    n: int = Field(100, ge=1)
    seed: int = Field(0, ge=0)
    # per_subject: all prompts of one subject (its languages and formulations) share their seeds,
    # and different subjects get independent ones. The statistics resample subjects as
    # independent clusters and pair languages and formulations within a subject; with `shared`
    # seeds (slot i of every prompt = seed + i) a model that reads much of a face from its
    # starting noise moves every subject alike, and the aggregate intervals come out too narrow.
    seeds: Literal["per_subject", "shared"] = "per_subject"
    steps: int | None = Field(None, ge=1)
    guidance: float | None = Field(None, ge=0)
    size: str | None = None
    scheduler: str | None = None
    batch_size: int = Field(8, ge=1)
    device: str = "cpu"
    # Batch the denoiser: faster, but images then depend on batch size in the last bits.
    fast_batching: bool = False
    # Load pickled (.bin) weights too, with torch.load(weights_only=True); default safetensors only.
    allow_pickle: bool = False
    classifiers: list[ClassifierSpec] = Field(
        default_factory=lambda: [ClassifierSpec(name="deepface")], min_length=1)
    face_policy: Literal["keep", "reject"] = "keep"
    max_tries: int = Field(5, ge=1)
    n_boot: int = Field(2000, ge=100)

    @field_validator("langs", "formulations", "subjects", mode="before")
    @classmethod
    def _list_or_keyword(cls, v):
        if isinstance(v, str):
            if v.strip().lower() in ("all", "world"):
                return v.strip().lower()
            v = [p for p in v.split(",")]
        if isinstance(v, (list, tuple)):
            items = [str(x).strip() for x in v if str(x).strip()]
            if not items:
                raise ValueError("must list at least one value (or say all)")
            return items
        return v

    @field_validator("model", "name", "prompts")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v.strip()

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, v):
        if v is None:
            return None
        m = _SIZE_RE.match(str(v))
        if not m:
            raise ValueError(f"{v!r} is not WIDTHxHEIGHT (e.g. 512x512)")
        w = int(m[1])
        return f"{w}x{int(m[2] or w)}"

    @field_validator("classifiers", mode="before")
    @classmethod
    def _classifier_shorthand(cls, v):
        # `classifiers: [world]` or `classifiers: world` as shorthand for {name: world}
        if isinstance(v, str):
            v = [v]
        if isinstance(v, list):
            return [{"name": c} if isinstance(c, str) else c for c in v]
        return v

    @model_validator(mode="after")
    def _seed_range(self):
        last = self.seed + self.n * (self.max_tries if self.face_policy == "reject" else 1) - 1
        if self.seeds == "per_subject" and last >= SUBJECT_SEED_STRIDE:
            raise ValueError(f"seed {self.seed} + n x tries reaches {last}; with seeds: per_subject it must stay "
                             f"below {SUBJECT_SEED_STRIDE} (lower seed or n, or use seeds: shared)")
        return self

    def width_height(self) -> tuple[int | None, int | None]:
        if self.size is None:
            return None, None
        w, h = self.size.split("x")
        return int(w), int(h)


def _check_seed_scheme(run: RunDir, spec: AuditSpec) -> None:
    """Resuming a run under another seed scheme would redo every image under new seeds."""
    earlier = run.read_run_json().get("audit")
    if not earlier:
        return
    # Audits recorded before the `seeds` field existed used shared seeds.
    was = earlier.get("seeds", "shared")
    if was != spec.seeds:
        raise InputError(f"run {run.path} was made with seeds: {was}, this audit asks for seeds: {spec.seeds}; "
                         f"resume it with --seeds {was} or write to a new --out")


def _spec_classifier_name(c: dict) -> str:
    """The ``classifier`` column value a ClassifierSpec produces (its alias, else the backend)."""
    alias = (c.get("options") or {}).get("alias")
    return str(alias).strip() if alias else str(c.get("name", "")).strip().lower()


def _check_values(spec: AuditSpec) -> AuditSpec:
    """Normalize languages and formulations (one-line InputErrors for unknown ones)."""
    from magbig.prompts import FORMULATIONS
    from neobabel.languages import normalize_lang

    updates: dict[str, Any] = {}
    if spec.langs != "all":
        updates["langs"] = list(dict.fromkeys(normalize_lang(v) for v in spec.langs))
    if spec.formulations != "all":
        forms = []
        for f in spec.formulations:
            key = f.strip().lower().replace("-", "_")
            key = "gender_star" if key == "star" else key
            if key not in FORMULATIONS:
                raise InputError(f"unknown formulation {f!r}; use one of: {', '.join(FORMULATIONS)}")
            forms.append(key)
        updates["formulations"] = list(dict.fromkeys(forms))
    names = [_spec_classifier_name(c.model_dump()) for c in spec.classifiers]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise InputError(f"two classifiers are named {dup!r}; give one an options.alias so their labels "
                         "stay apart")
    return spec.model_copy(update=updates) if updates else spec


def make_spec(data: dict, where: str = "audit spec") -> AuditSpec:
    return _check_values(validate_spec(data, AuditSpec, where))


def load_audit_config(path: str | os.PathLike, **overrides) -> AuditSpec:
    """Read and validate an audit YAML (a file, or a shipped config's name such as ``quick``);
    keyword overrides (None = not given) win over it."""
    path = resolve_config(path, "audits")
    data = read_yaml_mapping(path, "audit config")
    data.setdefault("name", path.stem)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return make_spec(data, where=f"audit config {path}")


# --------------------------------------------------------------------------------------------
# prompts and model


def select_prompts(spec: AuditSpec, prompts=None):
    """The spec's prompts from its source (or from ``prompts``, a PromptSet)."""
    from magbig.prompts import load_prompts
    from neobabel.world.spec import OCCUPATIONS

    ps = load_prompts(prompts if prompts is not None else spec.prompts)
    subjects = None if spec.subjects == "all" else list(OCCUPATIONS) if spec.subjects == "world" else spec.subjects
    sel = ps.select(langs=None if spec.langs == "all" else spec.langs,
                    formulations=None if spec.formulations == "all" else spec.formulations,
                    subjects=subjects, set=spec.set)
    if len(sel) == 0:
        raise InputError(
            f"no prompts in {ps.name!r} match set={spec.set}, langs={spec.langs}, formulations="
            f"{spec.formulations}, subjects={spec.subjects}; list what exists with `magbig prompts`")
    return sel


def load_pipeline(spec: AuditSpec, prompts=None):
    """The spec's model: ``oracle`` or anything BabelPipeline.from_pretrained loads."""
    if spec.model == "oracle":
        from magbig.selftest import OraclePipeline

        pipe = OraclePipeline.from_bias_table()
        if prompts is not None:
            unknown = [p for p in prompts if not pipe.knows(p.text, p.lang)]
            if unknown:
                raise InputError(
                    f"model 'oracle' has no planted share for prompt {unknown[0].id!r} ({len(unknown)} "
                    "such); it renders only the world bias table's prompts: use subjects: world with "
                    "the built-in prompts")
        return pipe
    from neobabel.pipeline import BabelPipeline

    device = spec.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    pipe = BabelPipeline.from_pretrained(spec.model, device=device, allow_pickle=spec.allow_pickle)
    pipe.set_batch_invariant(not spec.fast_batching)
    return pipe


# --------------------------------------------------------------------------------------------
# labels.parquet


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
        self.path = self.run_path / "labels.parquet"
        self.parts_dir = self.run_path / ".labels-parts"
        self.merge_every = merge_every
        self._counter = 0
        clean_temp_files(self.parts_dir)

    def _parts(self) -> list[Path]:
        return sorted(self.parts_dir.glob("*.parquet")) if self.parts_dir.is_dir() else []

    def _read(self, path: Path) -> pl.DataFrame:
        try:
            return pl.read_parquet(path)
        except Exception as e:
            raise InputError(f"{path} is unreadable ({type(e).__name__}); delete it and rerun to "
                             "re-label the images") from None

    def frame(self) -> pl.DataFrame:
        frames = [self._read(self.path)] if self.path.is_file() else []
        frames += [self._read(p) for p in self._parts()]
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


def _bar(enabled: bool, total: int, what: str):
    """The project's progress display (neobabel.progress): a bar on a terminal, lines in a log."""
    return progress_bar(what, total, enabled=enabled, unit="img")


def label_images(run: RunDir, store: LabelStore, classifier, rows: Sequence[dict], *,
                 overwrite: bool = False, progress: bool = False) -> int:
    """Classify the manifest ``rows`` not yet labelled by ``classifier`` (same name and
    config); append each batch to ``store``; merge at the end. Returns how many were labelled."""
    cid = config_id(classifier)
    have = set() if overwrite else store.done_keys(classifier.name, cid)
    todo, seen = [], set()
    for r in rows:
        if r["key"] not in have and r["key"] not in seen:
            seen.add(r["key"])
            todo.append(r)
    if not todo:
        store.merge()  # label parts a killed pass left behind
        return 0
    bs = classifier.batch_size
    try:
        with _bar(progress, len(todo), f"labelling ({classifier.name})") as advance:
            for start in range(0, len(todo), bs):
                chunk = todo[start:start + bs]
                # Paths are resolved inside the run directory; others become error rows, unopened.
                results = classifier.classify([str(r["path"] or "") for r in chunk], keys=[r["key"] for r in chunk],
                                              batch_size=bs, run_dir=run.path)
                frame = pl.DataFrame([{
                    "key": r["key"], "prompt_id": r.get("prompt_id"), "subject": r.get("subject"),
                    "lang": r.get("lang"), "formulation": r.get("formulation"), "seed": r.get("seed"),
                    "classifier": res.classifier, "config_id": cid, "faces": res.faces,
                    "status": res.status, "p_female": res.p_female, "label": res.label,
                    "detail": res.detail,
                } for r, res in zip(chunk, results)], schema=LABELS_COLUMNS)
                store.append(frame)
                advance(len(chunk))
    finally:
        store.merge()
    return len(todo)


# --------------------------------------------------------------------------------------------
# running an audit


def _update_run_json(run: RunDir, **fields) -> dict:
    info = run.read_run_json()
    info.update(fields)
    run.write_run_json(info)
    return info


def _record_classifiers(info: dict, configs: Iterable[dict]) -> list[dict]:
    known = {c.get("name"): c for c in info.get("classifiers", []) if isinstance(c, dict)}
    for cfg in configs:
        known[cfg["name"]] = cfg
    return list(known.values())


def run_audit(spec: AuditSpec, out: str | os.PathLike, progress: bool = True, *, pipeline=None,
              prompts=None, report_files: bool = True) -> Path:
    """Generate, classify and report (module docstring). Rerun to resume. Returns ``out``.

    ``pipeline`` (an object with BabelPipeline's interface, e.g. an OraclePipeline) replaces
    loading ``spec.model``; ``prompts`` (a PromptSet) replaces loading ``spec.prompts``.
    """
    spec = _check_values(spec)
    run = RunDir(out)
    _check_seed_scheme(run, spec)
    ps = select_prompts(spec, prompts)
    # Everything that can be wrong with the input fails here, before any image is made.
    classifiers = [c.build(spec.allow_pickle) for c in spec.classifiers]
    pipe = pipeline if pipeline is not None else load_pipeline(spec, ps)
    if pipeline is None and spec.model == "tiny-random":
        from neobabel.builtins import UNTRAINED_NOTICE

        print(UNTRAINED_NOTICE, file=sys.stderr)
    w, h = spec.width_height()
    params = pipe.resolve_params(spec.steps, spec.guidance, w, h, spec.scheduler)
    param_dict = key_params(pipe, params)
    audit_spec = generation_spec(pipe, param_dict, "magbig audit", **_audit_selection(spec, ps))
    check_run_spec(run, audit_spec)  # another audit here is refused before anything is written
    with locked(run):
        check_run_spec(run, audit_spec)
        return _run_locked(spec, run, ps, classifiers, pipe, params, param_dict, audit_spec, progress,
                           report_files)


def _audit_selection(spec: AuditSpec, ps) -> dict:
    """What makes an audit this audit besides the model's identity and the key params (which
    :func:`generation_spec` holds): the prompt set and selection, n, seeds, face policy and
    classifiers. Not in it: name, batch_size, device and n_boot (how it runs and is reported)."""
    how = {"name", "batch_size", "device", "n_boot",
           # in the spec as the model's identity, the key params and batch_invariant
           "model", "steps", "guidance", "size", "scheduler", "fast_batching"}
    return {"audit": spec.model_dump(mode="json", exclude=how),
            "prompt_set": {"name": ps.name, "version": ps.version}}


def _run_locked(spec: AuditSpec, run: RunDir, ps, classifiers, pipe, params, param_dict: dict,
                audit_spec: dict, progress: bool, report_files: bool) -> Path:
    identity = pipe.identity()
    n, reject = spec.n, spec.face_policy == "reject"
    tries = spec.max_tries if reject else 1
    primary = classifiers[0]
    store = LabelStore(run.path)
    run_info = {
        "command": "magbig audit",
        "audit": spec.model_dump(mode="json"),
        "prompt_set": {"name": ps.name, "version": ps.version, "source": ps.source, "count": len(ps),
                       "langs": ps.langs, "formulations": ps.formulations,
                       "subjects": len(ps.subjects)},
        "images_per_prompt": n, "base_seed": spec.seed, "batch_size": spec.batch_size,
        "audit_status": "running",
    }
    unit_rows: list[dict] = []
    rejections: list[dict] = []
    pending = [(p, i) for p in ps for i in range(n)]
    try:
        for attempt in range(tries):
            if not pending:
                break
            units = [WorkUnit(p.id, p.text, p.lang, image_seed(p.subject, spec.seed, i + attempt * n, spec.seeds),
                              p.subject, p.formulation) for p, i in pending]
            keys = [image_key(identity, u, param_dict) for u in units]
            generate_into_run(pipe, units, run, params, batch_size=spec.batch_size, progress=progress,
                              spec=run_info, run_spec=audit_spec)
            by_key = {r["key"]: r for r in run.load_manifest().iter_rows(named=True)}
            missing = [k for k in keys if k not in by_key]
            if missing:
                raise RuntimeError(f"image {missing[0]} is not in {run.manifest_path} after generation")
            info = run.read_run_json()
            _update_run_json(run, classifiers=_record_classifiers(info, [c.config() for c in classifiers]))
            label_images(run, store, primary, [by_key[k] for k in keys], progress=progress)
            lab = {r["key"]: r for r in store.frame().filter(pl.col("classifier") == primary.name)
                   .iter_rows(named=True)}
            still = []
            last = attempt == tries - 1
            for (p, i), u, k in zip(pending, units, keys):
                row = lab[k]
                face_ok = row["faces"] == 1 and row["status"] in FACE_OK_STATUSES
                accepted = face_ok or not reject
                unit_rows.append({"prompt_id": p.id, "subject": p.subject, "lang": p.lang,
                                  "formulation": p.formulation, "text": p.text, "slot": i,
                                  "attempt": attempt, "seed": u.seed, "key": k,
                                  "in_audit": accepted or last})
                if reject and not face_ok:
                    rejections.append({"prompt_id": p.id, "subject": p.subject, "lang": p.lang,
                                       "formulation": p.formulation, "slot": i, "attempt": attempt,
                                       "seed": u.seed, "key": k, "classifier": primary.name,
                                       "faces": row["faces"], "status": row["status"], "cap_reached": last})
                    if not last:
                        still.append((p, i))
            pending = still
            atomic_write_parquet(pl.DataFrame(unit_rows, schema=UNITS_COLUMNS), run.path / "units.parquet")
            atomic_write_parquet(pl.DataFrame(rejections, schema=REJECTIONS_COLUMNS),
                                 run.path / "rejections.parquet")
        in_audit = [r for r in unit_rows if r["in_audit"]]
        by_key = {r["key"]: r for r in run.load_manifest().iter_rows(named=True)}
        audit_rows = [by_key[k] for k in dict.fromkeys(r["key"] for r in in_audit)]
        for clf in classifiers[1:]:
            label_images(run, store, clf, audit_rows, progress=progress)
    except KeyboardInterrupt:
        _update_run_json(run, audit_status="interrupted")
        raise
    except BaseException:
        _update_run_json(run, audit_status="failed")
        raise
    capped = sum(1 for r in rejections if r["cap_reached"])
    _update_run_json(run, audit_status="complete", audit_result={
        "prompts": len(ps), "slots": len(ps) * n, "images_generated": len({r["key"] for r in unit_rows}),
        "images_in_audit": len(in_audit), "rejected_tries": len(rejections), "slots_cap_reached": capped,
        "face_policy": spec.face_policy, "max_tries": tries})
    if report_files:
        report(run.path, n_boot=spec.n_boot)
    return run.path


# --------------------------------------------------------------------------------------------
# after the run: frames, relabel, report, compare


def classifier_names(run_dir: str | os.PathLike) -> list[str]:
    """Classifiers with labels in the run, the audit's first classifier first."""
    run = _open_run(run_dir)
    labels = LabelStore(run.path).frame()
    present = labels["classifier"].unique(maintain_order=True).to_list()
    audit = run.read_run_json().get("audit") or {}
    order = [_spec_classifier_name(c) for c in audit.get("classifiers", [])]
    return [c for c in order if c in present] + [c for c in present if c not in order]


def audit_frame(run_dir: str | os.PathLike, classifier: str | None = None) -> pl.DataFrame:
    """The images in the audit (``units.in_audit``) joined with ONE classifier's labels
    (default: the audit's first). Images not labelled yet are left out."""
    run = _open_run(run_dir)
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
    units = _units(run).filter(pl.col("in_audit"))
    return units.join(lab, on="key", how="inner")


def relabel(run_dir: str | os.PathLike, classifier: str, options: dict | None = None, *,
            overwrite: bool = False, progress: bool = True, allow_pickle: bool = False) -> dict:
    """Label every image of a run with a classifier (``magbig classify``); nothing is
    regenerated. Images already labelled by the same classifier name and configuration are
    skipped unless ``overwrite``; a changed configuration replaces the old rows."""
    from magbig.classify import get_classifier

    run = _open_run(run_dir)
    clf = get_classifier(classifier, allow_pickle=allow_pickle, **(options or {}))
    with locked(run):
        return _relabel_locked(run, clf, overwrite, progress)


def _relabel_locked(run: RunDir, clf, overwrite: bool, progress: bool) -> dict:
    rows = list(run.load_manifest().iter_rows(named=True))
    store = LabelStore(run.path)
    labelled = label_images(run, store, clf, rows, overwrite=overwrite, progress=progress)
    info = run.read_run_json()
    _update_run_json(run, classifiers=_record_classifiers(info, [clf.config()]))
    counts = (store.frame().filter(pl.col("classifier") == clf.name).group_by("status").len()
              .sort("status"))
    return {"run": str(run.path), "classifier": clf.name, "config_id": config_id(clf), "images": len(rows),
            "labelled_now": labelled, "already_labelled": len({r["key"] for r in rows}) - labelled,
            "statuses": dict(zip(counts["status"].to_list(), counts["len"].to_list()))}


def report(run_dir: str | os.PathLike, classifier: str | None = None, *, n_boot: int | None = None,
           n_perm: int = 9999) -> dict:
    """Build and write the report of one classifier's labels. The audit's first classifier
    writes ``summary.json`` / ``report.html`` / ``report.md`` in the run directory; any other
    writes them under ``reports/<classifier>/``. With an ``alignment.parquet`` (``magbig
    align``) the report has the text-image alignment section. Returns {"report": Report,
    "paths": {...}}."""
    run = _open_run(run_dir)
    with locked(run):  # merging label parts writes labels.parquet
        return _report_locked(run, classifier, n_boot, n_perm)


def _report_locked(run: RunDir, classifier: str | None, n_boot: int | None, n_perm: int) -> dict:
    from magbig.alignment import alignment_for_report
    from magbig.report import build_report, write_report

    LabelStore(run.path).merge()
    names = classifier_names(run.path)
    frame = audit_frame(run.path, classifier)
    name = classifier or names[0]
    info = run.read_run_json()
    audit = info.get("audit") or {}
    cfg = next((c for c in info.get("classifiers", []) if c.get("name") == name), {"name": name})
    n_units = _units(run).filter(pl.col("in_audit")).height
    run_info = {**info, "classifier": cfg, "unlabelled_images": n_units - frame.height}
    rep = build_report(frame, run_info=run_info, alignment=alignment_for_report(run.path),
                       n_boot=n_boot or int(audit.get("n_boot", 2000)), seed=int(audit.get("seed", 0)),
                       n_perm=n_perm)
    out_dir = run.path if name == names[0] else run.path / "reports" / name
    paths = write_report(rep, out_dir)
    return {"report": rep, "paths": paths, "classifier": name}


def compare(run_a: str | os.PathLike, run_b: str | os.PathLike, classifier: str | None = None, *,
            n_boot: int = 2000, n_perm: int = 9999, seed: int = 0) -> dict:
    """Paired comparison of per-prompt abs_dev = |p̂_female − 0.5| between two runs.

    Pairs the (subject, lang, formulation) cells labelled in both runs (two models on the same
    prompts). When they share no cell but each run has one formulation per (subject, lang)
    (one model with and without neutral prompts), pairs on (subject, lang) and compares the
    formulations. d = abs_dev(B) − abs_dev(A); mean with a paired-bootstrap interval and a
    two-sided sign-flip permutation p-value (:func:`magbig.stats.paired_tests`), overall and
    per language (Holm-adjusted over the per-language tests).
    """
    from magbig import stats

    frames, infos = [], []
    for tag, r in (("A", run_a), ("B", run_b)):
        run = _open_run(r)
        names = classifier_names(run.path)
        name = classifier or (names[0] if names else None)
        df = audit_frame(run.path, name)
        pp = stats.per_prompt(df, group_cols=("subject", "lang", "formulation"))
        pp = pp.filter(pl.col("abs_dev").is_not_null())
        frames.append(pp.with_columns(pl.lit(tag).alias("run")))
        model = run.read_run_json().get("model") or {}
        infos.append({"run": str(run.path), "model": model.get("model") if isinstance(model, dict) else model,
                      "classifier": name, "formulations": sorted(pp["formulation"].unique().to_list()),
                      "cells": pp.height})
    a, b = frames
    cell = ["subject", "lang", "formulation"]
    common = a.select(cell).join(b.select(cell), on=cell, how="inner")
    if common.height:
        on, mode = cell, "same prompts"
    else:
        on, mode = ["subject", "lang"], "formulations"
        unique = all(f.select(on).is_unique().all() for f in frames)
        common = a.select(on).join(b.select(on), on=on, how="inner") if unique else common.clear()
        if common.height == 0:
            raise InputError(f"runs {run_a} and {run_b} share no labelled (subject, lang, formulation) cell, "
                             "and no (subject, lang) with one formulation in each; nothing to pair")
    stacked = pl.concat([f.join(common, on=on, how="semi") for f in frames], how="vertical_relaxed")
    stacked = stacked.with_columns(pl.concat_str([pl.col(c) for c in on], separator="/").alias("unit"))
    # n_female / n_labelled let paired_tests compare abs_dev at a common n per pair.
    tests_in = stacked.select(pl.col("unit").alias("subject"), "run", "lang", "abs_dev", "n_female", "n_labelled")
    overall = stats.paired_tests(tests_in.drop("lang"), against="run", reference="A", metric="abs_dev",
                                 by=(), n_perm=n_perm, n_boot=n_boot, seed=seed)
    per_lang = stats.paired_tests(tests_in, against="run", reference="A", metric="abs_dev", by=("lang",),
                                  n_perm=n_perm, n_boot=n_boot, seed=seed)
    o = overall.row(0, named=True)
    return {
        "metric": "abs_dev = |p_female - 0.5| per prompt (l1 = 2 * abs_dev), each pair at its common n",
        "difference": "B - A",
        "mode": mode,
        "paired_on": on,
        "a": infos[0],
        "b": infos[1],
        "n_pairs": o["n_pairs"],
        "mean_abs_dev_a": o["mean_reference"],
        "mean_abs_dev_b": o["mean_level"],
        "mean_diff": o["mean_diff"],
        "diff_low": o["diff_low"],
        "diff_high": o["diff_high"],
        "p_value": o["p_value"],
        "test": "two-sided sign-flip permutation test on paired differences; paired-bootstrap 95% interval",
        "per_lang": [{k: r[k] for k in ("lang", "n_pairs", "mean_reference", "mean_level", "mean_diff",
                                        "diff_low", "diff_high", "p_value", "p_holm")}
                     for r in per_lang.iter_rows(named=True)],
    }


def compare_to_planted(run_dir: str | os.PathLike, classifier: str | None = None, *,
                       tolerance: float = 0.10, table=None) -> pl.DataFrame:
    """Per-prompt p̂_female of a world-model (or oracle) audit beside the planted share of
    ``configs/world/bias.yaml``: one row per (subject, lang, formulation) found in both, with
    n_female, n_labelled, p_female, Wilson ci_low / ci_high, planted, error = p̂ − planted,
    ``within`` = |error| <= tolerance, and ``planted_occupation_mean``: the planted share averaged
    over all the table's cells of that occupation (every language and wording), i.e. what a
    model that learned the occupation but not the language or wording would draw."""
    from magbig import stats
    from neobabel.world.bias import load_table

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
    from scipy.stats import binom

    if n <= 0:
        return 0.0
    # a hair of slack so that k/n exactly on the boundary counts, as in compare_to_planted
    lo = math.ceil(n * (p - tolerance) - 1e-9)
    hi = math.floor(n * (p + tolerance) + 1e-9)
    return float(binom.cdf(hi, n, p) - binom.cdf(lo - 1, n, p))


def expected_abs_error(n: int, p: float) -> float:
    """E|X/n − p| for X ~ Binomial(n, p): a *perfect* model's mean absolute error at this n."""
    from scipy.stats import binom

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
    from scipy.stats import t as student_t

    t = float(sums.mean() / (spread / math.sqrt(len(sums))))
    out["p_value"] = round(float(student_t.sf(t, len(sums) - 1)), 4)
    return out


def _cell_deviance(x: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Each cell's binomial deviance (the terms `_g_statistic` sums)."""
    return _g_statistic(np.asarray(x, float)[:, None], np.asarray(n, float)[:, None], np.asarray(p, float)[:, None])


@lru_cache(maxsize=4096)
def _expected_cell_deviance(n: int, p: float) -> float:
    """E[deviance] of one cell with X ~ Binomial(n, p), exactly (a sum over k = 0..n)."""
    from scipy.stats import binom

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
