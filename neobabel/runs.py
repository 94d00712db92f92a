"""Run directories: content keys, atomic writes, PNG metadata, parquet manifests, resume.

<run>/run.json             spec as run, package versions, status, invocations
<run>/images/<key>.png     PNG with text chunks: prompt, lang, seed, model, params, key
<run>/generations.parquet  one row per image

A PNG is written to a temporary name and renamed, so it is either complete or absent. The
PNG is the source of truth: its text chunks carry everything in its manifest row, so a run
killed between writing images and rewriting the manifest recovers those rows on resume
instead of regenerating the images: a lost or unreadable manifest is rebuilt from every PNG.

One run directory holds one spec (:func:`generation_spec`: the command, the model's identity
and the params that enter image keys; for audits also the prompt selection). Another spec is
refused before anything is written (:class:`RunSpecMismatch`) unless it is added deliberately
(``add_to_run``; then ``run.json`` lists every spec under ``specs``). Adding prompts or seeds
to a `neobabel generate` run is not a spec change: such runs are meant to be extended.

One writer at a time: :func:`locked` holds a file lock (``.neobabel.lock``, the ``filelock``
package, released by the kernel when its owner dies, kill -9 included) and records its owner
in ``.neobabel.lock.json``. A second writer is refused (:class:`RunDirInUse`); an owner file
left by a dead process marks its run ``interrupted``. Temporary files are named
``.<name>.tmp-<pid>`` and only those of dead processes are cleaned up.

PNG bytes are a function of the spec and the unit alone (no timing in them), so two runs of
one spec give byte-identical images and the manifest's sha256 verifies one run against another.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import platform
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
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


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (ours counts as not running: our
    own writes are synchronous, so a temporary of ours seen here is a failed write's leftover)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except OverflowError:
        return False
    return True


def _temp_owner(path: Path) -> int | None:
    """The pid in a temporary's name `.<name>.tmp-<pid>`, or None if it is not one of ours."""
    _, sep, pid = path.name.rpartition(".tmp-")
    return int(pid) if sep and path.name.startswith(".") and pid.isdigit() else None


def clean_temp_files(folder: Path) -> int:
    """Remove temporaries a killed process left behind in `folder` (never complete files, never
    the temporary of a process still running: it is about to rename it)."""
    n = 0
    if folder.is_dir():
        for p in folder.glob(".*.tmp-*"):
            owner = _temp_owner(p)
            if owner is not None and not pid_alive(owner):
                p.unlink(missing_ok=True)
                n += 1
    return n


def clean_run_temp_files(root: Path) -> int:
    """clean_temp_files in a run directory and every folder below it (images, label parts, reports)."""
    return sum(clean_temp_files(Path(folder)) for folder, _, _ in os.walk(root))


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


# -- one spec per run directory --------------------------------------------------------

class RunSpecMismatch(InputError):
    """The run directory holds another spec than the command asks for."""


def generation_spec(pipeline, params: dict, command: str = "generate", **selection) -> dict:
    """The spec a run directory holds one of: the command, the model's identity, the params that
    enter image keys, whether the batch-invariant kernels made the pixels, and `selection`
    (for audits: the prompt selection). Prompts and seeds of `neobabel generate` are not in
    it: a generate run is meant to be extended with more of them. Returned as run.json reads
    it back (JSON types), so specs compare with ==."""
    identity = pipeline.identity()
    spec = {"command": command, "model": identity["model"], "revision": identity["revision"],
            "mode": identity["mode"], "params": params, "batch_invariant": bool(pipeline.batch_invariant),
            **selection}
    return json.loads(json.dumps(spec, sort_keys=True, ensure_ascii=False, default=str))


