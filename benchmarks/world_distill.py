"""Tower distillation and translate-then-generate on the Babel world (benchmarks/RESULTS.md §16).

Scores the conditioning routes on the world's object suite (neobabel.eval.world, exact
detector), per language, with the same scenes and seeds for every route:

  english-only   the English-only world model (tower and UNet trained on English captions
                 only) fed every language as is
  translate      the same model behind the oracle translator (world caption grammar inverted
                 exactly: the upper bound of translate-then-generate here)
  distilled      the same frozen backbone conditioned by a multilingual tower distilled onto its
                 own (English-only) tower from parallel captions
  joint          the embedded world model (tower and UNet trained together on 13 languages)

Prerequisites (the commands are in RESULTS §16):
  neobabel world train --config configs/world/train-en.yaml --out runs/world-en
  python benchmarks/world_distill_setup.py --out runs/world-distill --scenes 1500
  neobabel distill --backbone runs/world-en/model --encoder runs/world-distill/encoder-multi \\
      --data runs/world-distill/parallel.tsv --out runs/world-distill/tower-multi ...

  nice -n 10 python benchmarks/world_distill.py --per-task 4 -n 2 --out runs/world-distill-eval
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from neobabel.languages import LANGUAGE_CODES
from neobabel.pipeline import BabelPipeline
from neobabel.eval.world import evaluate
from neobabel.world.parallel import WorldOracleTranslator


def routes(english_only: Path, distilled: Path, joint: str) -> dict:
    return {
        "english-only": lambda: BabelPipeline.from_pretrained(english_only),
        "translate (oracle)": lambda: BabelPipeline.from_pretrained(english_only).with_translator(WorldOracleTranslator()),
        "distilled tower": lambda: BabelPipeline.from_pretrained(distilled),
        "joint (embedded)": lambda: BabelPipeline.from_pretrained(joint),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--english-only", type=Path, default=Path("runs/world-en/model"))
    ap.add_argument("--distilled", type=Path, default=Path("runs/world-distill/tower-multi"))
    ap.add_argument("--joint", default="world")
    ap.add_argument("--per-task", type=int, default=4)
    ap.add_argument("-n", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--langs", default=",".join(LANGUAGE_CODES))
    ap.add_argument("--only", default="", help="comma-separated route names to run (default: all)")
    ap.add_argument("--out", type=Path, default=Path("runs/world-distill-eval"))
    args = ap.parse_args()
    # one thread: on this shared 2-core machine torch's spinning second thread cost 5x (tests/conftest.py)
    torch.set_num_threads(1)
    langs = args.langs.split(",")
    results = {}
    result_file = args.out / "routes.json"
    if result_file.is_file():
        results = json.loads(result_file.read_text())
    for name, load in routes(args.english_only, args.distilled, args.joint).items():
        if args.only and name not in args.only.split(","):
            continue
        t0 = time.perf_counter()
        pipe = load()
        pipe.set_batch_invariant(False)  # --fast-batching: speed; every route alike
        load_s = time.perf_counter() - t0
        # every route samples with the world model's recorded defaults (20 DDIM steps, guidance 4)
        summary = evaluate(pipe, args.out / name.split(" ")[0], n=args.n, per_task=args.per_task, langs=langs,
                           portraits=False, batch_size=args.batch_size, progress=False)
        results[name] = {"per_lang": {lang: summary["per_lang"][lang]["overall"] for lang in langs},
                         "tasks": summary["task_mean"], "overall_mean": summary["overall_mean"],
                         "sampling": summary["sampling"], "load_s": round(load_s, 2),
                         "model": pipe.identity()}
        if hasattr(pipe.translator, "misses"):
            results[name]["oracle_misses"] = pipe.translator.misses
        args.out.mkdir(parents=True, exist_ok=True)
        result_file.write_text(json.dumps(results, indent=1, ensure_ascii=False))
        print(name, json.dumps(results[name]["per_lang"]), results[name]["sampling"], flush=True)
    names = list(results)
    print("| lang | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for lang in langs:
        print(f"| {lang} | " + " | ".join(f"{results[n]['per_lang'][lang]:.2f}" for n in names) + " |")
    others = [lang for lang in langs if lang != "en"]
    print("| mean of the 12 non-English | " + " | ".join(
        f"{sum(results[n]['per_lang'][lang] for lang in others) / len(others):.2f}" for n in names) + " |")
    print("| s/image | " + " | ".join(f"{results[n]['sampling']['seconds_per_image']}" for n in names) + " |")


if __name__ == "__main__":
    main()
