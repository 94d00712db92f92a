"""Checks the commands run before they load a model or write anything.

Bad sizes, step counts or output paths used to surface after seconds of model loading, or
after the run directory existed (a 65536x65536 image failed allocating memory; -n 1000000000
hung building its work list). Everything here is cheap and raises InputError (exit 2, one
line naming the value and the fix).

Bounds keep honest runs honest, not huge runs impossible: `--no-limits` lifts the upper bounds
(never the checks that make a value meaningful: sizes stay multiples of 8, guidance finite).
"""

from __future__ import annotations

import logging

import math
import os
from pathlib import Path

from neobabel._logging import muted_transformers
from neobabel.errors import InputError
from neobabel.modelfolder import SCHEDULERS

MAX_IMAGES_PER_PROMPT = 100_000
MAX_UNITS = 10_000_000
MAX_SIDE = 4096
MAX_STEPS = 1000
MAX_BATCH_SIZE = 4096
NO_LIMITS_HINT = "pass --no-limits for a deliberately huge run"


logger = logging.getLogger(__name__)

def check_at_least_one(flag: str, value: int) -> None:
    if value < 1:
        raise InputError(f"{flag} must be at least 1, got {value}")


def check_count(flag: str, value: int, maximum: int, *, no_limits: bool = False) -> None:
    """1 <= value <= maximum (the maximum lifted by --no-limits)."""
    check_at_least_one(flag, value)
    if value > maximum and not no_limits:
        raise InputError(f"{flag} {value:,} is above the limit of {maximum:,}; lower it, or {NO_LIMITS_HINT}")


def check_units(n_prompts: int, images_per_prompt: int, *, no_limits: bool = False) -> int:
    """The number of images a run plans (prompts x n), bounded before any list is built."""
    total = n_prompts * images_per_prompt
    if total > MAX_UNITS and not no_limits:
        raise InputError(f"{n_prompts:,} prompts x {images_per_prompt:,} images = {total:,} images, above the "
                         f"limit of {MAX_UNITS:,}; use fewer prompts or a smaller -n, or {NO_LIMITS_HINT}")
    return total


def parse_and_check_size(value: str, *, no_limits: bool = False, flag: str = "--size") -> tuple[int, int]:
    """'512x512' or '512' -> (width, height), each a multiple of 8 in [8, MAX_SIDE]."""
    from neobabel.pipeline import parse_size  # heavy: torch; the size syntax lives with the pipeline

    width, height = parse_size(value)
    setting = flag if flag.startswith("--") else f"{flag}:"  # a flag, or a config field
    for name, side in (("width", width), ("height", height)):
        if side < 8 or side % 8:
            raise InputError(f"{flag} {value}: image {name} must be a positive multiple of 8, got {side} "
                             f"(e.g. {setting} 512x512)")
        if side > MAX_SIDE and not no_limits:
            raise InputError(f"{flag} {value}: image {name} {side} is above the limit of {MAX_SIDE}; "
                             f"use e.g. {setting} 1024x1024, or {NO_LIMITS_HINT}")
    return width, height


def check_steps(steps: int, *, no_limits: bool = False, flag: str = "--steps") -> None:
    check_count(flag, steps, MAX_STEPS, no_limits=no_limits)


def check_guidance(guidance: float, flag: str = "--guidance") -> None:
    if not math.isfinite(guidance) or guidance < 0:
        raise InputError(f"{flag} must be a finite number >= 0, got {guidance}")


def check_scheduler(name: str, steps: int | None) -> None:
    """A known sampler name; with explicit --steps, enough steps for it (PNDM needs 4)."""
    if name in ("default",):
        return
    if name not in SCHEDULERS:
        raise InputError(f"unknown scheduler {name!r}; use one of: {', '.join(SCHEDULERS)}")
    if steps is not None:
        from neobabel.backbones import check_steps as check_sampler_steps  # heavy: torch (backbones)

        check_sampler_steps(SCHEDULERS[name], steps)


