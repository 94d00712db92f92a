"""Model weights load from safetensors only; pickled weights only when the user opts in.

Unpickling a ``.bin`` checkpoint can run code; reading a ``.safetensors`` file cannot. Every
``from_pretrained`` that reads weights (diffusers components and pipelines, the tower's
transformers encoder, the CLIP models of magbig) first asks :func:`weights_kwargs` about the
folder, and passes what it returns:

- a folder with ``.safetensors`` weights loads them with ``use_safetensors=True``: diffusers
  0.42 and transformers 5.x then never fall back to a ``.bin`` (checked in their sources:
  diffusers' ``ModelMixin.from_pretrained`` only falls back when ``use_safetensors`` is None,
  transformers only looks for ``pytorch_model.bin`` when it is not True);
- a folder whose weights are only pickled is refused in one line naming the file
  (:class:`~neobabel.errors.InputError`, exit 2), unless ``allow_pickle`` (CLI
  ``--allow-pickle``): then ``use_safetensors=False``, and both libraries read the file with
  ``torch.load(weights_only=True)``, which rebuilds tensors but no other objects;
- a folder with neither names the missing ``.safetensors`` file.

Configs, tokenizers and schedulers hold no weights; their ``from_pretrained`` calls take no
``use_safetensors``.
"""

from __future__ import annotations

import contextlib
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path

from neobabel.errors import InputError


@dataclass(frozen=True)
class WeightNames:
    """The weight file names one library looks for in a component folder, safest first."""

    safetensors: tuple[str, ...]
    pickle: tuple[str, ...]


DIFFUSERS = WeightNames(
    safetensors=("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json"),
    pickle=("diffusion_pytorch_model.bin", "diffusion_pytorch_model.bin.index.json"),
)
TRANSFORMERS = WeightNames(
    safetensors=("model.safetensors", "model.safetensors.index.json"),
    pickle=("pytorch_model.bin", "pytorch_model.bin.index.json"),
)
LIBRARIES = {"diffusers": DIFFUSERS, "transformers": TRANSFORMERS}

ALLOW_PICKLE_HINT = ("convert it to .safetensors (load it where you trust it and save_pretrained with "
                     "safe_serialization=True), or pass --allow-pickle to load it anyway")


def weights_file(folder: str | Path, library: str, allow_pickle: bool = False) -> Path:
    """The weights file `from_pretrained` will read in a component folder, or InputError.

    `library`: "diffusers" or "transformers" (they name their files differently).
    """
    folder = Path(folder)
    names = LIBRARIES[library]
    for name in names.safetensors:
        if (folder / name).is_file():
            return folder / name
    pickled = next((folder / n for n in names.pickle if (folder / n).is_file()), None)
    if pickled is None:
        raise InputError(f"{folder / names.safetensors[0]} is missing; the model folder is incomplete: "
                         "copy the file there or re-save the model with save_pretrained")
    if not allow_pickle:
        raise InputError(f"{pickled} holds pickled weights and weights load from .safetensors only; "
                         f"{ALLOW_PICKLE_HINT}")
    return pickled


def is_pickle(path: Path) -> bool:
    return path.name in DIFFUSERS.pickle + TRANSFORMERS.pickle


def weights_kwargs(folder: str | Path, library: str, allow_pickle: bool = False) -> dict:
    """Keyword arguments for the library's `from_pretrained` on `folder` (module docstring)."""
    return {"use_safetensors": not is_pickle(weights_file(folder, library, allow_pickle))}


@contextlib.contextmanager
def reading_pickle(use_safetensors: bool | None, where: str | Path):
    """Around a `from_pretrained` that may read pickled weights (`use_safetensors` not True):
    a file that torch.load(weights_only=True) refuses (it holds more than tensors, e.g. code
    to run) becomes one InputError line naming `where`, and torch's protocol warning is muted."""
    if use_safetensors is True:
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
        try:
            yield
        except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as e:
            if isinstance(e, InputError):
                raise
            reason = " ".join(str(e).split())[:200]
            raise InputError(f"the pickled weights in {where} could not be read with "
                             f"torch.load(weights_only=True) ({type(e).__name__}: {reason}); they may hold "
                             "more than tensors: convert them to .safetensors where you trust them") from None


def pickle_files(folders: list[str | Path]) -> list[str]:
    """The pickled weight files that loading these model folders reads (recorded in run.json)."""
    found = []
    for root in folders:
        root = Path(root).resolve()
        if not root.is_dir():
            continue
        for names in LIBRARIES.values():
            for name in names.pickle:
                for f in sorted(root.rglob(name)):
                    if not any((f.parent / s).is_file() for s in names.safetensors):
                        found.append(str(f))
    return sorted(set(found))


def weights_record(allow_pickle: bool, folders: list[str | Path]) -> dict:
    """What run.json says about how the weights were read."""
    return {"allow_pickle": bool(allow_pickle), "pickle_files": pickle_files(folders) if allow_pickle else []}
