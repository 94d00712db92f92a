"""Size and power of `magbig planted`'s fit test when cells share seeds (issue 18).

A world audit gives every language and wording of one occupation the same seeds
(``seeds: per_subject``). A model that reads part of a portrait from its starting noise then
moves those cells together even when each cell's share is exactly the planted one. Two
simulated models draw the planted table's 405 cells (12 occupations) at n images per cell:

- ``independent``: each image of each cell is its own Bernoulli(planted) draw;
- ``seed-coupled``: image i of every cell of occupation s is feminine iff u[s, i] < planted,
  with one uniform u[s, i] per (occupation, seed): exactly the planted share in every cell,
  the strongest dependence shared seeds can make.

For each, the rejection rate at alpha = 0.05 of the independent parametric bootstrap
(``p_value_independent``, the test before this issue) and of the cluster-robust test
(``p_value``, the default now); and their power against a model whose shares are all shifted
by ``--shift`` towards feminine.

Usage: python benchmarks/sim_planted_fit.py [--reps 1000] [-n 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from magbig.audit import planted_fit_test
from neobabel.world.bias import load_table


def draw(rng, planted: np.ndarray, subject_index: np.ndarray, n: int, coupled: bool) -> np.ndarray:
    if not coupled:
        return rng.binomial(n, planted)
    u = rng.random((subject_index.max() + 1, n))  # one uniform per (occupation, seed slot)
    return (u[subject_index] < planted[:, None]).sum(axis=1)


def simulate(reps: int, n: int, shift: float, seed: int, n_sim: int) -> list[dict]:
    cells = load_table().cells
    planted = np.array([c.p_feminine for c in cells])
    subjects = [c.occupation for c in cells]
    subject_index = np.unique(subjects, return_inverse=True)[1]
    rng = np.random.default_rng(seed)
    rows = []
    for model in ("independent", "seed-coupled"):
        for effect in (0.0, shift):
            truth = np.clip(planted + effect, 0, 1)
            rejected = {"cluster-robust (default)": 0, "independent bootstrap (before)": 0}
            for r in range(reps):
                k = draw(rng, truth, subject_index, n, model == "seed-coupled")
                res = planted_fit_test(k, np.full(len(k), n), planted, clusters=subjects, n_sim=n_sim, seed=r)
                rejected["cluster-robust (default)"] += res["p_value"] < 0.05
                rejected["independent bootstrap (before)"] += res["p_value_independent"] < 0.05
            for test, count in rejected.items():
                rows.append({"model": model, "shift": effect, "test": test, "n": n, "cells": len(k),
                             "clusters": res["clusters"], "rejection_rate": count / reps, "reps": reps})
                print(f"{model:12s} shift {effect:+.2f} n={n}: {test:31s} rejects {count / reps:.3f}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("-n", type=int, default=8)
    ap.add_argument("--shift", type=float, default=0.05)
    ap.add_argument("--n-sim", type=int, default=1000, help="bootstrap replicates of the independent test")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = simulate(args.reps, args.n, args.shift, args.seed, args.n_sim)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "seconds": round(time.perf_counter() - t0, 1)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
