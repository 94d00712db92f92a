"""Train the world model: a small tower + pixel-space UNet, exported as a BabelPipeline.

`neobabel world train --config configs/world/train.yaml [--device cuda]`. Data is rendered on
the fly from (seed, step); checkpoints (safetensors + a weights-only optimizer state) are
written every `checkpoint_every` steps and on interruption, and a rerun resumes from the last
one. The exported model is the EMA of the weights, saved in fp16 through the same
`BabelPipeline.save_pretrained` as any model, and loads through `from_pretrained`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Literal

import torch
from pydantic import (BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt,
                      model_validator)
from torch.nn import functional as F

from neobabel.configfile import read_yaml_mapping, resolve_config, validate_spec
from neobabel.errors import InputError
from neobabel.world.bias import DEFAULT_PATH as BIAS_TABLE_PATH, load_table
from neobabel.world.data import WorldDataConfig, WorldSampler, caption_corpus
from neobabel.world.spec import PRESENTATIONS
from neobabel.world.supervision import masked_mean, pretrain_tower


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

    @property
    def total_steps(self) -> int:
        return self.steps + (self.finetune.steps if self.finetune else 0)


def load_config(path: str | Path) -> WorldTrainConfig:
    path = resolve_config(path, "world")  # a file, or a shipped recipe: configs/world/train.yaml, train-gpu
    return validate_spec(read_yaml_mapping(path, "training config"), WorldTrainConfig, f"training config {path}")


def build_models(cfg: WorldTrainConfig, tokenizer):
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import XLMRobertaConfig, XLMRobertaModel

    from neobabel.components import PixelShuffleAutoencoder
    from neobabel.tower import MultilingualTower, TowerConfig

    torch.manual_seed(cfg.seed)
    t = cfg.tower
    enc = XLMRobertaModel(XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=t.hidden, num_hidden_layers=t.layers,
        num_attention_heads=t.heads, intermediate_size=t.intermediate,
        max_position_embeddings=t.max_length + 2, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    ), add_pooling_layer=False)
    tower = MultilingualTower(enc, tokenizer, TowerConfig(adapter="linear", out_dim=cfg.unet.cross_attention_dim,
                                                          max_length=t.max_length, zero_padding=t.zero_padding))
    levels = int(math.log2(cfg.unshuffle))
    vae = PixelShuffleAutoencoder(in_channels=3, block_out_channels=(3,) * (levels + 1))
    latent_ch = 3 * cfg.unshuffle**2
    n = len(cfg.unet.block_out_channels)
    attn = cfg.unet.cross_attention_levels or (True,) * (n - 1) + (False,)
    unet = UNet2DConditionModel(
        sample_size=cfg.size // cfg.unshuffle, in_channels=latent_ch, out_channels=latent_ch,
        block_out_channels=cfg.unet.block_out_channels, layers_per_block=cfg.unet.layers_per_block,
        down_block_types=tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn),
        up_block_types=tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)),
        cross_attention_dim=cfg.unet.cross_attention_dim, attention_head_dim=cfg.unet.attention_heads,
        norm_num_groups=32,
        addition_embed_type="text" if cfg.unet.text_time_embedding else None,
        addition_embed_type_num_heads=cfg.unet.attention_heads,
    )
    # Cosine schedule: linear betas waste most steps at tiny resolutions (design.md notes).
    noise_scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                                    prediction_type=cfg.prediction_type, clip_sample=False)
    return tower, unet, vae, noise_scheduler


def loss_weights(prediction_type: str, snr: torch.Tensor, gamma: float | None) -> torch.Tensor:
    """Per-sample weights of the MSE on the model's own target. The plain losses weigh the x0
    error by snr (epsilon), snr + 1 (v) and 1 (sample); with `gamma` that x0 weight becomes
    min(snr, gamma) for epsilon and v (Min-SNR-gamma) and min(snr + 1, gamma) for sample."""
    if gamma is None:
        return torch.ones_like(snr)
    if prediction_type == "sample":
        return torch.clamp(snr + 1, max=gamma)
    native = snr if prediction_type == "epsilon" else snr + 1
    return torch.clamp(snr, max=gamma) / native


def learning_rate(cfg: WorldTrainConfig, step: int) -> float:
    """The learning rate of step `step` (0-based): linear warmup, then constant or cosine; in the
    finetune phase, its own warmup and then its constant rate."""
    if cfg.finetune is not None and step >= cfg.steps:
        return cfg.finetune.lr * min(1.0, (step - cfg.steps + 1) / max(1, cfg.finetune.warmup))
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.lr_schedule == "constant":
        return cfg.lr
    done = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    final = cfg.lr * cfg.lr_final_scale
    return final + (cfg.lr - final) * 0.5 * (1 + math.cos(math.pi * done))


@torch.no_grad()
def ema_update(ema: dict[str, torch.Tensor], current: dict[str, torch.Tensor], decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * current for float tensors (copied otherwise), in a
    few fused kernels rather than one per tensor (hundreds of launches a step on a GPU)."""
    floats = [k for k, v in current.items() if v.dtype.is_floating_point]
    if floats:
        ema_f = [ema[k] for k in floats]
        torch._foreach_mul_(ema_f, decay)
        torch._foreach_add_(ema_f, [current[k].detach().float() for k in floats], alpha=1 - decay)
    for k, v in current.items():
        if not v.dtype.is_floating_point:
            ema[k].copy_(v)


