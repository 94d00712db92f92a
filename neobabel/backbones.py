"""Diffusion backbones: loading diffusers components, family detection, attention backend.

A *backbone* is the denoiser + autoencoder + scheduler of a diffusers text-to-image
pipeline. In tower mode it is assembled without its text encoders (the tower conditions it);
in native mode the whole diffusers pipeline runs as published (the English-only baseline).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path

import torch

from neobabel.errors import InputError
from neobabel.modelfolder import ATTENTION_BACKENDS, SCHEDULERS  # noqa: F401 (torch-free home: --help lists them)
from neobabel.weights import reading_pickle, weights_kwargs

FAMILIES = ("sd", "sdxl")

# Schedulers that implement only some of the model outputs (diffusers raises mid-sampling);
# the others take epsilon, v_prediction and sample (x0, e.g. the world model).
PREDICTION_TYPES = {
    "euler_a": ("epsilon", "v_prediction"),
    "pndm": ("epsilon", "v_prediction"),
}

# diffusers' PNDM always runs its multistep warm-up and fails mid-sampling (a numpy broadcast
# error) with fewer steps than this; refused up front instead.
MIN_STEPS = {"PNDMScheduler": 4}


def check_steps(name: str, steps: int) -> None:
    """`name`: a diffusers scheduler class name."""
    if steps < MIN_STEPS.get(name, 1):
        raise InputError(f"the {name} sampler needs --steps >= {MIN_STEPS[name]}, got {steps}; "
                         "raise --steps or choose another --scheduler (e.g. ddim)")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path} is missing; the model folder is incomplete") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path} is not valid JSON ({e.msg}, line {e.lineno}); re-save the model") from None


def component_class(config: dict):
    """Resolve a component's `_class_name` in diffusers, or in neobabel's own components."""
    name = config.get("_class_name")
    if not name:
        raise InputError("component config has no _class_name; is this a diffusers folder?")
    import diffusers  # heavy: diffusers (and torch), only when a model is built or loaded

    if hasattr(diffusers, name):
        return getattr(diffusers, name)
    from neobabel import components  # imports diffusers internals: with diffusers above

    if hasattr(components, name):
        return getattr(components, name)
    raise InputError(f"unknown component class {name!r}: not in diffusers {diffusers.__version__} "
                     "nor in neobabel.components")


def load_component(folder: Path, dtype: torch.dtype | None = None, allow_pickle: bool = False):
    """A diffusers model (weights from safetensors, see neobabel.weights) or scheduler folder."""
    for cfg_name in ("config.json", "scheduler_config.json"):
        if (folder / cfg_name).is_file():
            cls = component_class(_read_json(folder / cfg_name))
            if cfg_name == "scheduler_config.json":
                return cls.from_pretrained(folder)  # a config only: no weights
            kw = weights_kwargs(folder, "diffusers", allow_pickle)
            if dtype is not None:
                kw["dtype"] = dtype
            with reading_pickle(kw["use_safetensors"], folder):
                return cls.from_pretrained(folder, **kw)
    raise InputError(f"{folder} has no config.json or scheduler_config.json")


def detect_family(unet_config: dict) -> str:
    # SDXL-family UNets take pooled text + size/crop ids through the "text_time" embedding.
    return "sdxl" if unet_config.get("addition_embed_type") == "text_time" else "sd"


def assemble(family: str, unet, vae, scheduler):
    """A diffusers pipeline around a backbone with no text encoders: embeds come from a tower."""
    # heavy: diffusers (and torch), only when a model is built or loaded
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if family == "sd":
        return StableDiffusionPipeline(
            vae=vae, text_encoder=None, tokenizer=None, unet=unet, scheduler=scheduler,
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )
    if family == "sdxl":
        return StableDiffusionXLPipeline(
            vae=vae, text_encoder=None, text_encoder_2=None, tokenizer=None, tokenizer_2=None,
            unet=unet, scheduler=scheduler, force_zeros_for_empty_prompt=False,
        )
    raise InputError(f"unknown backbone family {family!r}; use one of {FAMILIES}")


def load_backbone(folder: str | Path, dtype: torch.dtype | None = None, family: str | None = None,
                  allow_pickle: bool = False):
    """Load unet/vae/scheduler subfolders of a diffusers or BabelPipeline folder."""
    folder = Path(folder)
    unet = load_component(folder / "unet", dtype, allow_pickle)
    vae = load_component(folder / "vae", dtype, allow_pickle)
    scheduler = load_component(folder / "scheduler")
    family = family or detect_family(dict(unet.config))
    return assemble(family, unet, vae, scheduler), family


def check_prediction(name: str, prediction: str) -> None:
    """Refuse a scheduler (short name) that cannot sample a model predicting `prediction`."""
    if name not in SCHEDULERS:
        raise InputError(f"unknown scheduler {name!r}; use one of: {', '.join(SCHEDULERS)}")
    if prediction not in PREDICTION_TYPES.get(name, (prediction,)):
        ok = [n for n in SCHEDULERS if prediction in PREDICTION_TYPES.get(n, (prediction,))]
        raise InputError(f"scheduler {name!r} cannot sample a model that predicts {prediction!r}; "
                         f"use one of: {', '.join(ok)}")


def set_scheduler(pipe, name: str | None) -> str:
    """Swap the pipeline's scheduler by short name (keeping its config); return the class name."""
    if name is None or name == "default":
        return type(pipe.scheduler).__name__
    check_prediction(name, pipe.scheduler.config.get("prediction_type", "epsilon"))
    import diffusers  # heavy: diffusers (and torch), only when a model is built or loaded

    cls = getattr(diffusers, SCHEDULERS[name])
    if not isinstance(pipe.scheduler, cls):
        pipe.scheduler = cls.from_config(pipe.scheduler.config)
    return cls.__name__


def xformers_available() -> bool:
    return importlib.util.find_spec("xformers") is not None


def set_attention_backend(pipe, backend: str, device: str | torch.device) -> str:
    """Apply the attention backend; return what is in use (recorded in run.json)."""
    if backend not in ATTENTION_BACKENDS:
        raise InputError(f"unknown attention backend {backend!r}; use one of {ATTENTION_BACKENDS}")
    if backend == "xformers":
        if torch.device(device).type != "cuda":
            raise InputError("attention 'xformers' needs a CUDA device (--device cuda); "
                             "use --attention sdpa on CPU")
        if not xformers_available():
            raise InputError("attention 'xformers' needs the [gpu] extra: pip install 'neobabel[gpu]'; "
                             "or use --attention sdpa")
        pipe.enable_xformers_memory_efficient_attention()
        return "xformers"
    # diffusers defaults to AttnProcessor2_0 (torch SDPA) when torch provides it; undo any
    # xformers processors a previous call may have set.
    from diffusers.models.attention_processor import AttnProcessor2_0

    for name in ("unet", "vae"):
        module = getattr(pipe, name, None)
        if module is not None and hasattr(module, "attn_processors") and module.attn_processors:
            if any(type(p).__name__.startswith("XFormers") for p in module.attn_processors.values()):
                module.set_attn_processor(AttnProcessor2_0())
    return "sdpa"