def check_sampling(*, steps: int | None = None, guidance: float | None = None, size: str | None = None,
                   scheduler: str | None = None, no_limits: bool = False,
                   prefix: str = "--") -> tuple[int | None, int | None]:
    """The sampling values a user gave (None: the model's default); returns (width, height).

    `prefix` names them in messages: "--" for command-line flags, "" for config fields.
    """
    if steps is not None:
        check_steps(steps, no_limits=no_limits, flag=f"{prefix}steps")
    if guidance is not None:
        check_guidance(guidance, flag=f"{prefix}guidance")
    if scheduler is not None:
        check_scheduler(scheduler, steps)
    if size is None:
        return None, None
    return parse_and_check_size(size, no_limits=no_limits, flag=f"{prefix}size")


def check_device(device: str) -> None:
    """A device torch can name (cpu, cuda, cuda:1, mps, ...) or auto; whether it exists is checked on load."""
    if device == "auto":
        return
    import torch  # heavy: only torch knows every device name (cuda:1, mps, ...)

    try:
        torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"--device {device!r} is not a device; use cpu, cuda, cuda:N or auto") from None


# -- output directories ------------------------------------------------------------------------

def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(os.sep)


def _writable(folder: Path) -> bool:
    """Whether this process may create files in `folder` (permissions and read-only mounts)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        return not os.statvfs(folder).f_flag & os.ST_RDONLY
    except OSError:
        return True  # no statvfs here: the permission answer stands


def check_out_dir(path: str | Path, flag: str = "--out") -> Path:
    """An output directory that exists and is writable, or can be created in a writable parent.

    Creates nothing: the first folder that exists on the way up must be a writable directory.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{flag} {path} exists and is not a directory; choose another path")
    base = _nearest_existing(path.absolute())
    if not base.is_dir():
        raise InputError(f"{flag} {path}: {base} is a file, so no directory can be made there; choose another path")
    if not _writable(base):
        where = "it" if base == path.absolute() else f"its parent {base}"
        raise InputError(f"{flag} {path}: {where} is read-only for this user; choose a writable {flag} "
                         f"(or make it writable: chmod u+w {base})")
    return path


# -- prompt length -----------------------------------------------------------------------------

def token_limit_and_counter(pipeline):
    """(max tokens the model reads, texts -> token counts), or None when unknown (e.g. the oracle)."""
    tower = getattr(pipeline, "tower", None)
    if tower is not None and getattr(tower, "tokenizer", None) is not None:
        limit, tokenizer = tower.config.max_length, tower.tokenizer
    else:
        tokenizer = getattr(getattr(pipeline, "pipe", None), "tokenizer", None)
        limit = getattr(tokenizer, "model_max_length", None)
        if tokenizer is None or not isinstance(limit, int) or limit > 100_000:
            return None

    def count(texts: list[str]) -> list[int]:
        # muted: transformers warns about each over-long text; we say it once, with the count
        with muted_transformers():
            ids = tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]
        return [len(x) for x in ids]

    return limit, count


def truncated_prompts(pipeline, texts) -> tuple[int, int | None]:
    """How many distinct texts are longer than the model reads (they get cut), and its limit."""
    found = token_limit_and_counter(pipeline)
    if found is None:
        return 0, None
    limit, count = found
    distinct = sorted(set(texts))
    return sum(1 for n in count(distinct) if n > limit), limit


def warn_truncated(pipeline, texts) -> int:
    """Say once how many prompts the model cuts (it reads a fixed number of tokens); returns the
    count, which callers record as ``truncated_prompts`` in run.json."""
    count, limit = truncated_prompts(pipeline, texts)
    if count:
        logger.warning("%d prompt(s) are longer than the %s tokens the model reads; the text after that is "
                       "ignored (recorded as truncated_prompts in run.json)", count, limit)
    return count