class _Batches(torch.utils.data.IterableDataset):
    """Batches start..stop-1 of a run; worker i of w renders steps start+i, start+i+w, ... and
    the DataLoader returns them round-robin, i.e. in step order (checked by the caller)."""

    def __init__(self, sampler: WorldSampler, start: int, stop: int, batch_size: int):
        self.sampler, self.start, self.stop, self.batch_size = sampler, start, stop, batch_size

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        first, stride = (0, 1) if info is None else (info.id, info.num_workers)
        for step in range(self.start + first, self.stop, stride):
            images, texts, metas = self.sampler.batch(step, self.batch_size)
            presentation = torch.tensor([PRESENTATIONS.index(m["spec"].presentation) if m["spec"].kind == "portrait"
                                         else -1 for m in metas])
            yield step, torch.from_numpy(images), texts, presentation


def batch_stream(sampler: WorldSampler, start: int, stop: int, batch_size: int, workers: int = 0,
                 pin_memory: bool = False):
    """(step, uint8 images (n, H, W, 3), captions, presentation index per image (PRESENTATIONS;
    -1: an object scene)) for steps start..stop-1, in order."""
    data = _Batches(sampler, start, stop, batch_size)
    if workers <= 0:
        yield from data
        return
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=workers, prefetch_factor=4,
                                         pin_memory=pin_memory)
    for expected, (step, images, texts, presentation) in enumerate(loader, start):
        if step != expected:  # would silently reorder the data: never expected, so loud
            raise RuntimeError(f"data worker returned batch {step} where {expected} was due")
        yield step, images, texts, presentation


def _data_config(cfg: WorldTrainConfig, finetune: bool) -> WorldDataConfig:
    share = cfg.finetune.portrait_fraction if finetune else cfg.portrait_fraction
    return WorldDataConfig(size=cfg.size, portrait_fraction=share, color_mention_prob=cfg.color_mention_prob)


def run_stream(cfg: WorldTrainConfig, bias, start: int, pin_memory: bool = False):
    """The whole run's batches from `start`: the main phase's, then the finetune phase's (its
    own portrait share; batch t is still a function of (seed, t))."""
    yield from batch_stream(WorldSampler(bias, _data_config(cfg, False), seed=cfg.seed), start, cfg.steps,
                            cfg.batch_size, cfg.data_workers, pin_memory)
    if cfg.finetune is not None:
        yield from batch_stream(WorldSampler(bias, _data_config(cfg, True), seed=cfg.seed), max(start, cfg.steps),
                                cfg.total_steps, cfg.batch_size, cfg.data_workers, pin_memory)


