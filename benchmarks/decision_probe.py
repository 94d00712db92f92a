"""At which sampler step is a portrait's presentation decided? (RESULTS §7h)

Runs a world model's own DDIM sampler by hand for German portrait prompts and reads each step's
x0 estimate along the feminine-minus-masculine axis of rendered portraits of the occupation
(`presentation_probe.presentation_axis`). Prints, per prompt, the share of seeds whose final
image is feminine-coded and how often each step's estimate already agrees with the final one.
A model that has learned the top of the schedule returns the caption's mean at t = 999 (no
definite person), so agreement there should sit near the final share, not near 1.

    python benchmarks/decision_probe.py [MODEL] [--guidance 1] [--seeds 48]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from presentation_probe import presentation_axis  # noqa: E402

from neobabel.pipeline import BabelPipeline  # noqa: E402
from neobabel.registry import world_weights_path  # noqa: E402
from neobabel.world.bias import load_table  # noqa: E402

PROMPTS = [("doctor", "direct"), ("doctor", "feminine"), ("doctor", "indirect"), ("nurse", "direct")]


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default=str(world_weights_path()))
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--seeds", type=int, default=48)
    args = ap.parse_args()
    pipe = BabelPipeline.from_pretrained(args.model)
    unet, tower, vae, sch = pipe.pipe.unet.float(), pipe.tower.float(), pipe.pipe.vae, pipe.pipe.scheduler
    cells = {(c.occupation, c.formulation): c for c in load_table().cells if c.lang == "de"}
    n = args.seeds
    noise = torch.randn((n, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size),
                        generator=torch.Generator().manual_seed(123))
    sch.set_timesteps(20)
    steps = sch.timesteps.tolist()
    empty = tower.tokenize([""] * n)
    uncond, _ = tower(empty["input_ids"], empty["attention_mask"])
    for occupation, formulation in PROMPTS:
        cell = cells[(occupation, formulation)]
        w, fem, masc = presentation_axis(occupation, 32)
        batch = tower.tokenize([cell.prompt] * n)
        cond, _ = tower(batch["input_ids"], batch["attention_mask"])
        x, reads = noise.clone() * sch.init_noise_sigma, []
        for t in steps:
            tt = torch.full((n,), t)
            x0 = unet(x, tt, encoder_hidden_states=cond).sample
            if args.guidance != 1:
                x0u = unet(x, tt, encoder_hidden_states=uncond).sample
                x0 = x0u + args.guidance * (x0 - x0u)
            out = sch.step(x0, t, x)
            img = vae.decode(out.pred_original_sample)
            img = getattr(img, "sample", img).permute(0, 2, 3, 1).double().numpy()
            reads.append(((img * w).sum((1, 2, 3)) - masc) / (fem - masc) > 0.5)
            x = out.prev_sample
        final = reads[-1]
        agree = " ".join(f"{t}:{np.mean(r == final):.2f}" for t, r in zip(steps, reads) if t >= 699)
        print(f"{occupation:8s} {formulation:9s} planted {cell.p_feminine:.2f}  final feminine-coded "
              f"{final.mean():.2f}  agrees with the final image at t = {agree}")


if __name__ == "__main__":
    main()
