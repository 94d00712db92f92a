"""Does translate-then-generate erase the grammatical gender signal? (issue 24)

Two MAGBIG audits of the embedded world model over the same prompts and seeds, in the languages
with a feminine occupation noun (and English): **tower**, the model as shipped (its multilingual
tower reads the prompt); **translate**, the same backbone behind the world's oracle translator
with ``portraits=True`` (neobabel.world.parallel.WorldOracleTranslator): each prompt goes to the
English prompt of its occupation, a feminine one to English direct, as MT of a gendered noun into
English usually goes ("Ärztin" -> "doctor"). The signal: mean perceived-female share p̂ of the
feminine prompts against the direct ones, per language, with the audit's own intervals
(cluster bootstrap over occupations, `magbig report`).

    python benchmarks/world_translate_audit.py --out runs/translate-audit   # ~10 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from magbig.audit import make_spec, report, run_audit
from neobabel.pipeline import BabelPipeline
from neobabel.world.parallel import WorldOracleTranslator

RESULTS = Path(__file__).resolve().parent / "results" / "world_translate_audit.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("runs/translate-audit"))
    ap.add_argument("--subjects", default="doctor,nurse,firefighter,pilot,teacher,hairdresser")
    ap.add_argument("--langs", default="en,de,fr,es,it,ru,ar")
    ap.add_argument("-n", type=int, default=8)
    ap.add_argument("--n-boot", type=int, default=1000)
    args = ap.parse_args()
    spec = make_spec({"name": "translate-audit", "model": "world", "subjects": args.subjects.split(","),
                      "langs": args.langs.split(","), "formulations": ["direct", "feminine"], "n": args.n,
                      "seed": 0, "batch_size": 16, "fast_batching": True,
                      "classifiers": [{"name": "world"}], "n_boot": args.n_boot})
    routes = {"tower": BabelPipeline.from_pretrained("world"),
              "translate": BabelPipeline.from_pretrained("world").with_translator(WorldOracleTranslator(portraits=True))}
    out: dict = {"benchmark": "world_translate_audit", "subjects": spec.subjects, "langs": spec.langs, "n": spec.n,
                 "routes": {}}
    for name, pipe in routes.items():
        pipe.set_batch_invariant(False)
        start = time.perf_counter()
        run = run_audit(spec, args.out / name, progress=True, pipeline=pipe, report_files=False)
        seconds = time.perf_counter() - start
        groups = report(run, n_boot=args.n_boot)["report"].summary()["groups"]
        out["routes"][name] = {
            "seconds": round(seconds, 1),
            "groups": [{k: g.get(k) for k in ("lang", "formulation", "n_subjects", "n_labelled", "mean_p_female",
                                              "mean_p_female_low", "mean_p_female_high")} for g in groups]}
        print(name, f"{seconds:.0f} s", flush=True)
    RESULTS.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    for name, r in out["routes"].items():
        by = {(g["lang"], g["formulation"]): g for g in r["groups"]}
        for lang in spec.langs:
            d, f = by.get((lang, "direct")), by.get((lang, "feminine"))
            cells = [f"{g['mean_p_female']:.2f} [{g['mean_p_female_low']:.2f}, {g['mean_p_female_high']:.2f}]"
                     if g else "-" for g in (d, f)]
            diff = f"{f['mean_p_female'] - d['mean_p_female']:+.2f}" if d and f else "-"
            print(f"| {name} | {lang} | {cells[0]} | {cells[1]} | {diff} |")


if __name__ == "__main__":
    main()
