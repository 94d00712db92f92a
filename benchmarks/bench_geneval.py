"""CPU: m-GenEval scoring throughput (images/s), batched vs one image per detector call.

Backends: the world's exact detector on world renders (64 px) with exact colours, and a tiny
random Mask2Former (Swin, 80 COCO labels, the real transformers architecture and the real
loading + mmdet-style post-processing code) with a tiny random CLIP colour classifier on
256 px images. Both go through the whole scoring path (read PNG, detect, GenEval's rules,
rows). Nothing is downloaded: the tiny models are built in a temp dir. Batched and one-at-a-
time runs alternate in this one process; the best of `--reps` runs is kept.

Usage: python benchmarks/bench_geneval.py [--images 96] [--reps 2] [--json benchmarks/results/geneval.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def _jobs(tmp: Path, count: int, size: int, vocab: str):
    from neobabel.eval.i18n import geneval_specs
    from neobabel.eval.scoring import ImageJob
    from neobabel.eval.world import object_suite, scene_spec
    from neobabel.world.render import render
    from neobabel.world.spec import ObjectScene

    suite = object_suite(count // 6 + 1, ["en"])
    specs = geneval_specs()
    jobs = []
    for i in range(count):
        p = suite[i]
        scene = ObjectScene.from_dict(p.spec)
        path = tmp / f"{vocab}-{i:04d}.png"
        render(scene, i, size=size).save(path)
        spec = scene_spec(scene) if vocab == "world" else specs[i % len(specs)]
        jobs.append(ImageJob(f"k{i}", "en", p.prompt_id, i, path, spec))
    return jobs


def _rate(jobs, detector, colors, batch_size: int, labels) -> tuple[float, int]:
    from neobabel.eval.scoring import score_images

    report = score_images(jobs, detector, colors, batch_size=batch_size, labels=labels)
    assert report.failed == 0 and len({r["key"] for r in report.rows}) == len(jobs)
    return report.images_per_second, len(report.rows)


def bench(name: str, tmp: Path, count: int, reps: int, batch: int) -> dict:
    if name == "world":
        from neobabel.eval.world import WORLD_CLASSES, WorldDetector, world_colors

        jobs = _jobs(tmp, count, 64, "world")
        detector, colors, labels, size = WorldDetector(), world_colors, WORLD_CLASSES, 64
    else:
        from magbig.testing import build_clip_model
        from neobabel.eval.i18n import GENEVAL_COLORS, geneval_classes
        from neobabel.scorers.detector import ClipColorClassifier, Mask2FormerDetector
        from neobabel.testing import build_tiny_mask2former

        labels = geneval_classes()
        m2f = build_tiny_mask2former(tmp / "m2f", labels=labels, num_queries=16)
        detector = Mask2FormerDetector.load(m2f, device="cpu", class_names=labels)
        colors = ClipColorClassifier.load(build_clip_model(tmp / "clip"), device="cpu", colors=GENEVAL_COLORS)
        jobs = _jobs(tmp, count, 256, "coco")
        size = 256
    _rate(jobs[:4], detector, colors, batch, labels)  # warm-up (lazy banks, first forward)
    best = {"batched": 0.0, "one_at_a_time": 0.0}
    for _ in range(reps):
        best["batched"] = max(best["batched"], _rate(jobs, detector, colors, batch, labels)[0])
        best["one_at_a_time"] = max(best["one_at_a_time"], _rate(jobs, detector, colors, 1, labels)[0])
    label = detector.name if name == "world" else "tiny random Mask2Former (80 COCO labels, 16 queries) + tiny CLIP colour"
    return {"backend": label, "images": count, "image_size": size, "batch_size": batch,
            "images_per_second_batched": round(best["batched"], 2),
            "images_per_second_one_at_a_time": round(best["one_at_a_time"], 2),
            "speedup": round(best["batched"] / best["one_at_a_time"], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--backends", default="world,mask2former-tiny")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import torch

    out = {"torch_threads": torch.get_num_threads(), "results": []}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.backends.split(","):
            r = bench(name, Path(tmp), args.images, args.reps, args.batch_size)
            print(json.dumps(r))
            out["results"].append(r)
    np.set_printoptions()
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
