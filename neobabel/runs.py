"""Run directories: content keys, atomic writes, PNG metadata, parquet manifests, resume.

<run>/run.json             spec as run, package versions, status, invocations
<run>/images/<key>.png     PNG with text chunks: prompt, lang, seed, model, params, key
<run>/generations.parquet  one row per image

A PNG is written to a temporary name and renamed, so it is either complete or absent. The
PNG is the source of truth: its text chunks carry everything in its manifest row, so a run
killed between writing images and rewriting the manifest recovers those rows on resume
instead of regenerating the images.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import polars as pl
from PIL import Image, PngImagePlugin

from neobabel.errors import InputError
from neobabel.progress import progress_bar

RUN_FORMAT_VERSION = 1
KEY_LENGTH = 20
MANIFEST_FLUSH_SECONDS = 10.0

GENERATION_SCHEMA = {
    "key": pl.String, "prompt_id": pl.String, "lang": pl.String, "formulation": pl.String,
    "subject": pl.String, "text": pl.String, "seed": pl.Int64, "path": pl.String,
    "sha256": pl.String, "seconds": pl.Float64, "model": pl.String,
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


def image_key(identity: dict, unit: WorkUnit, params: dict) -> str:
    """Hash of everything that determines the pixels (not batch size: images do not depend on it)."""
    payload = {"model": identity["model"], "revision": identity["revision"], "mode": identity["mode"],
               "text": unit.text, "lang": unit.lang, "seed": unit.seed, "params": params}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:KEY_LENGTH]


def key_params(pipeline, params) -> dict:
    """The sampling params that enter image keys: the generation params plus the weights' dtype."""
    return {**params.as_dict(), "dtype": str(pipeline.dtype).replace("torch.", "")}


# -- atomic files -----------------------------------------------------------------------

def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def atomic_write_parquet(df: pl.DataFrame, path: Path) -> None:
    buf = io.BytesIO()
    df.write_parquet(buf)
    atomic_write_bytes(path, buf.getvalue())


def clean_temp_files(folder: Path) -> int:
    """Remove temporaries a killed process left behind (never complete files)."""
    n = 0
    if folder.is_dir():
        for p in folder.glob(".*.tmp-*"):
            p.unlink(missing_ok=True)
            n += 1
    return n


# -- PNG with metadata ------------------------------------------------------------------

