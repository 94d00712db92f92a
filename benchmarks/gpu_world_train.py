"""Train the Babel-world model on a GPU inside a fixed time budget, in one call.

The lent GPU machines give a session ~15 minutes in all (start-up included) and 10 minutes per
command, so the step count of `configs/world/train-gpu.yaml` is fitted to the time at hand:
a short probe run measures seconds per step on this device, then the real run trains
`floor(minutes / (s/step))` steps in all (the main phase rounded down to a multiple of 500,
then the config's finetune phase) with the config's cosine schedule. The chosen count is
recorded in the model's training.json, so the model is
reproduced by `neobabel world train --config configs/world/train-gpu.yaml --device cuda
--steps N`. Everything it writes to --report comes back from the device machine: the model
as <=15 MB tar chunks (`cat model.tgz.* | tar xz` restores `model/`), the log and a summary.

Usage: python benchmarks/gpu_world_train.py --report DIR [--minutes 6] [--device cuda]
       [--config configs/world/train-gpu.yaml] [--work /tmp/world-gpu]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import shutil
import tarfile
import time
from pathlib import Path

import torch

from neobabel.world.train import load_config, train

CHUNK = 15 * 2**20  # the device tool brings back files of at most 16 MiB


def seconds_per_step(cfg, device: str, work: Path, steps: int = 120, skip: int = 40) -> float:
    """Time steps skip..steps of a throwaway run (the first ones pay CUDA/cuDNN warm-up)."""
    shutil.rmtree(work, ignore_errors=True)
    # no tower pretraining here: it is not part of the timed diffusion steps
    probe = cfg.model_copy(update={"steps": steps, "log_every": 20, "checkpoint_every": 10**9,
                                   "max_minutes": None, "tower_pretrain_steps": 0, "finetune": None})
    train(probe, work, device=device, progress=False)
    log = [json.loads(line) for line in (work / "train_log.jsonl").read_text().splitlines()]
    at = {r["step"]: r["elapsed_s"] for r in log}
    return (at[steps] - at[skip]) / (steps - skip)


def pack(model: Path, report: Path) -> list[str]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(model, arcname="model")
    data = buf.getvalue()
    names = []
    for i in range(0, len(data), CHUNK):
        name = f"model.tgz.{i // CHUNK:02d}"
        (report / name).write_bytes(data[i:i + CHUNK])
        names.append(name)
    return names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=6.0, help="training time to fill")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--config", type=Path, default=Path("configs/world/train-gpu.yaml"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/world-gpu"))
    args = ap.parse_args()
    args.report.mkdir(parents=True, exist_ok=True)
    cfg = load_config(args.config)
    summary = {"device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor(),
               "torch": torch.__version__, "config": str(args.config), "minutes": args.minutes}
    t = time.perf_counter()
    probe_dir = args.work.with_name(args.work.name + "-probe")
    try:
        sps = seconds_per_step(cfg, args.device, probe_dir)
    except RuntimeError as e:  # e.g. a sandbox whose /dev/shm cannot hold the workers' batches
        print(f"data workers failed ({str(e).splitlines()[0]}); rendering in the training process", flush=True)
        cfg = cfg.model_copy(update={"data_workers": 0})
        summary["data_workers_failed"] = str(e).splitlines()[0]
        sps = seconds_per_step(cfg, args.device, probe_dir)
    # the finetune phase (a fixed number of steps after the main phase) comes out of the same budget
    finetune_steps = cfg.finetune.steps if cfg.finetune else 0
    steps = min(cfg.steps, max(500, int(args.minutes * 60 / sps - finetune_steps) // 500 * 500))
    summary.update(probe_seconds=round(time.perf_counter() - t, 1), seconds_per_step=round(sps, 4), steps=steps,
                   data_workers=cfg.data_workers, batch_size=cfg.batch_size)
    print(json.dumps(summary), flush=True)
    # max_minutes is a safety net only (a run cut short keeps a high learning rate): the step
    # count above is sized to finish inside it.
    run = cfg.model_copy(update={"steps": steps, "max_minutes": args.minutes * 1.3})
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    # the tokenizer is a deterministic function of the config: reuse the probe's
    shutil.copytree(probe_dir / "tokenizer", args.work / "tokenizer")
    model = train(run, args.work, device=args.device, progress=False)
    trained = json.loads((model / "training.json").read_text())
    log = [json.loads(line) for line in (args.work / "train_log.jsonl").read_text().splitlines()]
    summary.update(trained_steps=trained["steps"], train_seconds=trained["train_seconds"],
                   final_loss=log[-1]["loss"] if log else None, chunks=pack(model, args.report))
    shutil.copy(args.work / "train_log.jsonl", args.report / "train_log.jsonl")
    if (args.work / "tower_pretrain_log.jsonl").is_file():
        shutil.copy(args.work / "tower_pretrain_log.jsonl", args.report / "tower_pretrain_log.jsonl")
    (args.report / "gpu_train.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
