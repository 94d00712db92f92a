"""Which prompt set a ``--source`` names: the built-in set, a folder, or the Hub dataset."""

from __future__ import annotations

import os
from pathlib import Path

from magbig.prompts.builtin import load_builtin, load_yaml_dir
from magbig.prompts.model import PromptSet
from magbig.prompts.official import HUB_DATASET, load_hub, load_official
from neobabel.errors import InputError


def load_prompts(source: str | os.PathLike | PromptSet = "builtin", allow_download: bool = False) -> PromptSet:
    """``"builtin"`` | a folder (built-in YAML schema, or the official CSV layout) |
    ``"hub"`` / ``"hf:OWNER/NAME[@REVISION]"`` -> PromptSet. ``allow_download``: see :func:`load_hub`."""
    if isinstance(source, PromptSet):
        return source
    text = str(source).strip()
    if text.lower() in ("builtin", "built-in", "default", ""):
        return load_builtin()
    if text.lower() in ("hub", "hf", "magbig", "official-hub"):
        return load_hub(allow_download=allow_download)
    if text.lower().startswith(("hf:", "hf://")):
        spec = text.split(":", 1)[1].lstrip("/")
        dataset, _, revision = spec.partition("@")
        return load_hub(dataset or HUB_DATASET, revision or None, allow_download=allow_download)
    path = Path(text).expanduser()
    if path.is_dir():
        if any(p.suffix == ".yaml" for p in path.iterdir()) and not any(path.rglob("*.csv")):
            return load_yaml_dir(path)
        return load_official(path)
    raise InputError(
        f"unknown prompt source {text!r}; use 'builtin', 'hub', 'hf:felfri/MAGBIG[@REVISION]' "
        "or an existing folder"
    )

