"""Shards for job arrays (Kubernetes Indexed Job, Slurm arrays) and the merge of their run directories.

`neobabel generate --shard i/n` makes only the work units whose content key falls in shard i
(``int(key, 16) % n == i``): a partition that depends on nothing but the key, so n jobs started
with i = 0..n-1 make disjoint parts whose union is the whole run, whatever order or machine
they run on. Each shard writes its own run directory; ``neobabel merge OUT SHARD_DIR...``
joins them: same spec required, PNGs copied atomically (checked against their sha256), the
manifests' rows united, run.json recording the shards. Merging again changes nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from neobabel.errors import InputError
from neobabel.runs import (
    GENERATION_SCHEMA, RUN_FORMAT_VERSION, RunDir, WorkUnit, atomic_write_bytes, held_specs, image_key, locked,
    resolve_in_run, spec_differences,
)

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n, else InputError naming the fix."""
    m = _SHARD.match(text or "")
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise InputError(f"--shard must be I/N with 0 <= I < N (e.g. 0/4 for the first of four jobs), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def in_shard(key: str, index: int, count: int) -> bool:
    """Whether the image with this content key belongs to shard `index` of `count`."""
    return int(key, 16) % count == index


def shard_units(units: Sequence[WorkUnit], identity: dict, params: dict, index: int, count: int) -> list[WorkUnit]:
    """The units of shard `index` of `count` (all prompts sharing one image land in the same shard)."""
    return [u for u in units if in_shard(image_key(identity, u, params), index, count)]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_shard(path: Path) -> tuple[RunDir, dict, list[dict]]:
    run = RunDir(path)
    info = run.read_run_json()
    if not info:
        raise InputError(f"{path} is not a run directory (no run.json); give the --out of each shard")
    if info.get("status") != "complete":
        raise InputError(f"shard {path} is {info.get('status', 'unfinished')}, not complete; rerun its "
                         "command to finish it, then merge")
    return run, info, held_specs(info)


def merge_runs(out: str | Path, shard_dirs: Sequence[str | Path], *, drop_fields: Sequence[str] = ()) -> dict:
    """Merge complete shard run directories into `out` (idempotent); returns counts.

    Refused with one line (nothing written): a shard that is not a complete run directory,
    shards holding different specs, an `out` holding another spec, two shards whose PNGs of
    one key differ, shards of `--shard I/N` runs whose indices are not each of 0..N-1 once.
    `drop_fields`: run.json fields of the shards not copied to `out` (a command built on top
    writes its own once its own tables are merged).
    """
    if not shard_dirs:
        raise InputError("give at least one SHARD_DIR to merge")
    out_run = RunDir(out)
    shards = [_read_shard(Path(p)) for p in shard_dirs]
    first_path, specs = shard_dirs[0], shards[0][2]
    for path, (_, _, other) in zip(shard_dirs[1:], shards[1:]):
        if other != specs:
            diffs = "; ".join(spec_differences(specs[-1] if specs else {}, other[-1] if other else {}))
            raise InputError(f"shard {path} holds another spec than {first_path} ({diffs or 'specs differ'}); "
                             "merge only shards of one run")
    held = held_specs(out_run.read_run_json())
    if held and held != specs:
        diffs = "; ".join(spec_differences(held[-1], specs[-1] if specs else {}))
        raise InputError(f"{out} holds another spec than the shards ({diffs or 'specs differ'}); merge into a new OUT")
    if any(Path(p).resolve() == out_run.path.resolve() for p in shard_dirs):
        raise InputError(f"OUT {out} is one of the shards; merge into a new directory")
    check_shard_set([info.get("shard") for _, info, _ in shards], shard_dirs)

    rows: dict[tuple[str, str], dict] = {}
    sources: dict[str, tuple[Path, str]] = {}  # key -> (PNG, sha256)
    for path, (run, _, _) in zip(shard_dirs, shards):
        for row in run.load_manifest().iter_rows(named=True):
            src = resolve_in_run(run.path, row["path"])
            if not src.is_file():
                raise InputError(f"shard {path} lists {row['path']} but the file is missing; rerun its command")
            key = row["key"]
            if key in sources and sources[key][1] != row["sha256"]:
                raise InputError(f"shards disagree on image {key} (sha256 differs); they were not made "
                                 "by one spec, refusing to merge")
            sources[key] = (src, row["sha256"])
            rows.setdefault((key, row["prompt_id"]), row)

    copied = 0
    with locked(out_run):
        out_run.images.mkdir(parents=True, exist_ok=True)
        for key, (src, sha) in sorted(sources.items()):
            dest = out_run.images / f"{key}.png"
            if dest.is_file() and _sha(dest) == sha:
                continue
            data = src.read_bytes()
            if hashlib.sha256(data).hexdigest() != sha:
                raise InputError(f"{src} does not match its manifest's sha256; rerun that shard with --overwrite")
            atomic_write_bytes(dest, data)
            copied += 1
        existing = {(r["key"], r["prompt_id"]): r for r in out_run.load_manifest().iter_rows(named=True)}
        merged = {**existing, **{uid: existing.get(uid, r) for uid, r in rows.items()}}
        out_run.write_manifest(pl.DataFrame(list(merged.values()), schema=GENERATION_SCHEMA))
        out_run.write_run_json(_merged_info(shards, shard_dirs, len(merged), drop_fields))
    return {"shards": len(shards), "images": len(sources), "copied": copied, "rows": len(merged)}


def check_shard_set(shard_info: Sequence[dict | None], shard_dirs: Sequence[str | Path]) -> None:
    """Shards made with --shard I/N must be all N of them, each once: a merge of some of them
    would look like the whole run. Directories made without --shard are not checked."""
    marked = [(p, s) for p, s in zip(shard_dirs, shard_info) if isinstance(s, dict) and "count" in s]
    if not marked:
        return
    counts = {int(s["count"]) for _, s in marked}
    if len(counts) > 1:
        raise InputError(f"the shards were cut into different numbers of parts ({sorted(counts)}); "
                         "merge the shards of one --shard I/N run")
    count = counts.pop()
    seen: dict[int, str | Path] = {}
    for p, s in marked:
        i = int(s["index"])
        if i in seen:
            raise InputError(f"shard {i}/{count} is given twice ({seen[i]} and {p}); give each shard once")
        seen[i] = p
    missing = sorted(set(range(count)) - set(seen))
    if missing:
        raise InputError(f"shard(s) {', '.join(f'{i}/{count}' for i in missing)} missing from the merge; "
                         f"give all {count} shard directories (a partial merge would look like the whole run)")


def _merged_info(shards, shard_dirs, n_rows: int, drop_fields: Sequence[str] = ()) -> dict:
    """run.json of the merged run: the first shard's description, the shards it came from.

    Nothing in it depends on when the merge ran, so merging again rewrites the same bytes."""
    base = {k: v for k, v in shards[0][1].items()
            if k not in ("invocations", "shard", "stopped", "notes", "counts", "engine", *drop_fields)}
    finished = sorted(str(info.get("finished", "")) for _, info, _ in shards)
    base.update({
        "format_version": RUN_FORMAT_VERSION,
        "status": "complete",
        "finished": finished[-1] if finished else None,
        "counts": {"manifest_rows": n_rows},
        "merged_from": [{"path": str(Path(p).resolve()), "shard": info.get("shard"),
                         "engine": info.get("engine", "local"), "status": info.get("status"),
                         "manifest_rows": info.get("counts", {}).get("manifest_rows")}
                        for p, (_, info, _) in zip(shard_dirs, shards)],
    })
    return base
