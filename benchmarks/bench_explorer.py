"""Scale of the audit explorer (apps/explorer.py): synthetic run tables of about 10k, 100k and
1M label rows, driven by Streamlit's AppTest (the script's real code path, no browser).

For each size, in a fresh process (cold caches, its own peak memory):
- first complete render (the Overview page: discovers the run, scans and joins its tables);
- switching to the share view (the `magbig stats` numbers, 2000 bootstrap replicates);
- applying a filter (one language), then a second (ten occupations);
- the report views (paired tests, heatmap: build_report with 9999 permutations), once;
- peak resident memory of the process (ru_maxrss).

Goal (issue 22): <= 3 s first render and <= 1 s per filter at 1M rows on this 2-core machine.

    nice -n 10 python benchmarks/bench_explorer.py [--sizes 10000,100000,1000000] [--json OUT]

Tables: 128 images per prompt, 13 languages, 4 formulations, occupations added until the size
is reached (6 / 15 / 150 occupations); labels drawn with a per-prompt share; no image files
(the image grid is not timed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LANGS = ["en", "de", "fr", "es", "it", "nl", "ru", "zh", "ja", "ko", "ar", "hi", "fa"]
FORMS = ["direct", "indirect", "feminine", "gender_star"]
N_PER_PROMPT = 128


def write_run(out: Path, rows: int, seed: int = 0) -> int:
    """A synthetic audit run directory with about ``rows`` label rows; returns the exact count."""
    import numpy as np
    import polars as pl

    n_subjects = max(1, round(rows / (N_PER_PROMPT * len(LANGS) * len(FORMS))))
    forms = FORMS if rows >= 50_000 else FORMS[:1]
    if rows < 50_000:
        n_subjects = max(1, round(rows / (N_PER_PROMPT * len(LANGS))))
    rng = np.random.default_rng(seed)
    prompts = pl.DataFrame(
        [(f"occupation{s:03d}", lang, f) for s in range(n_subjects) for lang in LANGS for f in forms],
        schema={"subject": pl.String, "lang": pl.String, "formulation": pl.String}, orient="row")
    share = rng.beta(2, 2, prompts.height)
    units = prompts.with_columns(pl.Series("share", share)).join(
        pl.DataFrame({"slot": np.arange(N_PER_PROMPT, dtype=np.int64)}), how="cross")
    n = units.height
    keys = [f"{i:020x}" for i in range(n)]
    u = rng.random(n)
    status = np.where(u < 0.06, "no_face", np.where(u < 0.09, "multiple_faces", np.where(u < 0.12, "uncertain", "ok")))
    female = rng.random(n) < units["share"].to_numpy()
    label = np.where(status == "ok", np.where(female, "female", "male"), None)
    units = units.with_columns(
        (pl.col("subject") + "/" + pl.col("lang") + "/" + pl.col("formulation")).alias("prompt_id"),
        pl.format("A photo of the face of a {}", pl.col("subject")).alias("text"),
        pl.lit(0, pl.Int64).alias("attempt"), pl.col("slot").alias("seed"),
        pl.Series("key", keys), pl.lit(True).alias("in_audit"))
    out.mkdir(parents=True, exist_ok=True)
    units.select("prompt_id", "subject", "lang", "formulation", "text", "slot", "attempt", "seed", "key",
                 "in_audit").write_parquet(out / "units.parquet")
    units.select("key", "prompt_id", "subject", "lang", "formulation", "text", "seed",
                 pl.format("images/{}.png", pl.col("key")).alias("path")).write_parquet(out / "generations.parquet")
    pl.DataFrame({
        "key": keys, "prompt_id": units["prompt_id"], "subject": units["subject"], "lang": units["lang"],
        "formulation": units["formulation"], "seed": units["seed"], "classifier": "world", "config_id": "bench",
        "faces": np.where(status == "no_face", 0, np.where(status == "multiple_faces", 2, 1)).astype(np.int64),
        "status": status, "p_female": np.where(status == "ok", female.astype(float), 0.5),
        "label": label, "detail": None}).write_parquet(out / "labels.parquet")
    (out / "run.json").write_text(json.dumps({"audit_status": "complete", "audit": {
        "model": "synthetic", "classifiers": [{"name": "world"}]}}))
    return n


def measure(run: Path) -> dict:
    """Times of one size (runs in its own process)."""
    os.environ["NEOBABEL_EXPLORER_RUNS"] = str(run)
    from streamlit.testing.v1 import AppTest

    def timed(fn) -> float:
        t = time.perf_counter()
        fn()
        assert not at.exception, at.exception
        return round(time.perf_counter() - t, 3)

    at = AppTest.from_file(str(REPO / "apps" / "explorer.py"), default_timeout=600)
    res = {"first_render_s": timed(at.run)}
    res["share_view_s"] = timed(lambda: at.sidebar.radio(key="view").set_value("Perceived-female share").run())
    res["filter_language_s"] = timed(lambda: at.sidebar.multiselect(key="f_langs").set_value(["de"]).run())
    subjects = at.sidebar.multiselect(key="f_subjects").options[:10]
    res["filter_occupations_s"] = timed(lambda: at.sidebar.multiselect(key="f_subjects").set_value(subjects).run())
    res["filter_cleared_s"] = timed(lambda: at.sidebar.multiselect(key="f_subjects").set_value([]).run())
    res["heatmap_view_s"] = timed(lambda: at.sidebar.radio(key="view").set_value("Heatmap").run())
    res["neutral_view_s"] = timed(lambda: at.sidebar.radio(key="view").set_value("Neutral prompts").run())
    res["heatmap_again_s"] = timed(lambda: at.sidebar.radio(key="view").set_value("Heatmap").run())
    res["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)  # child process
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-explorer-") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            run = Path(tmp) / f"run-{size}"
            t = time.perf_counter()
            rows = write_run(run, size)
            written = time.perf_counter() - t
            # as `magbig explore` starts it: one BLAS thread unless the caller set one
            env = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", **os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
            proc = subprocess.run([sys.executable, __file__, "--measure", str(run)], env=env,
                                  capture_output=True, text=True, check=True)
            res = {"target_rows": size, "label_rows": rows, "write_s": round(written, 2),
                   **json.loads(proc.stdout.strip().splitlines()[-1])}
            results.append(res)
            print(json.dumps(res), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