def _tokenizer(cfg: WorldTrainConfig, bias, out: Path):
    """Train (or reload) the tokenizer on the 13-language caption corpus, deterministically."""
    from transformers import AutoTokenizer

    from neobabel.tower import train_subword_tokenizer

    tok_dir = out / "tokenizer"
    if (tok_dir / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(tok_dir)
    tok = train_subword_tokenizer(caption_corpus(bias, seed=cfg.seed), vocab_size=cfg.tower.vocab_size,
                                  model_max_length=cfg.tower.max_length)
    tok.save_pretrained(tok_dir)
    return tok


def _save_checkpoint(out: Path, step: int, elapsed: float, tower, unet, ema, opt, cfg, aux=None) -> None:
    from safetensors.torch import save_file

    tmp = out / f".checkpoint.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in tower.state_dict().items()}, str(tmp / "tower.safetensors"))
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, str(tmp / "unet.safetensors"))
    save_file({k: v.contiguous() for k, v in ema.items()}, str(tmp / "ema.safetensors"))
    torch.save(opt.state_dict(), tmp / "optimizer.pt")
    if aux is not None:  # the finetune phase's presentation head and its own optimizer
        head, aux_opt = aux
        save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(tmp / "presentation_head.safetensors"))
        torch.save(aux_opt.state_dict(), tmp / "presentation_head_optimizer.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, "elapsed_s": elapsed,
                                                "config": cfg.model_dump(mode="json")}, indent=1))
    final = out / "checkpoint"
    old = out / f".checkpoint.old-{os.getpid()}"
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


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


def _kept_ema_path(out: Path, step: int) -> Path:
    return out / "ema" / f"step-{step:07d}.safetensors"


