"""The world model's training config: the YAML recipe (configs/world/train*.yaml) as typed
models, and which of its fields a resumed run may change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import (BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt,
                      model_validator)

from neobabel.configfile import read_yaml_mapping, resolve_config, validate_spec
from neobabel.errors import InputError
from neobabel.languages import normalize_lang


class TowerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hidden: int = 192
    layers: int = 4
    heads: int = 4
    intermediate: int = 512
    vocab_size: int = 2000
    max_length: int = 48
    zero_padding: bool = False  # see TowerConfig.zero_padding


class UNetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    block_out_channels: tuple[int, ...] = (96, 192, 192)
    layers_per_block: int = 1
    cross_attention_dim: int = 192
    attention_heads: int = 4
    # Also add an attention-pooled caption embedding to the timestep embedding (diffusers'
    # addition_embed_type="text"), so every ResNet block is modulated by the caption: a direct
    # path for global attributes (colour, shape, occupation) besides cross-attention.
    text_time_embedding: bool = False
    # Which levels (outermost first) get cross-attention; None: all but the innermost. A plain
    # outermost level lets a 2x-unshuffled model work at 32x32 without 1024-token attention.
    cross_attention_levels: tuple[bool, ...] | None = None

    @model_validator(mode="after")
    def _one_flag_per_level(self):
        if self.cross_attention_levels is not None and len(self.cross_attention_levels) != len(self.block_out_channels):
            raise ValueError(f"cross_attention_levels has {len(self.cross_attention_levels)} entries for "
                             f"{len(self.block_out_channels)} levels (block_out_channels); give one per level")
        return self


class FinetuneSpec(BaseModel):
    """A second phase, run after `steps` on the same weights, optimizer and EMA: what the first
    phase leaves unlearned. v8 ignored the wording of portrait prompts: its x0 estimate at t=999
    was the same half-feminine blur for "Arztes" and "Ärztin" (RESULTS §7f). Presentation is
    a large-area feature, visible in the noisy input from t ~ 960 down (alpha-bar 0.004), so only
    the top few percent of timesteps teach the caption's say in it. Here portraits make up more
    of each batch, most of them are noised into that range, and an auxiliary head asks the
    tower for the presentation each caption makes likely."""

    model_config = ConfigDict(extra="forbid")
    steps: PositiveInt
    lr: PositiveFloat = 2e-4  # constant after `warmup`: the phase can be lengthened on resume
    warmup: NonNegativeInt = 100
    portrait_fraction: float = Field(0.6, ge=0, le=1)
    # share of portraits whose timestep is drawn from [high_noise_from, 1000) rather than [0, 1000)
    high_noise_fraction: float = Field(0.7, ge=0, le=1)
    high_noise_from: int = Field(950, ge=0, lt=1000)
    # Weight of the auxiliary loss: a linear head on the tower's mask-averaged output predicts
    # the presentation drawn in each portrait (cross-entropy; its minimum is reached by the
    # caption's planted probabilities). The head is thrown away at export, as the caption-
    # supervision heads are (neobabel.world.supervision); 0: no head.
    presentation_head: NonNegativeFloat = 0.0
    # EMA decay during the phase (default: the main phase's). At 0.999 the EMA averages over
    # ~1,000 steps, so after a 900-step phase 40% of the exported weights are still pre-phase
    # ones; a shorter horizon lets the export reflect the phase (RESULTS §7h).
    ema_decay: float | None = Field(None, gt=0, lt=1)


class WorldTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    size: int = 64
    unshuffle: int = 4  # pixel-unshuffle factor: 64x64x3 -> 16x16x48
    steps: int = 4000
    batch_size: int = 48
    lr: float = 4e-4
    warmup: int = 200
    # "cosine" decays the rate to lr_final_scale * lr at the last step (after warmup).
    lr_schedule: Literal["constant", "cosine"] = "constant"
    lr_final_scale: float = 0.1
    weight_decay: float = 0.01
    ema_decay: float = 0.999
    cfg_drop: float = 0.1  # caption dropped to "" this often (classifier-free guidance)
    # What the UNet predicts. "sample" (x0): the clean image, flat colours; the net never has to
    # reproduce the noise, which a 48-channel pixel-unshuffled input squeezed through 64 channels
    # did only partly (a v model removed ~40% of the noise variance at t=10). v-prediction and
    # epsilon weigh the x0 error by snr+1 and snr; epsilon+min-SNR (v1) gave high-noise steps,
    # where only the caption says what the image holds, ~1% weight: v1 ignored its captions.
    prediction_type: Literal["epsilon", "v_prediction", "sample"] = "sample"
    # Cap of the loss weight in x0-error terms (None: off): min(snr, gamma) for epsilon and v
    # (Min-SNR-gamma, Hang et al. 2023); min(snr + 1, gamma) for sample, i.e. weight 1 at high
    # noise rising to gamma at low noise, where edges are sharpened.
    min_snr_gamma: float | None = None
    checkpoint_every: int = 250
    log_every: int = 25
    # Every this many steps also keep that step's EMA weights (out/ema/step-NNNNNNN.safetensors;
    # 0: only the latest checkpoint), so the export can be chosen by evaluating several points
    # of the run: one run's last step is a poor sample of its recipe (benchmarks/RESULTS.md §6e).
    keep_ema_every: NonNegativeInt = 0
    max_minutes: float | None = None  # stop (and export) when this much time has passed
    threads: int | None = None
    # Processes rendering batches ahead of the training step (0: render in the training
    # process). Batch t is still a function of (seed, t), so the data and the result are the
    # same for any number; on a GPU the renderer is otherwise the bottleneck.
    data_workers: int = 0
    # "bf16": autocast the forward passes to bfloat16 (CUDA); weights, optimizer and EMA stay
    # fp32. Results then differ in the last bits from an fp32 run.
    precision: Literal["fp32", "bf16"] = "fp32"
    portrait_fraction: float = 0.35
    color_mention_prob: float = 0.5
    # Caption languages the model trains on (None: all 13). ["en"] gives an English-only model
    # whose own text encoder never sees another language: the backbone `neobabel distill`
    # aligns a multilingual tower to (benchmarks/RESULTS.md §16).
    # Left out of the record when unset, so the configs (and checkpoints) of all-language models
    # read as before the field existed.
    langs: list[str] | None = Field(None, exclude_if=lambda v: v is None)
    sample_steps: int = 20
    sample_guidance: float = 2.0
    # Caption-only steps that pretrain the tower to predict what each caption names, before
    # diffusion training (neobabel.world.supervision); 0: the tower starts from random weights.
    tower_pretrain_steps: NonNegativeInt = 0
    tower_pretrain_batch: PositiveInt = 256
    tower_pretrain_lr: PositiveFloat = 1e-3
    tower: TowerSpec = TowerSpec()
    unet: UNetSpec = UNetSpec()
    finetune: FinetuneSpec | None = None

    @model_validator(mode="after")
    def _known_langs(self):
        if self.langs is not None:
            if not self.langs:
                raise ValueError("langs is empty; leave it out for all languages")
            self.langs = [normalize_lang(code) for code in self.langs]
        return self

    @property
    def total_steps(self) -> int:
        return self.steps + (self.finetune.steps if self.finetune else 0)


def load_config(path: str | Path) -> WorldTrainConfig:
    path = resolve_config(path, "world")  # a file, or a shipped recipe: configs/world/train.yaml, train-gpu
    return validate_spec(read_yaml_mapping(path, "training config"), WorldTrainConfig, f"training config {path}")


# What a resumed run may change: how long and how fast it trains, its schedule and sampling
# defaults. Everything else defines the model or its data stream, and a change would silently
# give a model that no config describes.
RESUMABLE_CHANGES = frozenset({"steps", "max_minutes", "threads", "data_workers", "precision",
                               "checkpoint_every", "log_every", "keep_ema_every", "lr", "warmup",
                               "lr_schedule", "lr_final_scale", "sample_steps", "sample_guidance",
                               # a phase after `steps`: adding it to a finished run gives what the
                               # new config describes, as a from-scratch run of it would
                               "finetune"})


def check_resume(out: Path, cfg: WorldTrainConfig) -> bool:
    """Whether `out` holds a checkpoint to resume; refused if trained with another model or data config."""
    state_file = out / "checkpoint" / "state.json"
    if not state_file.is_file():
        return False
    try:
        before = json.loads(state_file.read_text())["config"]
    except (json.JSONDecodeError, KeyError):
        raise InputError(f"{state_file} is unreadable; delete {out / 'checkpoint'} to start over") from None

    def flat(d: dict) -> dict:  # "tower.zero_padding", not the whole tower dict, in the message
        return {f"{k}.{kk}" if isinstance(v, dict) else k: vv
                for k, v in d.items() for kk, vv in (v.items() if isinstance(v, dict) else [(None, v)])}

    try:  # fields added since the checkpoint was written take their defaults, as on export
        before = WorldTrainConfig(**before).model_dump(mode="json")
    except ValueError:
        pass  # a field this version does not know: compared as written
    before, now = flat(before), flat(cfg.model_dump(mode="json"))
    changed = sorted(k for k in now if k.split(".")[0] not in RESUMABLE_CHANGES and before.get(k) != now[k])
    if changed:
        what = ", ".join(f"{k}: {before.get(k)!r} -> {now[k]!r}" for k in changed)
        raise InputError(f"{out} holds a checkpoint trained with another config ({what}); "
                         "restore those settings to resume, or train into a new --out")
    return True
