"""BabelPipeline: prompts + languages + seeds -> images, through a diffusers backbone.

Two modes share one entry point, `generate`:
- tower:  a MultilingualTower encodes prompt and negative prompt; the backbone's diffusers
          pipeline runs on `prompt_embeds` (+ pooled embeds for SDXL). The diffusers pitfall
          is avoided: the unconditional branch is the tower's encoding of the negative
          prompt, never the pipeline's own CLIP (it has none).
- native: any diffusers text-to-image pipeline with its own text encoder (the English-only
          baseline), called with the prompt text.
Each image gets its own CPU `torch.Generator` seeded with its seed, and on CPU the whole call
(text encoding, denoiser, VAE) runs batched under `neobabel.invariance.batch_invariant`, so an
image depends only on (model, text, lang, seed, params), never on batch size or position.
"""

from __future__ import annotations

import logging
import inspect
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from neobabel._logging import quiet_transformers
from neobabel.backbones import (
    SCHEDULERS, assemble, check_prediction, check_steps, detect_family, load_backbone, set_attention_backend,
    set_scheduler,
)
from neobabel.errors import InputError
from neobabel.invariance import batch_invariant
from neobabel.languages import normalize_lang
from neobabel.modelfolder import (
    PIPELINE_CONFIG, GenerationDefaults, read_pipeline_config, read_training_record, save_tower_model,
    write_model_card, write_pipeline_config,
)
from neobabel.registry import (
    PRESET_FILE, folder_fingerprint, get_preset, load_preset_at, preset_revision, resolve_ref,
)
from neobabel.tower import MultilingualTower
from neobabel.weights import reading_pickle, weights_kwargs, weights_record


@dataclass(frozen=True)
class GenerationParams:
    steps: int
    guidance: float
    width: int
    height: int
    scheduler: str | None = None
    negative_prompt: str = ""

    def __post_init__(self):
        if self.steps < 1:
            raise InputError(f"--steps must be at least 1, got {self.steps}")
        for name in ("width", "height"):
            v = getattr(self, name)
            if v < 8 or v % 8:
                raise InputError(f"image {name} must be a positive multiple of 8, got {v} (e.g. --size 512x512)")
        if self.scheduler not in (None, "default") and self.scheduler not in SCHEDULERS:
            raise InputError(f"unknown scheduler {self.scheduler!r}; use one of: {', '.join(SCHEDULERS)}")
        if not math.isfinite(self.guidance) or self.guidance < 0:
            raise InputError(f"--guidance must be a finite number >= 0, got {self.guidance}")

    def as_dict(self) -> dict:
        return asdict(self)


