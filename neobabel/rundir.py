"""What a run directory holds and where: work units and their content keys, the manifest schema,
paths confined to the run, package versions, and :class:`RunDir` itself."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import logging
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import polars as pl

from neobabel.atomicfiles import atomic_write_json, atomic_write_parquet
from neobabel.errors import InputError

logger = logging.getLogger(__name__)

RUN_FORMAT_VERSION = 1
KEY_LENGTH = 20

GENERATION_SCHEMA = {
    "key": pl.String, "prompt_id": pl.String, "lang": pl.String, "formulation": pl.String,
    "subject": pl.String, "text": pl.String, "seed": pl.Int64, "path": pl.String,
    "sha256": pl.String, "seconds": pl.Float64, "model": pl.String,
    "translation": pl.String,  # translate mode: the English text generated from; null otherwise
}

VERSIONED_PACKAGES = ("neobabel", "torch", "diffusers", "transformers", "tokenizers", "safetensors",
                      "numpy", "polars", "pillow", "xformers", "deepface")


@dataclass(frozen=True)
class WorkUnit:
    """One image to make: everything about it except the model and the sampling params."""

    prompt_id: str
    text: str
    lang: str
    seed: int
    subject: str | None = None
    formulation: str | None = None
    # The English text the backbone was given, in translate mode (neobabel.translate); None otherwise.
    translation: str | None = None


def units_for(prompts: Iterable[tuple[str, str, str]], n: int, seed: int) -> list[WorkUnit]:
    """(prompt_id, text, lang) x n images with seeds seed .. seed+n-1."""
    return [WorkUnit(pid, text, lang, seed + i) for pid, text, lang in prompts for i in range(n)]


def image_key(identity: dict, unit: WorkUnit, params: dict) -> str:
    """Hash of everything that determines the pixels (not batch size: images do not depend on it)."""
    payload = {"model": identity["model"], "revision": identity["revision"], "mode": identity["mode"],
               "text": unit.text, "lang": unit.lang, "seed": unit.seed, "params": params}
    if unit.translation is not None:  # translate mode: the pixels follow the English text
        payload["translation"] = unit.translation
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:KEY_LENGTH]


def key_params(pipeline, params) -> dict:
    """The sampling params that enter image keys: the generation params plus the weights' dtype."""
    return {**params.as_dict(), "dtype": str(pipeline.dtype).replace("torch.", "")}


# -- paths inside a run ----------------------------------------------------------------

class PathOutsideRunError(InputError):
    """A manifest path that leaves its run directory; such a file is never opened."""


def resolve_in_run(run_dir: str | Path, rel_path: str | os.PathLike | None) -> Path:
    """The file a manifest `path` names, symlinks resolved, confined to the run directory.

    Manifests hold relative paths (images/<key>.png). An absolute path, a `..` that climbs
    out, or a symlink whose target lies outside the resolved run directory raises
    PathOutsideRunError: a copied or hand-edited run must not make us read other files.
    """
    root = Path(run_dir).resolve()
    text = "" if rel_path is None else os.fspath(rel_path)
    if not text.strip():
        raise PathOutsideRunError("empty image path in the manifest")
    if os.path.isabs(text):
        raise PathOutsideRunError(f"path outside the run directory: {text!r} is absolute")
    try:
        target = (root / text).resolve()
    except (OSError, RuntimeError) as e:  # a symlink loop: where it points cannot be known
        raise PathOutsideRunError(f"image path {text!r} cannot be resolved ({e})") from None
    if target == root or not target.is_relative_to(root):
        raise PathOutsideRunError(f"path outside the run directory: {text!r} resolves to {target}")
    return target


# -- versions and times -----------------------------------------------------------------

def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# -- the run directory ------------------------------------------------------------------

class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"--out {self.path} exists and is not a directory; choose another path")

    @property
    def images(self) -> Path:
        return self.path / "images"

    @property
    def manifest_path(self) -> Path:
        return self.path / "generations.parquet"

    @property
    def run_json_path(self) -> Path:
        return self.path / "run.json"

    def read_run_json(self) -> dict:
        if not self.run_json_path.is_file():
            return {}
        try:
            return json.loads(self.run_json_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise InputError(f"{self.run_json_path} is not valid JSON; move it away to start the run afresh") from None

    def write_run_json(self, data: dict) -> None:
        atomic_write_json(self.run_json_path, data)

    def load_manifest(self) -> pl.DataFrame:
        if not self.manifest_path.is_file():
            return pl.DataFrame(schema=GENERATION_SCHEMA)
        try:
            return pl.read_parquet(self.manifest_path)
        except Exception as e:  # a foreign or damaged file: rebuilt from the PNGs below
            logger.warning("%s unreadable (%s); rebuilding it from images", self.manifest_path, type(e).__name__)
            return pl.DataFrame(schema=GENERATION_SCHEMA)

    def write_manifest(self, df: pl.DataFrame) -> None:
        atomic_write_parquet(df.sort("key", "prompt_id"), self.manifest_path)
