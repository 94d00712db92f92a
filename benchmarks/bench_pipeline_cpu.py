"""CPU: BabelPipeline vs the bare diffusers pipeline on the same components.

Both run in this one process on the same StableDiffusionPipeline object (a small-but-real
SD-architecture model with random weights, 64x64 latents), interleaved rep by rep so machine
noise hits both alike. Reports images/s and the ratio ours/bare (target >= 0.95), for:
  - batch 1, ours with --fast-batching (pure pipeline overhead) and batch-invariant (default);
  - batch 4, ours with --fast-batching (batched denoiser, like bare diffusers);
  - batch 4, ours batch-invariant (default: per-sample denoiser calls) - the price of
    images that do not depend on batch size.
Usage: python benchmarks/bench_pipeline_cpu.py [--reps 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def build_model(folder: Path):
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel

    from neobabel.testing import build_clip_tokenizer, tiny_scheduler, tiny_unet, tiny_vae

    torch.manual_seed(0)
    unet = tiny_unet(cross_attention_dim=128, sample_size=32, block_out_channels=(64, 128),
                     norm_num_groups=32, attention_head_dim=8, layers_per_block=2)
    te = CLIPTextModel(CLIPTextConfig(hidden_size=128, intermediate_size=512, num_attention_heads=4,
                                      num_hidden_layers=4, vocab_size=1000, pad_token_id=1,
                                      bos_token_id=0, eos_token_id=2)).eval()
    tok = build_clip_tokenizer(folder / "tok")
    return StableDiffusionPipeline(vae=tiny_vae(), text_encoder=te, tokenizer=tok, unet=unet,
                                   scheduler=tiny_scheduler(), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from neobabel.pipeline import BabelPipeline

    torch.set_num_threads(torch.get_num_threads())
    with tempfile.TemporaryDirectory() as tmp:
        pipe = build_model(Path(tmp))
    pipe.set_progress_bar_config(disable=True)
    n_params = sum(p.numel() for p in pipe.unet.parameters())
    ours = BabelPipeline(pipe, None, family="sd", name="bench", revision="0")
    size, steps, guidance = 64, args.steps, 5.0

    def bare(batch: int):
        # Exactly what a diffusers user writes: one call with a list of prompts and generators.
        gens = [torch.Generator("cpu").manual_seed(s) for s in range(batch)]
        pipe(["a photo of a red circle"] * batch, num_inference_steps=steps, guidance_scale=guidance,
             height=size, width=size, generator=gens)

    def babel(batch: int, invariant: bool):
        ours.set_batch_invariant(invariant)
        ours.generate(["a photo of a red circle"] * batch, "en", 0, batch_size=batch, steps=steps,
                      guidance=guidance, width=size, height=size)
        ours.set_batch_invariant(False)  # bare diffusers runs on the same, unwrapped pipe

    cases = {
        "batch1_fast": (1, lambda: bare(1), lambda: babel(1, False)),
        "batch1_invariant": (1, lambda: bare(1), lambda: babel(1, True)),
        "batch4_fast": (4, lambda: bare(4), lambda: babel(4, False)),
        "batch4_invariant": (4, lambda: bare(4), lambda: babel(4, True)),
    }
    ours.set_batch_invariant(False)  # bare diffusers runs unwrapped; babel() sets its own mode
    results = {}
    for name, (batch, f_bare, f_ours) in cases.items():
        f_bare(), f_ours()  # warm-up
        t_bare, t_ours = [], []
        for _ in range(args.reps):
            for f, acc in ((f_bare, t_bare), (f_ours, t_ours)):
                t0 = time.perf_counter()
                f()
                acc.append(time.perf_counter() - t0)
        ips_bare = batch / statistics.median(t_bare)
        ips_ours = batch / statistics.median(t_ours)
        results[name] = {"batch": batch, "bare_images_per_s": round(ips_bare, 3),
                         "ours_images_per_s": round(ips_ours, 3), "ratio": round(ips_ours / ips_bare, 3)}
        print(f"{name:18s} bare {ips_bare:7.2f} img/s  ours {ips_ours:7.2f} img/s  ratio {ips_ours / ips_bare:.3f}")
    out = {"benchmark": "bench_pipeline_cpu", "unet_params": n_params, "size": size, "steps": steps,
           "guidance": guidance, "reps": args.reps, "threads": torch.get_num_threads(),
           "torch": torch.__version__, "python": platform.python_version(), "results": results}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