def parse_size(value: str) -> tuple[int, int]:
    """'512x512' or '512' -> (width, height)."""
    try:
        parts = [int(p) for p in str(value).lower().replace("×", "x").split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2:
        raise InputError(f"--size {value!r} is not WIDTHxHEIGHT; use e.g. --size 512x512")
    return parts[0], parts[1]


def _default_dtype(device: torch.device) -> torch.dtype:
    return torch.float16 if device.type == "cuda" else torch.float32


class BabelPipeline:
    def __init__(self, pipe, tower: MultilingualTower | None = None, *, family: str = "sd",
                 name: str = "model", revision: str = "", defaults: GenerationDefaults | None = None,
                 attention: str = "sdpa", device: str | torch.device = "cpu",
                 batch_invariant: bool = True):
        self.pipe = pipe
        self.tower = tower
        self.family = family
        self.name = name
        self.revision = revision
        self.defaults = defaults or GenerationDefaults()
        self.device = torch.device(device)
        self.pipe.set_progress_bar_config(disable=True)
        self.attention = set_attention_backend(self.pipe, attention, self.device)
        self.invariant_ops = batch_invariant
        self._base_scheduler = self.pipe.scheduler
        # How the weights were read (run.json); from_pretrained fills in what it loaded.
        self.weights = weights_record(False, [])
        # The source folder's training record (a world-trained model), for the model card.
        self.training: dict | None = None
        # Translate mode (neobabel.translate): prompts are put into English before the backbone
        # sees them. Anything with `name`, `revision` and `translate(texts, lang)` works.
        self.translator = None

    def with_translator(self, translator) -> BabelPipeline:
        """Translate-then-generate: `translator` puts each prompt into English first."""
        self.translator = translator
        return self

    def translate_units(self, units, cache_dir=None):
        """Work units with their English text filled in (cached in `cache_dir`): translate mode."""
        from neobabel.translate import translate_units  # only in translate mode

        return translate_units(self.translator, units, cache_dir)

    def set_batch_invariant(self, enabled: bool) -> None:
        """Batch-invariant kernels (bit-identical images whatever the batch) or the defaults."""
        self.invariant_ops = enabled

    @property
    def batch_invariant(self) -> bool:
        """Whether images are promised bit-identical whatever the batch (recorded in run.json).

        Only on CPU with the invariant op set: GPU libraries (cuBLAS/cuDNN heuristics, fused
        attention) choose kernels by batch shape, so there the promise is not made.
        """
        return self.invariant_ops and self.device.type == "cpu"

    # -- identity ---------------------------------------------------------------------
    @property
    def mode(self) -> str:
        if self.translator is not None:
            return "translate"
        return "tower" if self.tower is not None else "native"

    @property
    def dtype(self) -> torch.dtype:
        return self.pipe.unet.dtype if getattr(self.pipe, "unet", None) is not None else torch.float32

    def identity(self) -> dict:
        ident = {"model": self.name, "revision": self.revision, "mode": self.mode, "family": self.family,
                 "pipeline_class": type(self.pipe).__name__}
        if self.translator is not None:
            ident["translator"] = {"model": self.translator.name, "revision": self.translator.revision}
        return ident

    # -- construction -----------------------------------------------------------------
    @classmethod
    def from_components(cls, backbone: str | Path, tower: MultilingualTower | None = None,
                        family: str | None = None, name: str = "model", allow_pickle: bool = False,
                        **kw) -> BabelPipeline:
        """Tower mode over a diffusers folder's unet/vae/scheduler (its text encoders unused)."""
        pipe, family = load_backbone(backbone, family=family, allow_pickle=allow_pickle)
        return cls(pipe, tower, family=family, name=name, **kw)

    @classmethod
    def from_pretrained(cls, source: str | Path, *, device: str = "cpu", dtype: torch.dtype | None = None,
                        attention: str = "sdpa", allow_download: bool = False,
                        allow_pickle: bool = False) -> BabelPipeline:
        """Load a saved BabelPipeline folder, a diffusers pipeline folder, or a preset name.

        Weights load from .safetensors only; `allow_pickle` (CLI --allow-pickle) lets pickled
        .bin weights load too, with torch.load(weights_only=True) (neobabel.weights). What was
        read is in `weights` (recorded in run.json).
        """
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise InputError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
        dtype = dtype or _default_dtype(dev)
        path = Path(str(source)).expanduser()
        preset_file = path if path.is_file() and path.suffix in (".yaml", ".yml") else path / PRESET_FILE
        if preset_file.is_file() and not (path / PIPELINE_CONFIG).is_file() and not (path / "model_index.json").is_file():
            # a preset given by path: a backbone + a tower by reference (neobabel distill's output)
            pipe, folders = cls._from_preset_spec(load_preset_at(preset_file), dtype, attention, dev,
                                                  allow_download, allow_pickle)
        elif path.is_dir():
            pipe = cls._from_folder(path, dtype, attention, dev, allow_pickle=allow_pickle)
            folders = [path]
        elif path.suffix or "/" in str(source) or str(source).startswith("."):
            raise InputError(f"model path {str(source)!r} does not exist; pass a folder or a preset "
                             "name (`neobabel models` lists presets)")
        else:
            pipe, folders = cls._from_preset(str(source), dtype, attention, dev, allow_download, allow_pickle)
        pipe.weights = weights_record(allow_pickle, folders)
        pipe.training = read_training_record(folders[0])
        return pipe.to(dev)

    @classmethod
    def _from_folder(cls, path: Path, dtype, attention, device, name: str | None = None,
                     revision: str | None = None, defaults: GenerationDefaults | None = None,
                     allow_pickle: bool = False):
        explicit_name = name
        name = name or path.name
        revision = revision or folder_fingerprint(path)
        if (path / PIPELINE_CONFIG).is_file():
            cfg = read_pipeline_config(path)
            defaults = defaults or GenerationDefaults(**cfg.get("defaults", {}))
            name = explicit_name or cfg.get("name", name)
            if cfg["mode"] == "native":
                pipe, family = _load_native(path, dtype, allow_pickle)
                return cls(pipe, None, family=family, name=name, revision=revision, defaults=defaults,
                           attention=attention, device=device)
            pipe, family = load_backbone(path, dtype=dtype, family=cfg.get("family"), allow_pickle=allow_pickle)
            tower = MultilingualTower.from_pretrained(path / "tower", dtype=dtype, allow_pickle=allow_pickle)
            return cls(pipe, tower, family=family, name=name, revision=revision, defaults=defaults,
                       attention=attention, device=device)
        if (path / "model_index.json").is_file():
            pipe, family = _load_native(path, dtype, allow_pickle)
            return cls(pipe, None, family=family, name=name, revision=revision,
                       defaults=defaults or GenerationDefaults(), attention=attention, device=device)
        raise InputError(f"{path} is neither a BabelPipeline folder ({PIPELINE_CONFIG}) nor a diffusers "
                         "pipeline folder (model_index.json)")

    @classmethod
    def _from_preset(cls, name: str, dtype, attention, device, allow_download: bool, allow_pickle: bool = False):
        """(pipeline, the local folders its weights came from)."""
        return cls._from_preset_spec(get_preset(name), dtype, attention, device, allow_download, allow_pickle)

    @classmethod
    def _from_preset_spec(cls, preset, dtype, attention, device, allow_download: bool, allow_pickle: bool = False):
        name = preset.name
        backbone = resolve_ref(preset.backbone, "backbone", name, allow_download, allow_pickle)
        revision = preset_revision(preset)
        if preset.mode == "translate":
            return cls._translate_preset(preset, backbone, revision, dtype, attention, device, allow_download,
                                         allow_pickle)
        # A built-in model folder brings its own tower, unless the preset pairs it with another one.
        if preset.backbone.builtin and (preset.tower is None or preset.tower.adapter.builtin):
            return cls._from_folder(backbone, dtype, attention, device, name=name,
                                    revision=folder_fingerprint(backbone), defaults=preset.defaults,
                                    allow_pickle=allow_pickle), [backbone]
        if preset.mode == "native":
            pipe, family = _load_native(backbone, dtype, allow_pickle)
            return cls(pipe, None, family=family, name=name, revision=revision, defaults=preset.defaults,
                       attention=attention, device=device), [backbone]
        adapter = resolve_ref(preset.tower.adapter, "tower adapter", name, allow_download, allow_pickle)
        folders = [backbone, adapter]
        if preset.tower.encoder:  # make sure the pinned encoder is there before loading
            folders.append(resolve_ref(preset.tower.encoder, "tower encoder", name, allow_download, allow_pickle))
        pipe, family = load_backbone(backbone, dtype=dtype, family=preset.family, allow_pickle=allow_pickle)
        tower = MultilingualTower.from_pretrained(adapter, dtype=dtype, allow_pickle=allow_pickle)
        return cls(pipe, tower, family=family, name=name, revision=revision, defaults=preset.defaults,
                   attention=attention, device=device), folders

    @classmethod
    def _translate_preset(cls, preset, backbone: Path, revision: str, dtype, attention, device, allow_download: bool,
                          allow_pickle: bool):
        """A translate-mode preset: the backbone as it is (its own text encoder, or a folder's
        tower) behind an MT model that puts every prompt into English."""
        from neobabel.translate import MTTranslator  # only in translate mode

        if (backbone / PIPELINE_CONFIG).is_file():
            pipe = cls._from_folder(backbone, dtype, attention, device, name=preset.name, revision=revision,
                                    defaults=preset.defaults, allow_pickle=allow_pickle)
        else:
            native, family = _load_native(backbone, dtype, allow_pickle)
            pipe = cls(native, None, family=family, name=preset.name, revision=revision, defaults=preset.defaults,
                       attention=attention, device=device)
        ref = preset.translator
        mt_path = resolve_ref(ref, "translator", preset.name, allow_download, allow_pickle)
        translator = MTTranslator.from_pretrained(mt_path, device=str(device))
        translator.name, translator.revision = (ref.repo, ref.revision) if ref.repo else (translator.name, revision)
        return pipe.with_translator(translator), [backbone, mt_path]

    def save_pretrained(self, path: str | Path, dtype: torch.dtype | None = None) -> None:
        """A folder that `from_pretrained` (and `--model PATH`) loads: config + components, and
        a model card (README.md) for the hub."""
        path = Path(path)
        if self.translator is not None:
            raise InputError("a translate-mode pipeline is a backbone + an MT model by reference; save a "
                             "preset (mode: translate) instead of a folder")
        if self.mode == "tower":
            save_tower_model(path, self.pipe, self.tower, name=self.name, family=self.family,
                             defaults=self.defaults, dtype=dtype, training=self.training)
            return
        path.mkdir(parents=True, exist_ok=True)
        self.pipe.save_pretrained(path)
        write_pipeline_config(path, name=self.name, mode=self.mode, family=self.family,
                              defaults=self.defaults)
        write_model_card(path, name=self.name, mode=self.mode, family=self.family, defaults=self.defaults,
                         architecture={"backbone": f"diffusers {type(self.pipe).__name__} ({self.family})"},
                         training=self.training)

    def to(self, device: str | torch.device) -> BabelPipeline:
        self.device = torch.device(device)
        self.pipe.to(self.device)
        if self.tower is not None:
            self.tower.to(self.device)
        return self

    # -- generation -------------------------------------------------------------------
    def resolve_params(self, steps: int | None = None, guidance: float | None = None,
                       width: int | None = None, height: int | None = None,
                       scheduler: str | None = None, negative_prompt: str | None = None) -> GenerationParams:
        d = self.defaults
        params = GenerationParams(
            steps=steps if steps is not None else d.steps,
            guidance=guidance if guidance is not None else d.guidance,
            width=width if width is not None else d.width,
            height=height if height is not None else d.height,
            scheduler=scheduler if scheduler is not None else d.scheduler,
            negative_prompt=negative_prompt if negative_prompt is not None else d.negative_prompt,
        )
        self.check_sampler(params)  # here, before a caller writes a run directory for them
        return params

    def check_sampler(self, params: GenerationParams) -> None:
        """Refuse a sampler that would fail mid-run on this model with these steps."""
        if params.scheduler in (None, "default"):
            cls_name = type(self._base_scheduler).__name__
        else:
            check_prediction(params.scheduler, self._base_scheduler.config.get("prediction_type", "epsilon"))
            cls_name = SCHEDULERS[params.scheduler]
        check_steps(cls_name, params.steps)

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], langs: Sequence[str] | str | None = None,
                 seeds: Sequence[int] | int = 0, params: GenerationParams | None = None, *,
                 batch_size: int = 1, on_batch: Callable[[int], None] | None = None,
                 output_type: str = "pil", **overrides):
        """Generate one image per prompt; returns a list of PIL images in input order.

        `langs` (one code for all or one per prompt) is validated and recorded by callers; the
        tower reads the text itself. `seeds` is one int per prompt, or a base seed s giving
        s, s+1, ... . Keyword overrides (steps, guidance, width, height, scheduler,
        negative_prompt) apply on top of the model's defaults. `output_type="np"` returns float
        arrays in [0, 1] (H, W, 3) instead of PIL images (the decoder's output before rounding).
        """
        if output_type not in ("pil", "np"):
            raise InputError(f"output_type must be 'pil' or 'np', got {output_type!r}")
        prompts = list(prompts)
        n = len(prompts)
        if isinstance(langs, str) or langs is None:
            langs = [langs or "en"] * n
        if len(langs) != n:
            raise InputError(f"got {len(langs)} languages for {n} prompts; give one per prompt or one for all")
        for lang in set(langs):
            normalize_lang(lang)
        seeds = [seeds + i for i in range(n)] if isinstance(seeds, int) else [int(s) for s in seeds]
        if len(seeds) != n:
            raise InputError(f"got {len(seeds)} seeds for {n} prompts")
        if batch_size < 1:
            raise InputError(f"--batch-size must be at least 1, got {batch_size}")
        params = params or self.resolve_params(**overrides)
        if self.translator is not None:  # translate mode: the backbone sees English
            prompts = self._translated(prompts, langs)
        if params.scheduler in (None, "default"):
            self.pipe.scheduler = self._base_scheduler
        else:
            set_scheduler(self.pipe, params.scheduler)
        self.check_sampler(params)  # params may come from elsewhere (e.g. a resumed run's record)
        images = []
        with batch_invariant(self.device, self.invariant_ops):
            for start in range(0, n, batch_size):
                chunk = slice(start, start + batch_size)
                images += self._generate_batch(prompts[chunk], seeds[chunk], params, output_type)
                if on_batch is not None:
                    on_batch(len(prompts[chunk]))
        return images

    def _translated(self, prompts: list[str], langs: Sequence[str]) -> list[str]:
        """Each prompt in English: one translator call per language (a batch), input order kept."""
        out = list(prompts)
        for lang in dict.fromkeys(langs):
            where = [i for i, lg in enumerate(langs) if lg == lang]
            for i, text in zip(where, self.translator.translate([prompts[i] for i in where], normalize_lang(lang))):
                out[i] = text
        return out

    def _generate_batch(self, texts: list[str], seeds: list[int], params: GenerationParams,
                        output_type: str = "pil"):
        # CPU generators on every device: the same seed gives the same initial noise anywhere.
        generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        kwargs = dict(num_inference_steps=params.steps, guidance_scale=params.guidance,
                      width=params.width, height=params.height, generator=generators,
                      output_type=output_type)
        if self.tower is not None:
            embeds, pooled = self.tower.encode(texts)
            neg, neg_pooled = self.tower.encode([params.negative_prompt] * len(texts))
            dtype = self.dtype
            kwargs.update(prompt_embeds=embeds.to(dtype), negative_prompt_embeds=neg.to(dtype))
            if self.family == "sdxl":
                if pooled is None:
                    raise InputError("an SDXL backbone needs a tower with pooled_dim > 0")
                kwargs.update(pooled_prompt_embeds=pooled.to(dtype),
                              negative_pooled_prompt_embeds=neg_pooled.to(dtype))
        else:
            kwargs.update(prompt=list(texts))
            if params.negative_prompt:
                kwargs.update(negative_prompt=[params.negative_prompt] * len(texts))
            accepted = inspect.signature(self.pipe.__call__).parameters
            kwargs = {k: v for k, v in kwargs.items() if k in accepted}
        return list(self.pipe(**kwargs).images)


