"""GPU: m-GenEval scoring throughput with the real backends (transformers Mask2Former Swin-S
COCO instance + CLIP ViT-L/14 colour), batched vs one image per detector call.

Needs the weights in the local Hugging Face cache (nothing is downloaded):
    hf download facebook/mask2former-swin-small-coco-instance
    hf download openai/clip-vit-large-patch14 --revision 32bd64288804d66eefd0ccbe215aa642df71cc41
Images: a GenEval-layout folder (--images DIR, e.g. the output of GenEval's generation script)
or, without one, 512 px synthetic scenes (world renders upscaled: the speed, not the score,
is what this measures). `--tiny` builds tiny random models instead and runs anywhere (CPU),
to check the script itself.

Usage:
    python benchmarks/bench_geneval_gpu.py --device cuda --images runs/geneval-sd15 --json out.json
    python benchmarks/bench_geneval_gpu.py --tiny --device cpu --count 8
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def synthetic_jobs(tmp: Path, count: int, size: int):
    from neobabel.eval.i18n import geneval_specs
    from neobabel.eval.scoring import ImageJob
    from neobabel.eval.world import object_suite
    from neobabel.world.render import render
    from neobabel.world.spec import ObjectScene

    suite = object_suite(count // 6 + 1, ["en"])
    specs = geneval_specs()
    jobs = []
    for i in range(count):
        path = tmp / f"{i:04d}.png"
        render(ObjectScene.from_dict(suite[i].spec), i, size=size).save(path)
        jobs.append(ImageJob(f"k{i}", "en", f"geneval/{i % len(specs):05d}", i, path, specs[i % len(specs)]))
    return jobs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--images", type=Path, default=None, help="GenEval-layout folder to score")
    ap.add_argument("--count", type=int, default=64, help="synthetic images when no --images")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch-sizes", default="1,8,16")
    ap.add_argument("--tiny", action="store_true", help="tiny random models (checks the script; any device)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import torch

    from neobabel.eval.benchmark import Scorer, read_geneval_folder
    from neobabel.eval.i18n import GENEVAL_COLORS, geneval_classes
    from neobabel.eval.scoring import score_images
    from neobabel.scorers.detector import ClipColorClassifier, Mask2FormerDetector

    labels = geneval_classes()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        if args.tiny:
            from magbig.testing import build_clip_model
            from neobabel.testing import build_tiny_mask2former

            det = Mask2FormerDetector.load(build_tiny_mask2former(tmp / "m2f", labels=labels, num_queries=16),
                                           device=args.device, class_names=labels)
            colour = ClipColorClassifier.load(build_clip_model(tmp / "clip"), device=args.device, colors=GENEVAL_COLORS)
        else:
            det = Mask2FormerDetector.load(device=args.device, class_names=labels)
            colour = ClipColorClassifier.load(device=args.device, colors=GENEVAL_COLORS)
        load_s = time.perf_counter() - t0
        scorer = Scorer(det, colour, labels)
        jobs = read_geneval_folder(args.images) if args.images else synthetic_jobs(tmp, args.count, args.size)
        score_images(jobs[:2], det, colour, labels=labels)  # warm-up: kernels, CLIP heads
        results = []
        for bs in (int(b) for b in args.batch_sizes.split(",")):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            report = score_images(jobs, det, colour, batch_size=bs, labels=labels)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            r = {"batch_size": bs, "images": report.images, "failed": report.failed,
                 "images_per_second": round(report.images_per_second, 2),
                 "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20) if args.device.startswith("cuda") else None}
            print(json.dumps(r))
            results.append(r)
    out = {"backend": scorer.backend(), "device": args.device, "tiny": args.tiny, "model_load_seconds": round(load_s, 1),
           "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None, "results": results}
    print(json.dumps(out["backend"]))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
