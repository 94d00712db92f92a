"""CPU images/s of three generation paths, all in this one process (issue 25):

  - old-invariant: the path shipped before issue 25 (the denoiser called one sample at a
    time, the VAE decoding one image at a time, default oneDNN kernels), re-created here;
  - invariant: the default now, batched under `neobabel.invariance.batch_invariant`;
  - fast: batched with torch's default kernels (`--fast-batching`), rows not invariant.

For the embedded world model (its defaults: 32x32, 20 DDIM steps) and an SD-architecture model
with random weights (benchmarks/bench_pipeline_cpu.py's, 64x64 px, 10 steps), at batch 1, 4
and 16, 16 images per measurement; paths interleaved rep by rep so machine noise hits all.
Usage: python benchmarks/bench_batch_invariance.py [--reps 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

PROMPTS = ["a photo of a red circle", "ein Foto von zwei blauen Quadraten", "一张绿色三角形的照片",
           "una foto del rostro de una doctora"]
N_IMAGES = 16


def _slice(value, i, n):
    if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == n:
        return value[i : i + 1]
    if isinstance(value, dict):
        return {k: _slice(v, i, n) for k, v in value.items()}
    return value


@contextlib.contextmanager
def old_invariant_path(pipe):
    """The pre-issue-25 invariant path: per-sample UNet calls and VAE slicing."""
    unet, vae = pipe.pipe.unet, pipe.pipe.vae
    batched = unet.forward

    def per_sample(self, sample, timestep, encoder_hidden_states, *args, **kwargs):
        n = sample.shape[0]
        outs = [batched(sample[i : i + 1], _slice(timestep, i, n), _slice(encoder_hidden_states, i, n),
                        *args, **{k: _slice(v, i, n) for k, v in kwargs.items()}) for i in range(n)]
        if isinstance(outs[0], tuple):
            return (torch.cat([o[0] for o in outs]),)
        return type(outs[0])(sample=torch.cat([o.sample for o in outs]))

    pipe.set_batch_invariant(False)
    unet.forward = types.MethodType(per_sample, unet)
    if hasattr(vae, "enable_slicing"):
        vae.enable_slicing()
    try:
        yield
    finally:
        unet.forward = batched
        if hasattr(vae, "disable_slicing"):
            vae.disable_slicing()
        pipe.set_batch_invariant(True)


def run_path(pipe, path: str, batch: int, kw: dict) -> float:
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(N_IMAGES)]
    if path == "old-invariant":
        ctx = old_invariant_path(pipe)
    else:
        pipe.set_batch_invariant(path == "invariant")
        ctx = contextlib.nullcontext()
    with ctx:
        t0 = time.perf_counter()
        pipe.generate(prompts, "en", list(range(N_IMAGES)), batch_size=batch, **kw)
        dt = time.perf_counter() - t0
    pipe.set_batch_invariant(True)
    return N_IMAGES / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--models", default="world,sd-arch")
    args = ap.parse_args()

    from bench_pipeline_cpu import build_model

    from neobabel.pipeline import BabelPipeline

    models = {}
    if "world" in args.models:
        models["world"] = (BabelPipeline.from_pretrained("world"), {})
    if "sd-arch" in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            sd = build_model(Path(tmp))
        models["sd-arch"] = (BabelPipeline(sd, None, family="sd", name="bench", revision="0"),
                             {"steps": 10, "guidance": 5.0, "width": 64, "height": 64})
    paths = ("old-invariant", "invariant", "fast")
    results = []
    for name, (pipe, kw) in models.items():
        run_path(pipe, "invariant", 4, kw)  # warm-up
        for batch in (1, 4, 16):
            reps = {p: [] for p in paths}
            for _ in range(args.reps):
                for p in paths:
                    reps[p].append(run_path(pipe, p, batch, kw))
            row = {"model": name, "batch": batch, **{p: statistics.median(v) for p, v in reps.items()}}
            row["invariant_vs_fast"] = row["invariant"] / row["fast"]
            row["invariant_vs_old"] = row["invariant"] / row["old-invariant"]
            results.append(row)
            print(f"{name:8s} batch {batch:2d}: old-invariant {row['old-invariant']:6.2f}  invariant "
                  f"{row['invariant']:6.2f}  fast {row['fast']:6.2f} images/s  (invariant/fast "
                  f"{row['invariant_vs_fast']:.2f}, invariant/old {row['invariant_vs_old']:.2f})", flush=True)
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.processor(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "reps": args.reps,
            "images_per_measurement": N_IMAGES}
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
