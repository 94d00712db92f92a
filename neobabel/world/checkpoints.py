"""Training checkpoints (resumable state), EMA weights kept along the way, and the export of
the EMA weights as a BabelPipeline folder (fp16, loads through `from_pretrained`)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save, save_file
from transformers import AutoTokenizer

from neobabel.atomicfiles import atomic_write_bytes
from neobabel.backbones import assemble
from neobabel.errors import InputError
from neobabel.modelfolder import GenerationDefaults
from neobabel.pipeline import BabelPipeline
from neobabel.world.bias import DEFAULT_PATH as BIAS_TABLE_PATH
from neobabel.world.trainconfig import WorldTrainConfig
from neobabel.world.trainmodels import build_models, sampling_scheduler


def save_checkpoint(out: Path, step: int, elapsed: float, tower, unet, ema, opt, cfg, aux=None) -> None:
    """Write out/checkpoint as a whole: built in a temporary folder, then swapped in by rename."""
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


def kept_ema_path(out: Path, step: int) -> Path:
    return out / "ema" / f"step-{step:07d}.safetensors"


def keep_ema(out: Path, step: int, elapsed: float, ema: dict[str, torch.Tensor]) -> None:
    # atomic: a kill mid-write leaves no half file under the real name; the step is in the name
    atomic_write_bytes(kept_ema_path(out, step), save({k: v.contiguous() for k, v in ema.items()},
                                                      metadata={"elapsed_s": str(elapsed)}))


def load_checkpoint(out: Path, tower, unet, ema, opt, device: torch.device, aux=None) -> tuple[int, float]:
    """Load out/checkpoint into the given modules in place; (step, elapsed seconds), (0, 0.0) if none."""
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


def export(cfg, out: Path, tower, unet, vae, ema, export_to, step: int, seconds: float) -> Path:
    """Save the EMA weights as a BabelPipeline folder (default out/model), replacing it atomically."""
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
        ema_file = kept_ema_path(out, at_step)
        if not ema_file.is_file():
            kept = sorted(int(f.stem.split("-")[1]) for f in (out / "ema").glob("step-*.safetensors"))
            raise InputError(f"--at-step {at_step}: {out} kept no EMA weights at that step; kept: "
                             f"{', '.join(map(str, kept)) or 'none (train with keep_ema_every > 0)'}")
        with safe_open(str(ema_file), "pt") as fh:
            step, elapsed = at_step, float(fh.metadata()["elapsed_s"])
        # beside, not over, the run's model/ (the last step's export)
        export_to = export_to if export_to is not None else out / f"model-step-{at_step}"
    tower, unet, vae, _ = build_models(cfg, AutoTokenizer.from_pretrained(out / "tokenizer"))
    ema = load_file(str(ema_file))
    return export(cfg, out, tower, unet, vae, ema, export_to, step, elapsed)
