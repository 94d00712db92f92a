"""Train the world model: a small tower + pixel-space UNet, exported as a BabelPipeline.

`neobabel world train --config configs/world/train.yaml [--device cuda]`. Data is rendered on
the fly from (seed, step); checkpoints (safetensors + a weights-only optimizer state) are
written every `checkpoint_every` steps and on interruption, and a rerun resumes from the last
one. The exported model is the EMA of the weights, saved in fp16 through the same
`BabelPipeline.save_pretrained` as any model, and loads through `from_pretrained`.

Here: the data stream, the loss, learning rate and EMA, and the training loop. Beside it:
``trainconfig`` (the YAML recipe, what a resume may change), ``trainmodels`` (tokenizer, tower,
UNet, schedulers) and ``checkpoints`` (checkpoints, kept EMA weights, export); their public
names are re-exported here.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from neobabel.errors import InputError
from neobabel.progress import progress_bar
from neobabel.world.bias import load_table
from neobabel.world.checkpoints import (
    export, export_checkpoint, keep_ema, kept_ema_path, load_checkpoint, save_checkpoint,
)
from neobabel.world.data import WorldDataConfig, WorldSampler
from neobabel.world.spec import PRESENTATIONS
from neobabel.world.supervision import masked_mean, pretrain_tower
from neobabel.world.trainconfig import (
    RESUMABLE_CHANGES, FinetuneSpec, TowerSpec, UNetSpec, WorldTrainConfig, check_resume, load_config,
)
from neobabel.world.trainmodels import build_models, presentation_head, sampling_scheduler, world_tokenizer

__all__ = [  # the config, model and export names are re-exported: callers import them from here
    "RESUMABLE_CHANGES", "FinetuneSpec", "TowerSpec", "UNetSpec", "WorldTrainConfig", "batch_stream",
    "build_models", "check_resume", "ema_update", "export", "export_checkpoint", "kept_ema_path",
    "learning_rate", "load_config", "loss_weights", "run_stream", "sampling_scheduler", "train",
]


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
    langs = {"langs": tuple(cfg.langs)} if cfg.langs else {}
    return WorldDataConfig(size=cfg.size, portrait_fraction=share, color_mention_prob=cfg.color_mention_prob,
                           **langs)


def run_stream(cfg: WorldTrainConfig, bias, start: int, pin_memory: bool = False):
    """The whole run's batches from `start`: the main phase's, then the finetune phase's (its
    own portrait share; batch t is still a function of (seed, t))."""
    yield from batch_stream(WorldSampler(bias, _data_config(cfg, False), seed=cfg.seed), start, cfg.steps,
                            cfg.batch_size, cfg.data_workers, pin_memory)
    if cfg.finetune is not None:
        yield from batch_stream(WorldSampler(bias, _data_config(cfg, True), seed=cfg.seed), max(start, cfg.steps),
                                cfg.total_steps, cfg.batch_size, cfg.data_workers, pin_memory)


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
    tokenizer = world_tokenizer(cfg, bias, out)
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
    aux = presentation_head(cfg, dev)
    step, elapsed_before = load_checkpoint(out, tower, unet, ema, opt, dev, aux)
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
                keep_ema(out, step, elapsed_before + time.perf_counter() - t0, ema)
            if step % cfg.checkpoint_every == 0:
                save_checkpoint(out, step, elapsed_before + time.perf_counter() - t0, tower, unet, ema, opt, cfg, aux)
    finally:
        stream.close()  # stops data workers
        bar.close()
        save_checkpoint(out, step, elapsed_before + time.perf_counter() - t0, tower, unet, ema, opt, cfg, aux)
    return export(cfg, out, tower, unet, vae, ema, export_to, step, elapsed_before + time.perf_counter() - t0)


class _Bar:
    """Training progress through the project's one display (neobabel.progress)."""

    def __init__(self, enabled: bool, total: int, start: int):
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
