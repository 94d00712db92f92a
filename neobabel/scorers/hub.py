"""Offline model folders for the scorers: a local folder, or a hub id already in the local cache.

Nothing downloads at run time. A hub id that is not cached, or a folder that does not hold a
loadable model, is a :class:`~neobabel.errors.ModelNotAvailableError`: one paragraph naming the
model and how to provide it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from neobabel._logging import muted_transformers
from neobabel.errors import InputError, ModelNotAvailableError
from neobabel.weights import reading_pickle, weights_kwargs


def is_hub_id(s: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", s) is not None and not s.startswith(".")


def resolve_model_folder(model: str | os.PathLike, what: str, *, revision: str | None = None,
                         pinned: dict[str, str] | None = None) -> Path:
    """The local folder of ``model``: itself when it is a folder, else the snapshot of hub id
    ``model`` at ``revision`` (default: the pinned revision from ``pinned``) in the local
    Hugging Face cache."""
    model = os.fspath(model)
    p = Path(os.path.expanduser(model))
    if p.is_dir():
        return p
    if p.exists() or not is_hub_id(model):
        raise ModelNotAvailableError(
            f"{what} model folder {model!r} does not exist; pass a folder saved with save_pretrained "
            "(model and processor) or a hub id that is in the local Hugging Face cache")
    if revision is None and pinned:
        revision = pinned.get(model)
    from huggingface_hub import constants, snapshot_download  # only when a hub id is looked up

    try:
        return Path(snapshot_download(model, revision=revision, local_files_only=True))
    except Exception:
        rev = f" --revision {revision}" if revision else ""
        raise ModelNotAvailableError(
            f"{what} model {model}{'@' + revision if revision else ''} is not in the local Hugging "
            f"Face cache ({constants.HF_HUB_CACHE}); nothing is downloaded at run time. On a machine "
            f"with internet run `hf download {model}{rev}` and point HF_HOME at that cache, or pass "
            "a local folder saved with save_pretrained") from None


def load_failure(what: str, folder: Path, exc: Exception) -> ModelNotAvailableError:
    """The one-paragraph error for a folder that does not load."""
    if isinstance(exc, InputError):
        return ModelNotAvailableError(f"cannot load a {what} model from {folder}: {exc}")
    return ModelNotAvailableError(
        f"cannot load a {what} model and processor from {folder} "
        f"({' '.join(str(exc).split())[:200]}); the folder needs config.json, the weights and the "
        "processor files (save_pretrained of the model and of its processor)")


def load_pretrained(model_cls, processor_cls, folder: Path, what: str, device, allow_pickle: bool = False):
    """``(model in eval mode on device, processor)`` from a local folder, offline, transformers'
    logging muted. Weights from safetensors only unless ``allow_pickle`` (neobabel.weights); a
    folder that does not load is a one-paragraph ModelNotAvailableError."""
    weights_kw = {"use_safetensors": True}
    try:
        if (Path(folder) / "config.json").is_file():  # without it, transformers says what is missing
            weights_kw = weights_kwargs(folder, "transformers", allow_pickle)  # refuses before loading
        with muted_transformers():
            with reading_pickle(weights_kw["use_safetensors"], folder):
                model = model_cls.from_pretrained(folder, local_files_only=True, **weights_kw).to(device).eval()
            processor = processor_cls.from_pretrained(folder, local_files_only=True)
    except (InputError, OSError, ValueError) as exc:
        raise load_failure(what, Path(folder), exc) from None
    return model, processor
