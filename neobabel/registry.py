"""Model presets: names -> components (hub id + pinned revision, local path or built-in).

Presets are YAML files in `configs/models/` (and in `$NEOBABEL_MODELS_DIR`, for a user's
own), validated by `ModelPreset`. As in open_clip, the architecture lives with the weights'
own config files; a preset only says where the weights are and how to sample by default.

Nothing is downloaded unless asked (`allow_download=True`, CLI `--download`): a preset whose
weights are not in the local Hugging Face cache fails with a message naming what is missing
and how to provide it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from neobabel.builtins import BUILTIN_MODELS, builtin_model_path, cache_home, world_weights_path
from neobabel.configfile import read_yaml_mapping, shipped_configs, validate_spec
from neobabel.errors import InputError, ModelNotAvailableError
from neobabel.modelfolder import MODEL_CARD, GenerationDefaults

REPO_ROOT = Path(__file__).resolve().parents[1]

logger = logging.getLogger(__name__)


class ComponentRef(BaseModel):
    """Exactly one of: a hub repo with a pinned revision, a local path, or a built-in name."""

    model_config = ConfigDict(extra="forbid")
    repo: str | None = None
    revision: str | None = None
    path: str | None = None
    builtin: str | None = None

    @model_validator(mode="after")
    def _one_source(self):
        given = [k for k in ("repo", "path", "builtin") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of repo, path, builtin")
        if self.repo and not self.revision:
            raise ValueError(f"repo {self.repo!r} needs a pinned revision (a commit hash)")
        if self.builtin and self.builtin not in BUILTIN_MODELS:
            raise ValueError(f"unknown builtin {self.builtin!r}; known: {BUILTIN_MODELS}")
        return self

    def describe(self) -> str:
        if self.repo:
            return f"{self.repo}@{self.revision[:12]}"
        return self.path or f"builtin:{self.builtin}"


class TowerRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # A saved tower folder (tower_config.json + adapter.safetensors); its config may point
    # at the encoder's hub id, which `encoder` pins here.
    adapter: ComponentRef
    encoder: ComponentRef | None = None


class ModelPreset(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    mode: Literal["native", "tower", "translate"]
    family: Literal["sd", "sdxl"] = "sd"
    backbone: ComponentRef
    tower: TowerRef | None = None
    # Translate mode: the MT model (Marian / M2M100 / NLLB) that puts prompts into English first.
    translator: ComponentRef | None = None
    # None: the defaults the model folder records (a built-in model's babel_pipeline.json, which
    # its training export writes), so a retrained embedded model brings its own size and guidance.
    defaults: GenerationDefaults | None = None
    license: str | None = None

    @model_validator(mode="after")
    def _tower_iff_tower_mode(self):
        if (self.mode == "tower") != (self.tower is not None):
            raise ValueError("mode 'tower' needs a `tower:` section and the other modes must not have one")
        if (self.mode == "translate") != (self.translator is not None):
            raise ValueError("mode 'translate' needs a `translator:` (the MT model) and the other modes must not have one")
        return self


def preset_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("NEOBABEL_MODELS_DIR"):
        dirs.append(Path(os.environ["NEOBABEL_MODELS_DIR"]).expanduser())
    dirs.append(shipped_configs() / "models")
    return [d for d in dirs if d.is_dir()]


def load_preset_file(path: Path) -> ModelPreset:
    data = read_yaml_mapping(path, "model preset")
    data.setdefault("name", path.stem)
    return validate_spec(data, ModelPreset, f"model preset {path}")


# A model folder that pairs a backbone with a tower by reference (written by `neobabel distill`):
# `--model FOLDER` loads FOLDER/preset.yaml, as `--model FILE.yaml` loads that file.
PRESET_FILE = "preset.yaml"


def load_preset_at(path: Path) -> ModelPreset:
    """A preset file given by path. Its relative `path:` entries are relative to the file's folder
    (not the working directory), so the folder can be moved with the tower it holds."""
    path = Path(path)
    data = read_yaml_mapping(path, "model preset")
    data.setdefault("name", path.parent.name if path.name == PRESET_FILE else path.stem)
    folder = path.parent.resolve()

    def rebase(ref) -> None:
        if isinstance(ref, dict) and isinstance(ref.get("path"), str):
            p = Path(os.path.expandvars(ref["path"])).expanduser()
            if not p.is_absolute():
                ref["path"] = str(folder / p)

    rebase(data.get("backbone"))
    if isinstance(data.get("tower"), dict):
        rebase(data["tower"].get("adapter"))
        rebase(data["tower"].get("encoder"))
    return validate_spec(data, ModelPreset, f"model preset {path}")


def list_presets() -> dict[str, ModelPreset]:
    presets: dict[str, ModelPreset] = {}
    for d in reversed(preset_dirs()):  # user presets override shipped ones of the same name
        for f in sorted(d.glob("*.yaml")):
            p = load_preset_file(f)
            presets[p.name] = p
    return presets


def get_preset(name: str) -> ModelPreset:
    presets = list_presets()
    if name not in presets:
        raise InputError(f"unknown model {name!r}: not a preset ({', '.join(sorted(presets))}) "
                         "nor an existing folder; run `neobabel models` to list presets")
    return presets[name]


def hf_cache_dir() -> str:
    from huggingface_hub import constants  # heavy: huggingface_hub, only when the Hub cache is read

    return str(constants.HF_HUB_CACHE)


# Pickled weight files a download skips unless pickle is allowed (neobabel.weights): they are
# never read otherwise, and hub repos often carry several GB of them beside the safetensors.
PICKLE_PATTERNS = ("*.bin", "*.ckpt", "*.pt", "*.pth", "*.pkl", "*.pickle")


def resolve_ref(ref: ComponentRef, role: str, preset: str, allow_download: bool = False,
                allow_pickle: bool = False) -> Path:
    """A local folder for the component, or ModelNotAvailableError saying how to get it."""
    if ref.path:
        p = _ref_path(ref)
        if not p.exists():
            raise ModelNotAvailableError(
                f"model {preset!r} needs its {role} at {p}, which does not exist; create it or "
                "edit the preset's path (or pass --model PATH)")
        return p
    if ref.builtin:
        return builtin_model_path(ref.builtin)
    from huggingface_hub import snapshot_download  # heavy: huggingface_hub, only when the Hub cache is read
    # heavy: huggingface_hub, only when the Hub cache is read
    from huggingface_hub.errors import LocalEntryNotFoundError

    skip = None if allow_pickle else list(PICKLE_PATTERNS)
    if allow_download:
        logger.info("fetching %s (%s of model %r) unless the Hugging Face cache has it", ref.describe(), role, preset)
    try:
        return Path(snapshot_download(ref.repo, revision=ref.revision, local_files_only=not allow_download,
                                      ignore_patterns=skip))
    except (LocalEntryNotFoundError, OSError) as e:
        if allow_download and not isinstance(e, LocalEntryNotFoundError):
            raise ModelNotAvailableError(f"downloading {ref.describe()} for model {preset!r} failed: {e}") from None
        raise ModelNotAvailableError(
            f"model {preset!r} needs {ref.repo} at revision {ref.revision} ({role}), which is not in "
            f"the local Hugging Face cache ({hf_cache_dir()}). On a machine with internet run "
            f"`hf download {ref.repo} --revision {ref.revision}` and point HF_HOME at that cache, "
            "rerun with --download, or pass --model PATH to a local diffusers folder."
        ) from None


def is_available(preset: ModelPreset) -> tuple[bool, str]:
    """(available, detail) without loading anything."""
    refs = [("backbone", preset.backbone)]
    if preset.translator:
        refs.append(("translator", preset.translator))
    if preset.tower:
        refs.append(("tower adapter", preset.tower.adapter))
        if preset.tower.encoder:
            refs.append(("tower encoder", preset.tower.encoder))
    missing = []
    for role, ref in refs:
        if ref.builtin == "world" and not world_weights_path().is_dir():
            missing.append("builtin world weights (not shipped yet)")
            break
        if ref.builtin:
            continue
        try:
            resolve_ref(ref, role, preset.name)
        except ModelNotAvailableError:
            missing.append(f"{role}: {ref.describe()}")
    return (not missing, "; ".join(missing) if missing else "local")


# -- identity -------------------------------------------------------------------------------

def folder_fingerprint(folder: Path, chunk: int = 1 << 20) -> str:
    """A content fingerprint of a model folder: every file's path, size and leading bytes.

    Cheap even for multi-GB checkpoints; used as the revision of local models so that image
    keys change when the weights do.
    """
    h = hashlib.sha256()
    for f in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        rel = f.relative_to(folder).as_posix()
        if rel.startswith(".") or "/." in rel or rel == MODEL_CARD:  # the card is not the model
            continue
        h.update(rel.encode())
        h.update(str(f.stat().st_size).encode())
        with open(f, "rb") as fh:
            h.update(fh.read(chunk))
    return h.hexdigest()[:16]


def _ref_path(ref: ComponentRef) -> Path:
    return Path(os.path.expandvars(ref.path.replace("${NEOBABEL_CACHE}", str(cache_home())))).expanduser()


def preset_revision(preset: ModelPreset) -> str:
    # `translator` only when set: the revisions (and image keys) of the other presets stay as they were
    data = preset.model_dump(include={"mode", "family", "backbone", "tower"} | ({"translator"} if preset.translator else set()))
    h = hashlib.sha256(json.dumps(data, sort_keys=True).encode())
    # Local paths are not pinned by the preset text: their content is part of the identity.
    refs = [preset.backbone] + ([preset.tower.adapter, preset.tower.encoder] if preset.tower else [])
    refs += [preset.translator] if preset.translator else []
    for ref in refs:
        if ref is not None and ref.path and _ref_path(ref).is_dir():
            h.update(folder_fingerprint(_ref_path(ref)).encode())
    return h.hexdigest()[:16]
