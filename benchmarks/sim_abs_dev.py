"""Simulation checks of the abs_dev statistics (issue 18), through the library's own functions.

1. Coverage of the true mean |p − 0.5| by `stats.aggregate`'s mean_abs_dev interval (default
   scheme), for n ∈ {8, 20, 50, 100} images per prompt, 20 / 50 / 150 prompts, and true shares
   all 0.5 / spread U(0.2, 0.8) / near 0 and 1 (half U(0.01, 0.1), half U(0.9, 0.99)). The
   target is the population mean of |p − 0.5| the prompts are drawn from (0, 0.15, 0.445).
   Also: how often the point estimate lies inside its interval, and the raw interval's
   coverage (the pre-issue-18 definition: mean |p̂ − 0.5| with a two-stage bootstrap).
2. Size of `stats.paired_tests` on abs_dev when two languages have identical true shares but
   unequal n (1:1, 1:2, 1:4 against n = 100), and its power against a planted difference.

Usage: python benchmarks/sim_abs_dev.py [--reps 1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import polars as pl

from magbig import stats

TRUTH = {"all 0.5": 0.0, "spread 0.2-0.8": 0.15, "near 0 and 1": 0.445}


def draw_shares(rng, scenario: str, size) -> np.ndarray:
    if scenario == "all 0.5":
        return np.full(size, 0.5)
    if scenario == "spread 0.2-0.8":
        return rng.uniform(0.2, 0.8, size)
    low, high = rng.uniform(0.01, 0.1, size), rng.uniform(0.9, 0.99, size)
    return np.where(rng.random(size) < 0.5, low, high)


def counts_frame(k: np.ndarray, n: int) -> pl.DataFrame:
    reps, s = k.shape
    return pl.DataFrame({"sim": np.repeat(np.arange(reps), s),
                         "subject": np.tile([f"s{j:03d}" for j in range(s)], reps),
                         "n_female": k.ravel(), "n_male": (n - k).ravel()})


def coverage(reps: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for n in (8, 20, 50, 100):
        for s in (20, 50, 150):
            for scenario, truth in TRUTH.items():
                k = rng.binomial(n, draw_shares(rng, scenario, (reps, s)))
                pp = stats.per_prompt(counts_frame(k, n), group_cols=("sim", "subject"))
                agg = stats.aggregate(pp, by=("sim",), n_boot=200, seed=seed)
                lo, hi, est = (agg[c].to_numpy() for c in ("mean_abs_dev_low", "mean_abs_dev_high", "mean_abs_dev"))
                # The pre-issue-18 interval: two-stage bootstrap of the raw mean |p̂ − 0.5|.
                raw = np.abs(k / n - 0.5).mean(axis=1)
                idx = rng.integers(0, s, size=(reps, 200, s))
                kk = rng.binomial(n, np.take_along_axis(k[:, None, :].repeat(200, 1), idx, 2) / n)
                boot = np.abs(kk / n - 0.5).mean(axis=2)
                raw_lo, raw_hi = np.quantile(boot, 0.025, axis=1), np.quantile(boot, 0.975, axis=1)
                rows.append({"n": n, "prompts": s, "shares": scenario, "truth": truth,
                             "coverage": float(np.mean((lo <= truth) & (truth <= hi))),
                             "estimate_inside": float(np.mean((lo <= est) & (est <= hi))),
                             "mean_width": float(np.mean(hi - lo)),
                             "raw_coverage": float(np.mean((raw_lo <= truth) & (truth <= raw_hi))),
                             "raw_estimate_inside": float(np.mean((raw_lo <= raw) & (raw <= raw_hi)))})
                r = rows[-1]
                print(f"n={n:3d} prompts={s:3d} {scenario:15s} coverage {r['coverage']:.3f} "
                      f"(inside {r['estimate_inside']:.3f}, width {r['mean_width']:.3f}); raw two-stage "
                      f"{r['raw_coverage']:.3f}", flush=True)
    return rows


def paired_size(reps: int, seed: int, subjects: int = 30) -> list[dict]:
    rng = np.random.default_rng(seed + 1)
    rows = []
    for ratio in (1, 2, 4):
        n_en, n_fr = 100, 100 // ratio
        for effect in (0.0, 0.3):
            rejected = {"abs_dev at common n (default)": 0, "plain |p̂ − 0.5| (before)": 0}
            for r in range(reps):
                p = rng.uniform(0.2, 0.8, subjects)
                p_fr = np.clip(0.5 + (1 + effect) * (p - 0.5), 0, 1)  # effect > 0: fr more skewed
                k_en, k_fr = rng.binomial(n_en, p), rng.binomial(n_fr, p_fr)
                df = pl.DataFrame({"subject": [f"s{j}" for j in range(subjects)] * 2,
                                   "lang": ["en"] * subjects + ["fr"] * subjects,
                                   "n_female": np.concatenate([k_en, k_fr]),
                                   "n_male": np.concatenate([n_en - k_en, n_fr - k_fr])})
                pp = stats.per_prompt(df)
                bc = stats.paired_tests(pp, against="lang", reference="en", n_perm=999, n_boot=10, seed=r)
                raw = stats.paired_tests(pp.drop("n_labelled"), against="lang", reference="en",
                                         n_perm=999, n_boot=10, seed=r)
                rejected["abs_dev at common n (default)"] += bc["p_value"][0] < 0.05
                rejected["plain |p̂ − 0.5| (before)"] += raw["p_value"][0] < 0.05
            for metric, count in rejected.items():
                rows.append({"n_en": n_en, "n_fr": n_fr, "effect": effect, "metric": metric,
                             "rejection_rate": count / reps, "subjects": subjects})
                print(f"n {n_en}:{n_fr} effect {effect}: {metric} rejects {count / reps:.3f}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--paired-reps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    t0 = time.perf_counter()
    out = {"coverage": coverage(args.reps, args.seed), "paired": paired_size(args.paired_reps, args.seed),
           "reps": args.reps, "paired_reps": args.paired_reps, "seconds": time.perf_counter() - t0}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
