"""Generating into a run directory, resumable at any point.

:func:`plan` splits the work into rows already done and images still to make, recovering PNGs
written after the manifest's last flush (the PNG is the source of truth: its text chunks carry
its manifest row). :func:`generate_into_run` holds the lock, checks the spec, and writes each
image atomically, flushing the manifest every few seconds and at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from neobabel.atomicfiles import atomic_write_bytes
from neobabel.errors import InputError
from neobabel.pngmeta import png_bytes, png_metadata, read_png_metadata
from neobabel.progress import progress_bar
from neobabel.rundir import (
    GENERATION_SCHEMA, RUN_FORMAT_VERSION, RunDir, WorkUnit, image_key, key_params, now_iso, package_versions,
)
from neobabel.runlock import locked
from neobabel.runspec import check_run_spec, generation_spec

MANIFEST_FLUSH_SECONDS = 10.0

# An engine's way to make the pending batches: batches in, write_batch results out (any order).
Runner = Callable[[list[list[tuple[str, WorkUnit]]]], Iterable[list[tuple[str, WorkUnit, str, float]]]]


def _row(key: str, unit: WorkUnit, sha: str, seconds: float, model: str) -> dict:
    """One generations.parquet row (GENERATION_SCHEMA)."""
    return {"key": key, "prompt_id": unit.prompt_id, "lang": unit.lang, "formulation": unit.formulation,
            "subject": unit.subject, "text": unit.text, "seed": unit.seed, "path": f"images/{key}.png",
            "sha256": sha, "seconds": seconds, "model": model, "translation": unit.translation}


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
         overwrite: bool = False, specs: Sequence[dict] = ()):
    """Split units into done rows and images still to make; recover orphan PNGs.

    Rows are per (key, prompt_id): two prompts with identical text, language and seed (e.g. a
    language whose feminine and direct forms coincide) share one image but keep a row each.
    Every other PNG of one of the run's `specs` that has no manifest row (an unreadable or
    stale manifest) gets its row back from its own metadata.
    Returns (done rows by (key, prompt_id), pending [(key, unit)] with unique keys, units
    waiting on each pending key, recovered count, number of distinct units).
    """
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
    # Keep rows of other units already in this run dir (e.g. earlier prompts of a generate run).
    for uid, row in existing.items():
        if uid not in seen and (run.images / f"{uid[0]}.png").is_file():
            done.setdefault(uid, row)
    done.update(_rows_from_orphan_pngs(run, {k for k, _ in done} | set(waiting), specs))
    return done, pending, waiting, recovered, len(seen)


def _rows_from_orphan_pngs(run: RunDir, known: set[str], specs: Sequence[dict]) -> dict:
    """Manifest rows rebuilt from the metadata of PNGs no row names, if one of `specs` made them."""
    made_by = [(s.get("model"), s.get("revision"), s.get("params")) for s in specs]
    rows = {}
    for png in sorted(run.images.glob("*.png")) if run.images.is_dir() else []:
        if png.stem in known:
            continue
        try:
            meta = read_png_metadata(png)
            origin = (meta.get("model"), meta.get("revision"), json.loads(meta.get("params", "null")))
            unit = WorkUnit(meta["prompt_id"], meta["prompt"], meta["lang"], int(meta["seed"]),
                            meta.get("subject"), meta.get("formulation"), meta.get("translation"))
        except Exception:
            continue  # truncated or foreign: not an image of this run
        if meta.get("key") == png.stem and origin in made_by:
            sha = hashlib.sha256(png.read_bytes()).hexdigest()
            rows[(png.stem, unit.prompt_id)] = _row(png.stem, unit, sha, float("nan"), origin[0])
    return rows


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
            "subject": unit.subject, "text": unit.text, "seed": unit.seed, "translation": unit.translation}


def generate_into_run(pipeline, units: Sequence[WorkUnit], run: RunDir, params, *, batch_size: int = 1,
                      overwrite: bool = False, progress: bool = True, spec: dict | None = None,
                      on_image: Callable[[str, WorkUnit], None] | None = None,
                      run_spec: dict | None = None, add_to_run: bool = False,
                      runner: Runner | None = None) -> GenerationReport:
    """Generate every unit not already in the run directory; resumable at any point.

    `runner`: how the pending batches are made (an engine, e.g. neobabel.engines' Ray actors):
    called once with the list of batches of (key, unit), it yields the :func:`write_batch`
    results of each batch as it finishes, in any order. Default: this process, in order.

    `spec`: extra fields for run.json (this command's description). `run_spec`: the spec the
    directory must hold (default :func:`generation_spec` of the pipeline and params); another
    one is refused before anything is written, unless `add_to_run`. Holds the directory's lock.
    """
    if batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch_size}")
    param_dict = key_params(pipeline, params)
    if run_spec is None:
        run_spec = generation_spec(pipeline, param_dict, (spec or {}).get("command", "generate"))
    check_run_spec(run, run_spec, add_to_run=add_to_run)  # before the lock: a refusal writes nothing
    with locked(run):
        held = check_run_spec(run, run_spec, add_to_run=add_to_run)  # another writer may have just finished
        if getattr(pipeline, "translator", None) is not None:
            # translate mode: every unit's English text is known (and keyed) before planning,
            # translated in batches and cached in the run directory
            units = pipeline.translate_units(units, run.path)
        specs = held if run_spec in held else [*held, run_spec]
        return _generate(pipeline, units, run, params, param_dict, specs, specs.index(run_spec),
                         batch_size=batch_size, overwrite=overwrite, progress=progress, spec=spec,
                         on_image=on_image, runner=runner)


def write_batch(pipeline, batch: Sequence[tuple[str, WorkUnit]], images_dir: Path, params, param_dict: dict,
                batch_size: int) -> list[tuple[str, WorkUnit, str, float]]:
    """Generate one batch of (key, unit) and write each PNG atomically; [(key, unit, sha256, seconds)].

    The one place a PNG of a run is made: the local loop and every engine's worker call it, so
    an image's bytes do not depend on where it was made."""
    return list(_iter_written(pipeline, batch, images_dir, params, param_dict, batch_size))


def _iter_written(pipeline, batch, images_dir: Path, params, param_dict: dict,
                  batch_size: int) -> Iterator[tuple[str, WorkUnit, str, float]]:
    """write_batch one image at a time: each result is yielded right after its PNG is written."""
    identity = pipeline.identity()
    tb = time.perf_counter()
    # translate mode: the unit carries its English text (translated before planning)
    images = pipeline.generate([u.text if u.translation is None else u.translation for _, u in batch],
                               [u.lang if u.translation is None else "en" for _, u in batch],
                               [u.seed for _, u in batch], params, batch_size=batch_size)
    per_image = (time.perf_counter() - tb) / len(batch)  # kept in the manifest only
    for (key, unit), image in zip(batch, images):
        data = png_bytes(image, png_metadata(key, unit, identity, param_dict))
        atomic_write_bytes(Path(images_dir) / f"{key}.png", data)
        yield key, unit, hashlib.sha256(data).hexdigest(), per_image


def _generate(pipeline, units, run: RunDir, params, param_dict: dict, specs: list[dict], spec_index: int, *,
              batch_size: int, overwrite: bool, progress: bool, spec: dict | None,
              on_image: Callable[[str, WorkUnit], None] | None, runner: Runner | None = None) -> GenerationReport:
    identity = pipeline.identity()
    run.images.mkdir(parents=True, exist_ok=True)
    done, pending, waiting, recovered, n_units = plan(run, units, identity, param_dict, overwrite, specs)
    info = run.read_run_json()
    started = now_iso()
    info.update({
        "format_version": RUN_FORMAT_VERSION,
        "created": info.get("created", started),
        "status": "running",
        "specs": specs,
        "model": identity,
        "params": param_dict,
        "attention": pipeline.attention,
        "batch_invariant": pipeline.batch_invariant,
        "device": str(pipeline.device),
        "weights": getattr(pipeline, "weights", None),  # safetensors only, or which pickles were allowed
        "versions": package_versions(),
        **(spec or {}),
    })
    info.setdefault("invocations", []).append(
        {"started": started, "argv": sys.argv, "pid": os.getpid(), "host": socket.gethostname(),
         "spec": spec_index, "pending": len(pending), "already_done": len(done)})
    run.write_run_json(info)
    run.write_manifest(pl.DataFrame(list(done.values()), schema=GENERATION_SCHEMA))

    t0 = time.perf_counter()
    generated = 0
    last_flush = time.perf_counter()
    status = "failed"
    try:
        with progress_bar("generating", len(pending), enabled=progress, unit="img", started=t0) as advance:
            batches = [pending[start : start + batch_size] for start in range(0, len(pending), batch_size)]
            if runner is None:
                finished = ([written] for batch in batches  # row by row, as each PNG lands
                            for written in _iter_written(pipeline, batch, run.images, params, param_dict,
                                                         batch_size))
            else:
                finished = runner(batches)
            for results in finished:  # batches in any order (a runner may finish them out of order)
                for key, unit, sha, per_image in results:
                    for sharer in waiting[key]:
                        done[(key, sharer.prompt_id)] = _row(key, sharer, sha, per_image, identity["model"])
                    generated += 1
                    if on_image is not None:
                        on_image(key, unit)
                advance(len(results))
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