def held_specs(info: dict) -> list[dict]:
    """The specs a run.json records (a run.json from before `specs`: its model and params)."""
    if isinstance(info.get("specs"), list):
        return info["specs"]
    model, params = info.get("model"), info.get("params")
    if info.get("audit") or not isinstance(model, dict) or not isinstance(params, dict):
        return []  # nothing to hold the command to (old audits keep their seed-scheme check)
    return [{"command": info.get("command", "generate"), "model": model.get("model"),
             "revision": model.get("revision"), "mode": model.get("mode"), "params": params,
             "batch_invariant": bool(info.get("batch_invariant", True))}]


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _show(v) -> str:
    if v is None:
        return "(none)"
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def spec_differences(old: dict, new: dict) -> list[str]:
    """`field: old -> new` for every field that differs (nested fields dotted, e.g. params.steps)."""
    a, b = _flatten(old), _flatten(new)
    return [f"{k}: {_show(a.get(k))} -> {_show(b.get(k))}" for k in sorted(a.keys() | b.keys())
            if a.get(k) != b.get(k)]


def check_run_spec(run: RunDir, spec: dict, *, add_to_run: bool = False) -> list[dict]:
    """Refuse (RunSpecMismatch, writing nothing) a spec the run directory does not hold, unless
    `add_to_run` adds it deliberately. Only `neobabel generate` runs take several specs: an
    audit's tables must hold that audit's rows alone. Returns the specs held so far."""
    held = held_specs(run.read_run_json())
    if not held or spec in held:
        return held
    can_add = spec.get("command") == "generate" and all(s.get("command") == "generate" for s in held)
    if add_to_run and can_add:
        return held
    diffs = "; ".join(spec_differences(held[-1], spec))
    way_out = ("write to a new --out, or pass --add-to-run to add this spec to it deliberately" if can_add
               else "write to a new --out (only `neobabel generate` runs take --add-to-run)")
    raise RunSpecMismatch(f"run directory {run.path} holds another spec ({diffs}); {way_out}")


# -- one writer at a time ------------------------------------------------------------------

LOCK_NAME = ".neobabel.lock"
LOCK_OWNER_NAME = ".neobabel.lock.json"


class RunDirInUse(InputError):
    """Another running process holds the run directory's lock."""


_held: dict[Path, list] = {}  # resolved run path -> [FileLock, depth]: re-entrant in one process


