"""Regenerate the world-model reference images (only when the shipped model changes on purpose).

    .venv/bin/python tests/data/world_reference/regenerate.py [--tolerance N]

Writes one PNG per case and references.json (cases, params, the CPU kernel family they were
made with, and the tolerance test_invariance.py allows). The tolerance is the largest
difference measured between kernel families (benchmarks/RESULTS.md, "Reference images").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from neobabel.pipeline import BabelPipeline

HERE = Path(__file__).parent
CASES = [
    ("a photo of a red circle", "en", 0),
    ("ein Foto von zwei blauen Quadraten", "de", 1),
    ("一张绿色三角形的照片", "zh", 2),
    ("una foto del rostro de una doctora", "es", 3),
    ("صورة لوجه مهندس", "ar", 4),
    ("एक पीले तारे की तस्वीर", "hi", 5),
]
PARAMS = {"steps": 10}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tolerance", type=int, default=None, help="max abs pixel difference allowed")
    args = ap.parse_args()
    old = HERE / "references.json"
    tolerance = args.tolerance
    if tolerance is None:
        tolerance = json.loads(old.read_text())["max_abs_pixel_diff"] if old.exists() else 0
    pipe = BabelPipeline.from_pretrained("world")
    images = pipe.generate([c[0] for c in CASES], [c[1] for c in CASES], [c[2] for c in CASES],
                           batch_size=1, **PARAMS)
    entries = []
    for i, ((prompt, lang, seed), image) in enumerate(zip(CASES, images)):
        name = f"{i}-{lang}.png"
        image.save(HERE / name)
        entries.append({"file": name, "prompt": prompt, "lang": lang, "seed": seed})
    meta = {"model": "world", "revision": pipe.revision, "params": PARAMS,
            "made_with": {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()},
            "max_abs_pixel_diff": tolerance, "images": entries}
    old.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(entries)} references to {HERE}")


if __name__ == "__main__":
    main()