def _keep_ema(out: Path, step: int, elapsed: float, ema: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save

    from neobabel.runs import atomic_write_bytes

    # atomic: a kill mid-write leaves no half file under the real name; the step is in the name
    atomic_write_bytes(_kept_ema_path(out, step), save({k: v.contiguous() for k, v in ema.items()},
                                                       metadata={"elapsed_s": str(elapsed)}))


def _load_checkpoint(out: Path, tower, unet, ema, opt, device: torch.device, aux=None) -> tuple[int, float]:
    from safetensors.torch import load_file

    ck = out / "checkpoint"
    if not (ck / "state.json").is_file():
        return 0, 0.0
    tower.load_state_dict(load_file(str(ck / "tower.safetensors")))
    unet.load_state_dict(load_file(str(ck / "unet.safetensors")))
    ema.update(load_file(str(ck / "ema.safetensors"), device=str(device)))
    opt.load_state_dict(torch.load(ck / "optimizer.pt", weights_only=True))
    if aux is not None and (ck / "presentation_head.safetensors").is_file():
        # absent in a checkpoint of the main phase: the head then starts as a straight run's does
        aux[0].load_state_dict(load_file(str(ck / "presentation_head.safetensors"), device=str(device)))
        aux[1].load_state_dict(torch.load(ck / "presentation_head_optimizer.pt", weights_only=True))
    state = json.loads((ck / "state.json").read_text())
    return int(state["step"]), float(state["elapsed_s"])


def train(cfg: WorldTrainConfig, out: str | Path, device: str = "cpu", progress: bool = True,
          export_to: str | Path | None = None) -> Path:
    """Train (resuming from `out/checkpoint`) and export the EMA model to `out/model`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    resuming = check_resume(out, cfg)
    bias = load_table()
    tokenizer = _tokenizer(cfg, bias, out)
    tower, unet, vae, noise_scheduler = build_models(cfg, tokenizer)
    tower.to(dev).train()
    unet.to(dev).train()
    if cfg.tower_pretrain_steps and not resuming:
        # a function of (config, seed): a run killed here simply pretrains again
        sampler = WorldSampler(bias, _data_config(cfg, False), seed=cfg.seed)

        def log(s, loss, acc):
            with open(out / "tower_pretrain_log.jsonl", "a") as fh:
                fh.write(json.dumps({"step": s, "loss": loss, "accuracy": acc}) + "\n")

        (out / "tower_pretrain_log.jsonl").unlink(missing_ok=True)
        pretrain_tower(tower, sampler, cfg.tower_pretrain_steps, cfg.tower_pretrain_batch, cfg.tower_pretrain_lr,
                       cfg.seed, dev, log)
    params = list(tower.parameters()) + list(unet.parameters())
    # fused: one kernel for the whole update on CUDA (the same arithmetic, in another order)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=dev.type == "cuda" or None)
    # state_dict tensors share storage with the parameters (and load_state_dict / the optimizer
    # update them in place), so this one dict stays current for the EMA below
    named = {**{f"tower.{k}": v for k, v in tower.state_dict().items()},
             **{f"unet.{k}": v for k, v in unet.state_dict().items()}}
    ema = {k: v.detach().clone().float() for k, v in named.items()}
    aux = _presentation_head(cfg, dev)
    step, elapsed_before = _load_checkpoint(out, tower, unet, ema, opt, dev, aux)
    (out / "train_config.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=1))

    alphas = noise_scheduler.alphas_cumprod.to(dev)
    snr = alphas / (1 - alphas)
    t0 = time.perf_counter()
    log_path = out / "train_log.jsonl"
    bar = _Bar(progress, cfg.total_steps, step)
    losses: list[torch.Tensor] = []  # on the device: reading each loss would sync every step
    head_losses: list[torch.Tensor] = []
    stream = run_stream(cfg, bias, step, pin_memory=dev.type == "cuda")
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
    try:
        for data_step, images, texts, presentation in stream:
            assert data_step == step
            if cfg.max_minutes and (elapsed_before + time.perf_counter() - t0) / 60 > cfg.max_minutes:
                break
            g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
            drop = torch.rand(len(texts), generator=g) < cfg.cfg_drop
            texts = ["" if d else t for d, t in zip(drop.tolist(), texts)]
            x = images.to(dev, non_blocking=True).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
            latents = vae.encode(x)
            noise = torch.randn(latents.shape, generator=g).to(dev)
            t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(texts),), generator=g)
            finetuning = cfg.finetune is not None and step >= cfg.steps
            if finetuning:  # drawn only here: the main phase's stream is unchanged
                ft = cfg.finetune
                high = torch.randint(ft.high_noise_from, noise_scheduler.config.num_train_timesteps, (len(texts),),
                                     generator=g)
                pick = (presentation >= 0) & (torch.rand(len(texts), generator=g) < ft.high_noise_fraction)
                t = torch.where(pick, high, t)
            t = t.to(dev)
            noisy = noise_scheduler.add_noise(latents, noise, t)
            batch = tower.tokenize(texts)
            mask = batch["attention_mask"].to(dev)
            with autocast:
                cond, _ = tower(batch["input_ids"].to(dev), mask)
                pred = unet(noisy, t, encoder_hidden_states=cond).sample.float()
            target = {"epsilon": noise, "sample": latents}.get(cfg.prediction_type)
            if target is None:
                target = noise_scheduler.get_velocity(latents, noise, t)
            per_sample = F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3))
            loss = (per_sample * loss_weights(cfg.prediction_type, snr[t], cfg.min_snr_gamma)).mean()
            lr = learning_rate(cfg, step)
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            head_loss = None
            labelled = (presentation >= 0) & ~drop  # portraits whose caption was kept
            if finetuning and aux is not None and labelled.any():
                head, aux_opt = aux
                logits = head(masked_mean(cond.float(), mask)[labelled.to(dev)])
                head_loss = F.cross_entropy(logits, presentation[labelled].to(dev))
                for group in aux_opt.param_groups:
                    group["lr"] = lr
                aux_opt.zero_grad(set_to_none=True)
            (loss if head_loss is None else loss + cfg.finetune.presentation_head * head_loss).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if head_loss is not None:
                aux[1].step()
                head_losses.append(head_loss.detach())
            step += 1
            decay = cfg.finetune.ema_decay if finetuning and cfg.finetune.ema_decay is not None else cfg.ema_decay
            ema_update(ema, named, min(decay, (1 + step) / (10 + step)))
            losses.append(loss.detach())
            bar.update(step)
            if step % cfg.log_every == 0:
                mean_loss = torch.stack(losses).double().mean().item()
                row = {"step": step, "loss": mean_loss, "lr": lr,
                       "elapsed_s": round(elapsed_before + time.perf_counter() - t0, 1)}
                if head_losses:
                    row["presentation_loss"] = torch.stack(head_losses).double().mean().item()
                    head_losses.clear()
                with open(log_path, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
                bar.update(step, mean_loss)
                losses.clear()
            # kept before the checkpoint: a run killed between the two redoes this step and keeps it
            if cfg.keep_ema_every and step % cfg.keep_ema_every == 0:
                _keep_ema(out, step, elapsed_before + time.perf_counter() - t0, ema)
            if step % cfg.checkpoint_every == 0:
                _save_checkpoint(out, step, elapsed_before + time.perf_counter() - t0, tower, unet, ema, opt, cfg, aux)
    finally:
        stream.close()  # stops data workers
        bar.close()
        _save_checkpoint(out, step, elapsed_before + time.perf_counter() - t0, tower, unet, ema, opt, cfg, aux)
    return export(cfg, out, tower, unet, vae, ema, export_to, step, elapsed_before + time.perf_counter() - t0)


def _presentation_head(cfg: WorldTrainConfig, dev: torch.device):
    """(head, its optimizer) for the finetune phase's auxiliary loss, or None. Initialised from
    the seed alone, so a run resumed at the phase boundary starts it as a straight run does."""
    if cfg.finetune is None or not cfg.finetune.presentation_head:
        return None
    head = torch.nn.Linear(cfg.unet.cross_attention_dim, len(PRESENTATIONS))
    gen = torch.Generator().manual_seed(cfg.seed + 17)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=gen) * 0.02)
        head.bias.zero_()
    head.to(dev)
    return head, torch.optim.AdamW(head.parameters(), lr=cfg.finetune.lr, weight_decay=cfg.weight_decay)


def sampling_scheduler(prediction_type: str):
    """The DDIM sampler a world model is exported with."""
    from diffusers import DDIMScheduler

    # The cosine schedule's alpha-bar is ~0 at t=999, so an epsilon or v model's x0 estimate
    # (x - sigma*eps)/alpha amplifies errors ~1000x on the first step; for those, x0 is clipped to
    # [-1, 1] (diffusers' thresholding with sample_max_value=1, carried into any scheduler
    # swapped in with --scheduler that supports it). An x0 ("sample") model's estimate is its own
    # output, with nothing amplified, and is left alone: clipping it after classifier-free
    # guidance clips each RGB channel separately, which turns guided colours into other hues
    # (orange -> green; v7 at guidance 4 drew the named colour 30% of the time clipped, 100% not).
    #
    # "trailing" spacing starts sampling at t=999 (pure noise, where the model was trained on
    # pure noise). diffusers' default "leading" spacing with 20 steps starts at t=951, where the
    # model expects ~8% signal in its input (alpha-bar 0.006) and so reads a head-and-shoulders
    # layout, and with it a presentation, out of the starting noise; the caption never got to
    # decide (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed";
    # RESULTS §7f: the same seeds gave the same presentation for "Arztes" and "Ärztin").
    clip = prediction_type != "sample"
    return DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type=prediction_type,
                         clip_sample=clip, thresholding=clip, sample_max_value=1.0, steps_offset=1,
                         timestep_spacing="trailing")


def export(cfg, out: Path, tower, unet, vae, ema, export_to, step: int, seconds: float) -> Path:
    from neobabel.backbones import assemble
    from neobabel.modelfolder import GenerationDefaults
    from neobabel.pipeline import BabelPipeline

    tower.load_state_dict({k[len("tower."):]: v for k, v in ema.items() if k.startswith("tower.")})
    unet.load_state_dict({k[len("unet."):]: v for k, v in ema.items() if k.startswith("unet.")})
    tower.cpu().eval()
    unet.cpu().eval()
    sched = sampling_scheduler(cfg.prediction_type)
    pipe = BabelPipeline(assemble("sd", unet, vae, sched), tower, family="sd", name="world",
                         defaults=GenerationDefaults(steps=cfg.sample_steps, guidance=cfg.sample_guidance,
                                                     width=cfg.size, height=cfg.size, scheduler="ddim"))
    target = Path(export_to) if export_to else out / "model"
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp, dtype=torch.float16)
    (tmp / "training.json").write_text(json.dumps({"steps": step, "train_seconds": round(seconds, 1),
                                                   "config": cfg.model_dump(mode="json")}, indent=1))
    shutil.copy(BIAS_TABLE_PATH, tmp / "bias.yaml")
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return target


def export_checkpoint(out: str | Path, export_to: str | Path | None = None, *, sample_steps: int | None = None,
                      sample_guidance: float | None = None, at_step: int | None = None) -> Path:
    """Export the EMA weights of `out/checkpoint` (e.g. while training continues elsewhere), or
    those kept at step `at_step` (`keep_ema_every`).

    `sample_steps` / `sample_guidance` replace the config's sampling defaults recorded with the
    model (they do not touch training, so a config edited to match reproduces the export)."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    out = Path(out)
    ck = out / "checkpoint"
    if not (ck / "state.json").is_file():
        raise InputError(f"{out} has no checkpoint; train first with `neobabel world train --out {out}`")
    state = json.loads((ck / "state.json").read_text())
    cfg = WorldTrainConfig(**state["config"])
    if sample_steps is not None and sample_steps < 1:
        raise InputError(f"--steps {sample_steps}: sampling needs at least 1 step")
    if sample_guidance is not None and sample_guidance < 0:
        raise InputError(f"--guidance {sample_guidance} must not be negative")
    cfg = cfg.model_copy(update={k: v for k, v in (("sample_steps", sample_steps),
                                                    ("sample_guidance", sample_guidance)) if v is not None})
    step, elapsed, ema_file = int(state["step"]), float(state["elapsed_s"]), ck / "ema.safetensors"
    if at_step is not None:
        ema_file = _kept_ema_path(out, at_step)
        if not ema_file.is_file():
            kept = sorted(int(f.stem.split("-")[1]) for f in (out / "ema").glob("step-*.safetensors"))
            raise InputError(f"--at-step {at_step}: {out} kept no EMA weights at that step; kept: "
                             f"{', '.join(map(str, kept)) or 'none (train with keep_ema_every > 0)'}")
        from safetensors import safe_open

        with safe_open(str(ema_file), "pt") as fh:
            step, elapsed = at_step, float(fh.metadata()["elapsed_s"])
        # beside, not over, the run's model/ (the last step's export)
        export_to = export_to if export_to is not None else out / f"model-step-{at_step}"
    tower, unet, vae, _ = build_models(cfg, AutoTokenizer.from_pretrained(out / "tokenizer"))
    ema = load_file(str(ema_file))
    return export(cfg, out, tower, unet, vae, ema, export_to, step, elapsed)


class _Bar:
    """Training progress through the project's one display (neobabel.progress)."""

    def __init__(self, enabled: bool, total: int, start: int):
        from neobabel.progress import progress_bar

        # the loss shown is the last log line's: reading it every step would sync the GPU
        self.step, self.loss = start, float("nan")
        self.bar = progress_bar("training", total, enabled=enabled, unit="step", done=start,
                                detail=lambda: f"loss {self.loss:.4f}")
        self.advance = self.bar.__enter__()

    def update(self, step: int, loss: float | None = None) -> None:
        if loss is not None:
            self.loss = loss
        self.advance(step - self.step)
        self.step = step

    def close(self) -> None:
        self.bar.__exit__(None, None, None)
