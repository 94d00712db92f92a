"""Atomic files: every file is written to a temporary name and renamed, so it is either complete
or absent. Temporaries are named ``.<name>.tmp-<pid>``; only those of dead processes are removed."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import polars as pl


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
