"""GPU: full-size SD 1.5 (random weights from the real configs; nothing downloaded).

UNet 860M + VAE 84M + CLIP ViT-L/14 text encoder 123M, built from SD 1.5's published
architecture configs with random weights, fp16, 512x512, 25 DPM-Solver++ steps. For batch 1
and 8 and each attention backend (sdpa; xformers when installed), measures images/s and peak
GPU memory of the bare diffusers pipeline and of BabelPipeline (batch-invariant default and
--fast-batching), all in this one process on the same components.
Usage: python benchmarks/bench_sd15_gpu.py [--reps 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32,
)
SD15_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=512,
    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[128, 256, 512, 512], scaling_factor=0.18215,
)
SD15_TEXT = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                 max_position_embeddings=77, vocab_size=49408, projection_dim=768, hidden_act="quick_gelu")


def build(device: str):
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from neobabel.testing import build_clip_tokenizer

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tok = build_clip_tokenizer(Path(tmp) / "tok")
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL(**SD15_VAE), text_encoder=CLIPTextModel(CLIPTextConfig(**SD15_TEXT)),
        tokenizer=tok, unet=UNet2DConditionModel(**SD15_UNET),
        scheduler=DPMSolverMultistepScheduler(beta_start=0.00085, beta_end=0.012,
                                              beta_schedule="scaled_linear"),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    return pipe.to(device, torch.float16)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_sd15_gpu: needs a CUDA GPU (torch sees none); run it on the GPU machine")

    from neobabel.backbones import set_attention_backend, xformers_available
    from neobabel.pipeline import BabelPipeline

    pipe = build("cuda")
    pipe.set_progress_bar_config(disable=True)
    ours = BabelPipeline(pipe, None, family="sd", name="sd15-random", revision="0", device="cuda")
    backends = ["sdpa"] + (["xformers"] if xformers_available() else [])
    prompt = "a photo of the face of a doctor"
    results = []

    def timed(fn, batch):
        fn()  # warm-up (cuDNN autotune, allocator)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return batch / statistics.median(times), torch.cuda.max_memory_allocated() / 2**30

    for backend in backends:
        ours.attention = set_attention_backend(pipe, backend, "cuda")
        for batch in [int(b) for b in args.batches.split(",")]:
            def bare():
                ours.set_batch_invariant(False)
                gens = [torch.Generator("cpu").manual_seed(s) for s in range(batch)]
                pipe([prompt] * batch, num_inference_steps=args.steps, guidance_scale=7.5,
                     height=512, width=512, generator=gens)

            def babel(invariant):
                def run():
                    ours.set_batch_invariant(invariant)
                    ours.generate([prompt] * batch, "en", 0, batch_size=batch, steps=args.steps,
                                  guidance=7.5, width=512, height=512)
                return run

            row = {"attention": backend, "batch": batch}
            for name, fn in (("bare", bare), ("ours_invariant", babel(True)), ("ours_fast", babel(False))):
                ips, mem = timed(fn, batch)
                row[f"{name}_images_per_s"] = round(ips, 3)
                row[f"{name}_peak_gib"] = round(mem, 2)
            row["ratio_invariant"] = round(row["ours_invariant_images_per_s"] / row["bare_images_per_s"], 3)
            row["ratio_fast"] = round(row["ours_fast_images_per_s"] / row["bare_images_per_s"], 3)
            print(row, flush=True)
            results.append(row)
    out = {"benchmark": "bench_sd15_gpu", "device": torch.cuda.get_device_name(0), "steps": args.steps,
           "size": 512, "dtype": "float16", "reps": args.reps, "torch": torch.__version__,
           "results": results}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
