"""One writer at a time per run directory.

:func:`locked` holds a file lock (``.neobabel.lock``, the ``filelock`` package, released by the
kernel when its owner dies, kill -9 included) and records its owner in ``.neobabel.lock.json``.
A second writer is refused (:class:`RunDirInUse`); an owner file left by a dead process marks
its run ``interrupted``, and temporaries of dead processes are cleaned up.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from neobabel.errors import InputError
from neobabel.atomicfiles import atomic_write_json, clean_run_temp_files, pid_alive
from neobabel.rundir import RunDir, now_iso

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