def lock_owner(run_path: Path) -> dict:
    """The owner record of a run directory's lock: pid, host, started, argv ({} if none)."""
    try:
        owner = json.loads((Path(run_path) / LOCK_OWNER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _owner_is_alive(owner: dict) -> bool:
    """False only when the owner is known dead (same host, pid gone); other hosts cannot be asked."""
    if not isinstance(owner.get("pid"), int):
        return False
    return owner.get("host") != socket.gethostname() or pid_alive(owner["pid"])


def _in_use_message(path: Path, owner: dict) -> str:
    who = "another process"
    if owner and _owner_is_alive(owner):  # a dead one is the record the new holder is replacing
        host = "" if owner.get("host") == socket.gethostname() else f" on {owner.get('host')}"
        who = f"pid {owner['pid']}{host} (started {owner.get('started', '?')})"
    return f"run directory {path} is in use by {who}; wait for it to finish or use another --out"


def _mark_interrupted(run: RunDir, previous: dict) -> None:
    """While we hold the lock nobody else runs here: a run.json still saying `running` was left
    by a process that died (kill -9, power loss). Say so, in its status and its invocation."""
    info = run.read_run_json()
    stale = [k for k in ("status", "audit_status") if info.get(k) == "running"]
    if not stale:
        return
    for k in stale:
        info[k] = "interrupted"
    owner = f"pid {previous['pid']}" if isinstance(previous.get("pid"), int) else "its process"
    note = f"{owner} died without closing the run; found by pid {os.getpid()} at {now_iso()}"
    invocations = info.get("invocations") or []
    if invocations and invocations[-1].get("status") in (None, "running"):
        invocations[-1].update({"status": "interrupted", "note": note})
    else:
        info.setdefault("notes", []).append(note)
    run.write_run_json(info)


@contextmanager
def locked(run: RunDir) -> Iterator[None]:
    """Hold the run directory's lock (re-entrant within one process), or raise RunDirInUse.

    The lock is an flock (filelock): the kernel releases it when its owner dies, so a lock is
    never stale; the owner record (pid, host, start, argv) names the holder to a refused
    process. Taking the lock: mark a run left `running` by a dead owner `interrupted`, and
    remove temporaries of dead processes. Releasing it removes both files.
    """
    from filelock import FileLock, Timeout

    key = run.path.resolve()
    if key in _held:
        _held[key][1] += 1
        try:
            yield
        finally:
            _held[key][1] -= 1
        return
    run.path.mkdir(parents=True, exist_ok=True)
    lock = FileLock(run.path / LOCK_NAME, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunDirInUse(_in_use_message(run.path, lock_owner(run.path))) from None
    _held[key] = [lock, 1]
    try:
        previous = lock_owner(run.path)  # still there: its owner died holding the lock
        atomic_write_json(run.path / LOCK_OWNER_NAME, {"pid": os.getpid(), "host": socket.gethostname(),
                                                       "started": now_iso(), "argv": sys.argv})
        _mark_interrupted(run, previous)
        clean_run_temp_files(run.path)
        yield
    finally:
        del _held[key]
        (run.path / LOCK_OWNER_NAME).unlink(missing_ok=True)
        # Unlinked before release: a process that opened this inode meanwhile sees it gone and retries.
        (run.path / LOCK_NAME).unlink(missing_ok=True)
        lock.release()


# -- generation ------------------------------------------------------------------------

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
                            meta.get("subject"), meta.get("formulation"))
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
            "subject": unit.subject, "text": unit.text, "seed": unit.seed}


def png_metadata(key: str, unit: WorkUnit, identity: dict, params: dict) -> dict:
    """A PNG's text chunks: everything its manifest row needs, nothing that varies between runs
    of one spec (no timing), so identical specs give byte-identical files."""
    from neobabel import __version__

    meta = {"key": key, "prompt": unit.text, "lang": unit.lang, "seed": str(unit.seed),
            "prompt_id": unit.prompt_id, "model": identity["model"], "revision": identity["revision"],
            "params": params}
    meta.update({k: v for k, v in (("subject", unit.subject), ("formulation", unit.formulation)) if v is not None})
    meta["software"] = f"neobabel {__version__}"
    return meta


def generate_into_run(pipeline, units: Sequence[WorkUnit], run: RunDir, params, *, batch_size: int = 1,
                      overwrite: bool = False, progress: bool = True, spec: dict | None = None,
                      on_image: Callable[[str, WorkUnit], None] | None = None,
                      run_spec: dict | None = None, add_to_run: bool = False) -> GenerationReport:
    """Generate every unit not already in the run directory; resumable at any point.

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
        specs = held if run_spec in held else [*held, run_spec]
        return _generate(pipeline, units, run, params, param_dict, specs, specs.index(run_spec),
                         batch_size=batch_size, overwrite=overwrite, progress=progress, spec=spec,
                         on_image=on_image)


def _generate(pipeline, units, run: RunDir, params, param_dict: dict, specs: list[dict], spec_index: int, *,
              batch_size: int, overwrite: bool, progress: bool, spec: dict | None,
              on_image: Callable[[str, WorkUnit], None] | None) -> GenerationReport:
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
            for start in range(0, len(pending), batch_size):
                batch = pending[start : start + batch_size]
                tb = time.perf_counter()
                images = pipeline.generate([u.text for _, u in batch], [u.lang for _, u in batch],
                                           [u.seed for _, u in batch], params, batch_size=batch_size)
                per_image = (time.perf_counter() - tb) / len(batch)  # kept in the manifest only
                for (key, unit), image in zip(batch, images):
                    data = png_bytes(image, png_metadata(key, unit, identity, param_dict))
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
