"""The saved-pipeline folder format: what `BabelPipeline.save_pretrained` writes and
`from_pretrained` (and `--model PATH`) reads.

A tower-mode folder holds ``unet/``, ``vae/``, ``scheduler/`` (diffusers), ``tower/``
(:class:`~neobabel.tower.MultilingualTower`) and ``babel_pipeline.json``; a native-mode folder
is a diffusers pipeline folder plus ``babel_pipeline.json``. Both get a model card, ``README.md``
with YAML front matter as on the Hugging Face hub; loading never reads it. Lives below the pipeline so that
builders of embedded models (:mod:`neobabel.builtins`) can write the format without loading
a pipeline. Imports no torch: the registry reads `GenerationDefaults` from here.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict

from neobabel import __version__
from neobabel.errors import InputError
from neobabel.languages import LANGUAGE_CODES

PIPELINE_CONFIG = "babel_pipeline.json"
FORMAT = "neobabel.BabelPipeline"
MODEL_CARD = "README.md"
# What `neobabel world train` records next to a model it exported (steps, seconds, config).
TRAINING_RECORD = "training.json"
PROJECT_LICENSE = "apache-2.0"  # the license of weights trained by neobabel itself

# The samplers a folder's defaults (and --scheduler) may name -> their diffusers class. Kept
# here, free of torch, so the CLIs can list them in --help without loading torch.
SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "pndm": "PNDMScheduler",
    "ddpm": "DDPMScheduler",
    "unipc": "UniPCMultistepScheduler",
}
ATTENTION_BACKENDS = ("sdpa", "xformers")


class GenerationDefaults(BaseModel):
    """How a model samples unless told otherwise (a preset's or a model folder's record)."""

    model_config = ConfigDict(extra="forbid")
    steps: int = 25
    guidance: float = 7.5
    width: int = 512
    height: int = 512
    scheduler: str | None = None
    negative_prompt: str = ""


def write_pipeline_config(path: Path, *, name: str, mode: str, family: str,
                          defaults: GenerationDefaults) -> None:
    cfg = {"format": FORMAT, "format_version": 1, "name": name, "mode": mode,
           "family": family, "defaults": defaults.model_dump(),
           "neobabel_version": __version__}
    (Path(path) / PIPELINE_CONFIG).write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")


def read_pipeline_config(path: Path) -> dict:
    try:
        cfg = json.loads((path / PIPELINE_CONFIG).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"{path / PIPELINE_CONFIG} is not valid JSON ({e.msg}); re-save the model") from None
    if cfg.get("format") != FORMAT or cfg.get("mode") not in ("tower", "native"):
        raise InputError(f"{path / PIPELINE_CONFIG} is not a BabelPipeline config (format/mode missing)")
    return cfg


def save_tower_model(path: str | Path, pipe, tower, *, name: str, family: str,
                     defaults: GenerationDefaults, dtype=None, training: dict | None = None) -> Path:
    """Write a tower-mode folder: the diffusers pipeline's unet/vae/scheduler, the tower, the
    config. `dtype` converts copies of the weights, never the live modules."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for comp in ("unet", "vae"):
        module = getattr(pipe, comp)
        if dtype is not None:
            # Convert a copy: .to() would change the live model, and diffusers'
            # save_pretrained has no state_dict argument (it would be ignored).
            module = copy.deepcopy(module).to(dtype)
        module.save_pretrained(path / comp)
    pipe.scheduler.save_pretrained(path / "scheduler")
    tower.save_pretrained(path / "tower", dtype=dtype)
    write_pipeline_config(path, name=name, mode="tower", family=family, defaults=defaults)
    write_model_card(path, name=name, mode="tower", family=family, defaults=defaults,
                     architecture=tower_architecture(family, tower.config), training=training)
    return path


# -- the model card ---------------------------------------------------------------------------------

def read_training_record(folder: Path) -> dict | None:
    """The folder's training.json (a world-trained model), or None."""
    try:
        return json.loads((Path(folder) / TRAINING_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def tower_architecture(family: str, tower_config) -> dict:
    """How a tower-mode model is built, for its card: the backbone family and the tower."""
    return {"backbone": f"diffusers UNet ({family})", "text_encoder": f"multilingual tower ({tower_config.adapter} adapter)",
            "tower_encoder": tower_config.encoder, "cross_attention_dim": tower_config.out_dim,
            "max_tokens": tower_config.max_length}


def _base_model(architecture: dict) -> str | None:
    """A hub id the model builds on (the tower's encoder when it is one), else None."""
    encoder = str(architecture.get("tower_encoder") or "")
    return encoder if "/" in encoder and not Path(encoder).is_absolute() else None


def model_card_metadata(*, name: str, mode: str, family: str, defaults: GenerationDefaults,
                        architecture: dict, training: dict | None) -> dict:
    """The card's front matter: the hub's keys (language, license, library_name, ...) plus ours."""
    meta = {
        # Tower mode reads every supported language; native mode is the English baseline.
        "language": list(LANGUAGE_CODES) if mode == "tower" else ["en"],
        "license": PROJECT_LICENSE if training else "other",
        "library_name": "neobabel",
        "pipeline_tag": "text-to-image",
        "tags": ["text-to-image", "multilingual", "diffusers", "neobabel"],
    }
    base = _base_model(architecture)
    if base:
        meta["base_model"] = base
    meta["neobabel"] = {"name": name, "mode": mode, "family": family, "architecture": architecture,
                        "defaults": defaults.model_dump(),
                        "training_data": ("the synthetic Babel world (neobabel.world)" if training
                                          else "not recorded (see the base model's card)")}
    if training:
        meta["neobabel"]["training"] = {k: training[k] for k in ("steps", "train_seconds") if k in training}
    return meta


def model_card(meta: dict) -> str:
    info = meta["neobabel"]
    d = info["defaults"]
    scheduler = d["scheduler"] or "the backbone's own"
    body = (f"# {info['name']}\n\n"
            f"A neobabel BabelPipeline ({info['mode']} mode, {info['family']} backbone) for multilingual "
            f"text-to-image generation in {len(meta['language'])} language(s): {', '.join(meta['language'])}.\n\n"
            f"Training data: {info['training_data']}.\n\n"
            f"Sampling defaults: {d['steps']} steps, guidance {d['guidance']}, {d['width']}x{d['height']}, "
            f"scheduler {scheduler}.\n\n"
            "```bash\n"
            "neobabel generate \"a photo of a red circle\" --model PATH_TO_THIS_FOLDER\n"
            "```\n")
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n\n{body}"


def write_model_card(path: Path, *, name: str, mode: str, family: str, defaults: GenerationDefaults,
                     architecture: dict, training: dict | None = None) -> None:
    """README.md for the hub. Deterministic (no dates), so re-saving a model changes nothing;
    `training` defaults to the folder's own training.json."""
    training = training or read_training_record(path)
    meta = model_card_metadata(name=name, mode=mode, family=family, defaults=defaults,
                               architecture=architecture, training=training)
    (Path(path) / MODEL_CARD).write_text(model_card(meta), encoding="utf-8")
