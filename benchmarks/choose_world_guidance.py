"""Choose a world model's default guidance on held-out scenes (not `world eval`'s suite).

    python benchmarks/choose_world_guidance.py MODEL [--guidance 2,4,6,8] [--threads 2]

Scenes come from another seed (99; `world eval` uses 1234), in en/zh/ar/ru, one image each, so
the choice does not peek at the evaluation it is then reported on. Prints, per guidance, the
mean accuracy over the six GenEval tasks and each task's accuracy; pick the best mean and record
it with the model (`world export --guidance G`, and `sample_guidance` in the training config).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from neobabel.pipeline import BabelPipeline
from neobabel.world import detect
from neobabel.eval.world import object_suite, score_objects
from neobabel.world.spec import TASKS, ObjectScene

HELD_OUT_SEED = 99
LANGS = ["en", "zh", "ar", "ru"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--guidance", default="2,4,6,8", help="comma-separated guidance scales")
    ap.add_argument("--per-task", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipe = BabelPipeline.from_pretrained(args.model)
    pipe.set_batch_invariant(False)  # as `world eval --fast-batching`
    suite = object_suite(args.per_task, LANGS, seed=HELD_OUT_SEED)
    for g in (float(x) for x in args.guidance.split(",")):
        t0 = time.perf_counter()
        images = pipe.generate([p.text for p in suite], [p.lang for p in suite], 0, batch_size=args.batch_size,
                               guidance=g)
        hits: dict[str, list[bool]] = {t: [] for t in TASKS}
        for p, im in zip(suite, images):
            hits[p.task].append(score_objects(detect.read_image(im), ObjectScene.from_dict(p.spec)))
        per_task = {t: round(sum(v) / len(v), 3) for t, v in hits.items()}
        print(json.dumps({"guidance": g, "mean": round(sum(per_task.values()) / len(per_task), 3),
                          "tasks": per_task, "images": len(images),
                          "seconds": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()