def _native_weights_kwargs(path: Path, index: dict, skip: set[str], allow_pickle: bool) -> dict:
    """Check every weighted component of a diffusers pipeline folder (neobabel.weights) before
    diffusers reads any: safetensors only, unless pickle is allowed."""
    pickled = False
    for name, entry in index.items():
        if name.startswith("_") or name in skip or not isinstance(entry, list) or not entry or entry[0] is None:
            continue
        folder = path / name
        if not (folder / "config.json").is_file():
            continue  # tokenizers, schedulers and feature extractors hold no weights
        library = "transformers" if entry[0] == "transformers" else "diffusers"
        pickled |= not weights_kwargs(folder, library, allow_pickle)["use_safetensors"]
    # A folder mixing formats loads with use_safetensors=None: each component prefers its
    # safetensors and falls back to its pickle (read with torch.load(weights_only=True)).
    return {"use_safetensors": None if pickled else True}


def _load_native(path: Path, dtype: torch.dtype, allow_pickle: bool = False):
    """Any diffusers text-to-image pipeline folder, with its own text encoder(s)."""
    from diffusers import DiffusionPipeline  # heavy: diffusers, only when a native pipeline loads

    index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
    kw = {"dtype": dtype}
    if "safety_checker" in index:
        # Audits need every image: a blacked-out image would count as "no face". Recorded.
        kw.update(safety_checker=None, requires_safety_checker=False)
    kw.update(_native_weights_kwargs(path, index, {"safety_checker"}, allow_pickle))
    with quiet_transformers():
        if kw["use_safetensors"] is None:  # the fallback logs each missing .safetensors at error level
            import diffusers  # heavy: diffusers (and torch), only when a model is built or loaded

            diffusers.utils.logging.set_verbosity(logging.CRITICAL)
        try:
            with reading_pickle(kw["use_safetensors"], path):
                pipe = DiffusionPipeline.from_pretrained(path, local_files_only=True, **kw)
        except InputError:
            raise
        except (OSError, ValueError) as e:
            raise InputError(f"could not load the diffusers pipeline in {path}: {str(e).splitlines()[0]}") from None
    unet = getattr(pipe, "unet", None)
    family = detect_family(dict(unet.config)) if unet is not None else "other"
    return pipe, family


__all__ = ["BabelPipeline", "GenerationParams", "parse_size", "assemble"]