def png_bytes(image: Image.Image, metadata: dict[str, str]) -> bytes:
    info = PngImagePlugin.PngInfo()
    for k, v in metadata.items():
        # iTXt (UTF-8): prompts are in any script.
        info.add_itxt(k, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def read_png_metadata(path: Path) -> dict[str, str]:
    with Image.open(path) as im:
        im.load()  # verifies the whole stream, so a truncated file is caught here
        return {k: v for k, v in im.text.items()}


# -- versions ---------------------------------------------------------------------------

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
            print(f"warning: {self.manifest_path} unreadable ({type(e).__name__}); rebuilding it from images",
                  file=sys.stderr)
            return pl.DataFrame(schema=GENERATION_SCHEMA)

    def write_manifest(self, df: pl.DataFrame) -> None:
        atomic_write_parquet(df.sort("key", "prompt_id"), self.manifest_path)


def _row(key: str, unit: WorkUnit, sha: str, seconds: float, model: str) -> dict:
    return {"key": key, "prompt_id": unit.prompt_id, "lang": unit.lang, "formulation": unit.formulation,
            "subject": unit.subject, "text": unit.text, "seed": unit.seed, "path": f"images/{key}.png",
            "sha256": sha, "seconds": seconds, "model": model}


@dataclass
class GenerationReport:
    run_dir: Path
    total: int
    already_done: int
    recovered: int
    generated: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.generated / self.seconds if self.seconds > 0 else float("nan")


def plan(run: RunDir, units: Sequence[WorkUnit], identity: dict, params: dict,
         overwrite: bool = False):
    """Split units into done rows and images still to make; recover orphan PNGs.

    Rows are per (key, prompt_id): two prompts with identical text, language and seed (e.g. a
    language whose feminine and direct forms coincide) share one image but keep a row each.
    Returns (done rows by (key, prompt_id), pending [(key, unit)] with unique keys, units
    waiting on each pending key, recovered count, number of distinct units).
    """
    clean_temp_files(run.images)
    clean_temp_files(run.path)
    existing = {(r["key"], r["prompt_id"]): r for r in run.load_manifest().iter_rows(named=True)}
    done: dict[tuple[str, str], dict] = {}
    pending: list[tuple[str, WorkUnit]] = []
    waiting: dict[str, list[WorkUnit]] = {}
    valid: dict[str, str | None] = {}  # key -> sha256 of a complete PNG of this run, or None
    recovered = 0
    seen: set[tuple[str, str]] = set()
    for unit in units:
        key = image_key(identity, unit, params)
        uid = (key, unit.prompt_id)
        if uid in seen:
            continue
        seen.add(uid)
        if key in waiting:  # image already scheduled for another prompt id
            waiting[key].append(unit)
            continue
        if key not in valid:
            valid[key] = None if overwrite else _valid_png_sha(run.images / f"{key}.png", key)
        sha = valid[key]
        if sha is None:
            pending.append((key, unit))
            waiting[key] = [unit]
            continue
        if uid in existing and existing[uid].get("sha256") == sha:
            done[uid] = {**existing[uid], **_unit_fields(unit)}
        else:  # written but not yet in the manifest when the last run stopped
            seconds = next((r["seconds"] for (k, _), r in existing.items() if k == key), float("nan"))
            done[uid] = _row(key, unit, sha, seconds, identity["model"])
            recovered += 1
    # Keep rows of other units already in this run dir (e.g. an earlier, different command).
    for uid, row in existing.items():
        if uid not in seen and (run.images / f"{uid[0]}.png").is_file():
            done.setdefault(uid, row)
    return done, pending, waiting, recovered, len(seen)


def _valid_png_sha(png: Path, key: str) -> str | None:
    """sha256 of a complete PNG written by this run for `key`, else None (regenerate it)."""
    if not png.is_file():
        return None
    try:
        if read_png_metadata(png).get("key") != key:
            return None
    except Exception:
        return None  # truncated or foreign
    return hashlib.sha256(png.read_bytes()).hexdigest()


def _unit_fields(unit: WorkUnit) -> dict:
    return {"prompt_id": unit.prompt_id, "lang": unit.lang, "formulation": unit.formulation,
            "subject": unit.subject, "text": unit.text, "seed": unit.seed}


def generate_into_run(pipeline, units: Sequence[WorkUnit], run: RunDir, params, *, batch_size: int = 1,
                      overwrite: bool = False, progress: bool = True, spec: dict | None = None,
                      on_image: Callable[[str, WorkUnit], None] | None = None) -> GenerationReport:
    """Generate every unit not already in the run directory; resumable at any point."""
    from neobabel import __version__

    if batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch_size}")
    identity = pipeline.identity()
    param_dict = key_params(pipeline, params)
    run.images.mkdir(parents=True, exist_ok=True)
    done, pending, waiting, recovered, n_units = plan(run, units, identity, param_dict, overwrite)
    info = run.read_run_json()
    started = now_iso()
    info.update({
        "format_version": RUN_FORMAT_VERSION,
        "created": info.get("created", started),
        "status": "running",
        "model": identity,
        "params": param_dict,
        "attention": pipeline.attention,
        "batch_invariant": pipeline.batch_invariant,
        "device": str(pipeline.device),
        "versions": package_versions(),
        **(spec or {}),
    })
    info.setdefault("invocations", []).append(
        {"started": started, "argv": sys.argv, "pending": len(pending), "already_done": len(done)})
    run.write_run_json(info)
    run.write_manifest(pl.DataFrame(list(done.values()), schema=GENERATION_SCHEMA))

    t0 = time.perf_counter()
    generated = 0
    last_flush = time.perf_counter()
    status = "failed"
    try:
        with progress_bar("generating", len(pending), enabled=progress, unit="img", started=t0) as advance:
            for start in range(0, len(pending), batch_size):
                batch = pending[start : start + batch_size]
                tb = time.perf_counter()
                images = pipeline.generate([u.text for _, u in batch], [u.lang for _, u in batch],
                                           [u.seed for _, u in batch], params, batch_size=batch_size)
                per_image = (time.perf_counter() - tb) / len(batch)
                for (key, unit), image in zip(batch, images):
                    meta = {"key": key, "prompt": unit.text, "lang": unit.lang, "seed": str(unit.seed),
                            "prompt_id": unit.prompt_id, "model": identity["model"],
                            "revision": identity["revision"], "params": param_dict,
                            "seconds": f"{per_image:.4f}", "software": f"neobabel {__version__}"}
                    data = png_bytes(image, meta)
                    atomic_write_bytes(run.images / f"{key}.png", data)
                    sha = hashlib.sha256(data).hexdigest()
                    for sharer in waiting[key]:
                        done[(key, sharer.prompt_id)] = _row(key, sharer, sha, per_image, identity["model"])
                    generated += 1
                    if on_image is not None:
                        on_image(key, unit)
                advance(len(batch))
                if time.perf_counter() - last_flush > MANIFEST_FLUSH_SECONDS:
                    run.write_manifest(pl.DataFrame(list(done.values()), schema=GENERATION_SCHEMA))
                    last_flush = time.perf_counter()
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        elapsed = time.perf_counter() - t0
        run.write_manifest(pl.DataFrame(list(done.values()), schema=GENERATION_SCHEMA))
        info["status"] = status
        info["finished" if status == "complete" else "stopped"] = now_iso()
        info["counts"] = {"units": n_units, "manifest_rows": len(done)}
        info["invocations"][-1].update({"generated": generated, "seconds": round(elapsed, 3),
                                        "status": status})
        run.write_run_json(info)
    waiting_units = sum(len(v) for v in waiting.values())
    return GenerationReport(run.path, n_units, n_units - waiting_units - recovered, recovered, generated,
                            elapsed)


def units_for(prompts: Iterable[tuple[str, str, str]], n: int, seed: int) -> list[WorkUnit]:
    """(prompt_id, text, lang) x n images with seeds seed .. seed+n-1."""
    return [WorkUnit(pid, text, lang, seed + i) for pid, text, lang in prompts for i in range(n)]
