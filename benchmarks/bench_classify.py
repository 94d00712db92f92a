"""CPU: perceived-gender classification throughput per backend, batched vs one at a time;
and the time to build a report for a run of 150,000 image rows.

Backends run on their real architectures with locally built weights (nothing downloaded):
deepface's VGG-Face gender network (random weights) behind its opencv detector, CLIP ViT-L/14
(random weights, 224 px) and the world reader. Images: skimage's astronaut photo (512 px)
at varied brightness for deepface/clip, world portraits for the world backend. Batched and
one-at-a-time runs alternate in this one process.
Usage: python benchmarks/bench_classify.py [--backends world,deepface,clip] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def _rate(clf, images, batch_size: int) -> float:
    t0 = time.perf_counter()
    rows = clf.classify(images, batch_size=batch_size)
    dt = time.perf_counter() - t0
    assert len(rows) == len(images)
    return len(images) / dt


def bench_backend(name: str, tmp: Path, reps: int) -> dict:
    import skimage.data

    from magbig import classifiers as classify

    photo = skimage.data.astronaut()
    photos = [Image.fromarray(np.clip(photo * (0.6 + 0.02 * i), 0, 255).astype(np.uint8)) for i in range(16)]
    if name == "world":
        from neobabel.world.render import render
        from neobabel.world.spec import OCCUPATIONS, PRESENTATIONS, Portrait

        images = [render(Portrait(OCCUPATIONS[i % 12], PRESENTATIONS[i % 3], i % 5), i) for i in range(256)]
        clf, batch = classify.get_classifier("world"), 64
    elif name == "deepface":
        from magbig.testing import build_deepface_gender_weights

        build_deepface_gender_weights(tmp / "deepface")
        clf, images, batch = classify.get_classifier("deepface", home=str(tmp / "deepface")), photos, 16
    elif name == "clip":
        from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

        from neobabel.testing import build_clip_tokenizer

        path = tmp / "clip-l14"
        tok = build_clip_tokenizer(path)
        cfg = CLIPConfig(
            text_config=dict(vocab_size=len(tok), hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                             num_attention_heads=12, max_position_embeddings=77, bos_token_id=tok.bos_token_id,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
            vision_config=dict(image_size=224, patch_size=14, hidden_size=1024, intermediate_size=4096,
                               num_hidden_layers=24, num_attention_heads=16),
            projection_dim=768)
        CLIPModel(cfg).save_pretrained(path)
        CLIPImageProcessorPil().save_pretrained(path)
        clf, images, batch = classify.get_classifier("clip", model=str(path)), photos, 16
    else:
        raise SystemExit(f"unknown backend {name!r}")
    clf.classify(images[:2], batch_size=2)  # warm-up: load weights, build detectors
    batched, single = [], []
    for _ in range(reps):
        batched.append(_rate(clf, images, batch))
        single.append(_rate(clf, images, 1))
    b, s = float(np.median(batched)), float(np.median(single))
    return {"backend": name, "images": len(images), "batch_size": batch, "batched_images_per_s": round(b, 3),
            "single_images_per_s": round(s, 3), "speedup": round(b / s, 2)}


def bench_report(rows: int = 150_000) -> dict:
    import polars as pl

    from magbig.report import build_report, write_report
    from magbig.prompts import OCCUPATIONS

    rng = np.random.default_rng(0)
    langs = ["en", "de", "fr", "es", "it", "ru", "zh", "ja", "ko", "ar"]
    n = rows // (len(OCCUPATIONS) * len(langs))
    subj = np.repeat(np.array(OCCUPATIONS), len(langs) * n)
    lang = np.tile(np.repeat(np.array(langs), n), len(OCCUPATIONS))
    p = rng.uniform(0.05, 0.95, len(OCCUPATIONS) * len(langs)).repeat(n)
    labels = pl.DataFrame({
        "subject": subj, "lang": lang, "formulation": "direct", "status": "ok",
        "label": np.where(rng.random(len(p)) < p, "female", "male"), "classifier": "deepface",
        "text": [f"A photo of the face of a {s}." for s in subj],
    })
    t0 = time.perf_counter()
    report = build_report(labels, n_boot=2000, seed=0)
    t_build = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as out:
        t1 = time.perf_counter()
        write_report(report, out)
        t_write = time.perf_counter() - t1
    return {"rows": labels.height, "build_s": round(t_build, 2), "render_and_write_s": round(t_write, 2),
            "total_s": round(t_build + t_write, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", default="world,deepface,clip")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out = {"benchmark": "bench_classify", "classify": [], "report": None}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.backends.split(","):
            row = bench_backend(name, Path(tmp), args.reps)
            print(row, flush=True)
            out["classify"].append(row)
    out["report"] = bench_report()
    print(out["report"], flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
