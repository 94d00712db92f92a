"""An audit's spec: what ``configs/audits/*.yaml`` may say, how it is validated, and the seed
of every image slot.

:class:`AuditSpec` is the config file's schema (unknown fields are errors); :func:`make_spec`
and :func:`load_audit_config` validate and normalize it (languages, formulations, classifier
names). :func:`image_seed` is the seed scheme (``seeds: per_subject`` or ``shared``), and
:func:`audit_selection` the part of a spec that makes one audit differ from another (what a
run directory refuses to mix).
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from magbig.classify import get_classifier
from magbig.prompts import FORMULATIONS
from magbig.rundata import classifier_column_name
from neobabel.builtins import default_model
from neobabel.configfile import listed_mappings, read_yaml_mapping, resolve_config, validate_spec
from neobabel.errors import InputError
from neobabel.languages import normalize_lang
from neobabel.runs import RunDir

__all__ = [
    "SUBJECT_SEED_STRIDE",
    "AuditSpec",
    "ClassifierSpec",
    "audit_selection",
    "check_seed_scheme",
    "image_seed",
    "load_audit_config",
    "make_spec",
    "normalize_spec",
]


class ClassifierSpec(BaseModel):
    """One classifier of an audit: a backend name of :func:`magbig.classify.get_classifier`
    and its options (e.g. ``{name: deepface, options: {detector_backend: opencv}}``)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    def build(self, allow_pickle: bool = False):
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
    model: str = Field(default_factory=default_model)
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
        return listed_mappings(v, "name")

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


def check_seed_scheme(run: RunDir, spec: AuditSpec) -> None:
    """Resuming a run under another seed scheme would redo every image under new seeds."""
    earlier = run.read_run_json().get("audit")
    if not earlier:
        return
    # Audits recorded before the `seeds` field existed used shared seeds.
    was = earlier.get("seeds", "shared")
    if was != spec.seeds:
        raise InputError(f"run {run.path} was made with seeds: {was}, this audit asks for seeds: {spec.seeds}; "
                         f"resume it with --seeds {was} or write to a new --out")


def normalize_spec(spec: AuditSpec) -> AuditSpec:
    """Normalize languages and formulations (one-line InputErrors for unknown ones)."""
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
    names = [classifier_column_name(c.model_dump()) for c in spec.classifiers]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise InputError(f"two classifiers are named {dup!r}; give one an options.alias so their labels "
                         "stay apart")
    return spec.model_copy(update=updates) if updates else spec


def make_spec(data: dict, where: str = "audit spec") -> AuditSpec:
    return normalize_spec(validate_spec(data, AuditSpec, where))


def load_audit_config(path: str | os.PathLike, **overrides) -> AuditSpec:
    """Read and validate an audit YAML (a file, or a shipped config's name such as ``quick``);
    keyword overrides (None = not given) win over it."""
    path = resolve_config(path, "audits")
    data = read_yaml_mapping(path, "audit config")
    data.setdefault("name", path.stem)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return make_spec(data, where=f"audit config {path}")


def audit_selection(spec: AuditSpec, ps) -> dict:
    """What makes an audit this audit besides the model's identity and the key params (which
    :func:`generation_spec` holds): the prompt set and selection, n, seeds, face policy and
    classifiers. Not in it: name, batch_size, device, n_boot and allow_pickle (how it runs, loads
    and is reported)."""
    how = {"name", "batch_size", "device", "n_boot", "allow_pickle",
           # in the spec as the model's identity, the key params and batch_invariant
           "model", "steps", "guidance", "size", "scheduler", "fast_batching"}
    return {"audit": spec.model_dump(mode="json", exclude=how),
            "prompt_set": {"name": ps.name, "version": ps.version}}
