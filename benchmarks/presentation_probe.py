"""Does a world model's caption reach the presentation it draws? (RESULTS §7f)

At t = 999 the noisy input says nothing about the image, so an x0 model's estimate is its
belief E[image | caption]. Along the feminine-minus-masculine direction of rendered portraits of
the same occupation, that estimate sits at a fraction of the way from the masculine to the
feminine mean: the feminine share the model believes in before the noise decides anything.
This prints that implied share per formulation next to the planted one.

    python benchmarks/presentation_probe.py [MODEL] [--langs de,fr,en] [--t 999]
"""

from __future__ import annotations

import argparse

import numpy as np
import polars as pl
import torch

from neobabel.pipeline import BabelPipeline
from neobabel.registry import world_weights_path
from neobabel.world.bias import load_table
from neobabel.world.render import render_array
from neobabel.world.spec import OCCUPATIONS, sample_portrait


def presentation_axis(occupation: str, size: int, n: int = 64) -> tuple[np.ndarray, float, float]:
    """Unit-L1 direction from the mean masculine to the mean feminine render, and both means' positions on it."""
    def mean(pres):
        return np.stack([render_array(sample_portrait(np.random.default_rng(i), occupation, pres), i, size)
                         for i in range(n)]).astype(np.float64).mean(0) / 127.5 - 1
    fem, masc = mean("feminine"), mean("masculine")
    w = (fem - masc) / np.abs(fem - masc).sum()
    return w, float((fem * w).sum()), float((masc * w).sum())


@torch.no_grad()
def implied_shares(pipe: BabelPipeline, cells, t: int, n_noise: int = 32) -> pl.DataFrame:
    unet, tower, vae = pipe.pipe.unet.float(), pipe.tower.float(), pipe.pipe.vae
    noise = torch.randn((n_noise, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size),
                        generator=torch.Generator().manual_seed(0))
    axes, rows = {}, []
    for c in cells:
        batch = tower.tokenize([c.prompt] * n_noise)
        cond, _ = tower(batch["input_ids"], batch["attention_mask"])
        x0 = unet(noise, torch.full((n_noise,), t), encoder_hidden_states=cond.float()).sample
        decoded = vae.decode(x0)
        img = getattr(decoded, "sample", decoded).permute(0, 2, 3, 1).double().numpy().mean(0)
        if c.occupation not in axes:
            axes[c.occupation] = presentation_axis(c.occupation, img.shape[0])
        w, fem, masc = axes[c.occupation]
        rows.append({"occupation": c.occupation, "lang": c.lang, "formulation": c.formulation,
                     "planted": c.p_feminine, "implied": ((img * w).sum() - masc) / (fem - masc)})
    return pl.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default=str(world_weights_path()))
    ap.add_argument("--langs", default="de,fr,en")
    ap.add_argument("--t", type=int, default=999)
    args = ap.parse_args()
    pipe = BabelPipeline.from_pretrained(args.model)
    langs = args.langs.split(",")
    cells = [c for c in load_table().cells if c.lang in langs and c.occupation in OCCUPATIONS]
    d = implied_shares(pipe, cells, args.t)
    with pl.Config(tbl_rows=50):
        print(d.group_by("formulation").agg(pl.col("planted").mean().round(3), pl.col("implied").mean().round(3),
                                            pl.corr("planted", "implied").round(3).alias("corr"),
                                            pl.len().alias("cells")).sort("formulation"))
        print("all cells: corr(planted, implied) =", round(d.select(pl.corr("planted", "implied")).item(), 3),
              " mean |implied - planted| =", round((d["implied"] - d["planted"]).abs().mean(), 3))


if __name__ == "__main__":
    main()
