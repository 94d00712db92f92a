"""The saved-pipeline folder format: what `BabelPipeline.save_pretrained` writes and
`from_pretrained` (and `--model PATH`) reads.

A tower-mode folder holds ``unet/``, ``vae/``, ``scheduler/`` (diffusers), ``tower/``
(:class:`~neobabel.tower.MultilingualTower`) and ``babel_pipeline.json``; a native-mode folder
is a diffusers pipeline folder plus ``babel_pipeline.json``. Lives below the pipeline so that
builders of embedded models (:mod:`neobabel.builtins`) can write the format without loading
a pipeline. Imports no torch: the registry reads `GenerationDefaults` from here.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from neobabel import __version__
from neobabel.errors import InputError

PIPELINE_CONFIG = "babel_pipeline.json"
FORMAT = "neobabel.BabelPipeline"

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
                     defaults: GenerationDefaults, dtype=None) -> Path:
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
    return path
