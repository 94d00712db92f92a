"""Coverage of the consistency metrics' interval (neobabel.eval.consistency.mean_interval) at
the prompt counts users run (8, 20, 50), against the percentile bootstrap it replaced.

Per-prompt values are drawn from distributions shaped like the metrics, with known means:
parse agreement (0/1, Bernoulli), object Jaccard (few values in [0, 1]) and cosine similarity
(continuous, Beta). Coverage = share of 2,000 simulated intervals that contain the true mean.

    python benchmarks/sim_consistency_interval.py   # ~1 min; benchmarks/results/sim_consistency_interval.json
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from neobabel.eval.consistency import mean_interval

RESULTS = Path(__file__).resolve().parent / "results" / "sim_consistency_interval.json"
JACCARD = np.array([0.0, 1 / 3, 0.5, 2 / 3, 1.0])
CASES = {  # name: (sampler, true mean, discrete metric?)
    "world-parse, Bernoulli(0.4)": (lambda rng, n: rng.binomial(1, 0.4, n).astype(float), 0.4, True),
    "world-parse, Bernoulli(0.9)": (lambda rng, n: rng.binomial(1, 0.9, n).astype(float), 0.9, True),
    "world-parse, Bernoulli(0.97)": (lambda rng, n: rng.binomial(1, 0.97, n).astype(float), 0.97, True),
    "world-objects, Jaccard values": (lambda rng, n: rng.choice(JACCARD, n, p=[.1, .1, .2, .2, .4]),
                                      float(JACCARD @ [.1, .1, .2, .2, .4]), True),
    "cosine, Beta(20, 4)": (lambda rng, n: rng.beta(20, 4, n), 20 / 24, False),
    "cosine, Beta(2, 2)": (lambda rng, n: rng.beta(2, 2, n), 0.5, False),
}


def percentile_bootstrap(values: np.ndarray, rng: np.random.Generator, n_boot: int = 1000) -> tuple[float, float]:
    means = values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def main(reps: int = 2000) -> None:
    rows = []
    print("| case | prompts | t interval (ours) | percentile bootstrap (before) |")
    for name, (draw, truth, discrete) in CASES.items():
        for n in (8, 20, 50):
            rng = np.random.default_rng([n, len(name)])
            ours = boot = 0
            for _ in range(reps):
                v = draw(rng, n)
                _, lo, hi = mean_interval(v, discrete=discrete)
                ours += lo <= truth <= hi
                blo, bhi = percentile_bootstrap(v, rng)
                boot += blo <= truth <= bhi
            rows.append({"case": name, "prompts": n, "coverage": ours / reps, "bootstrap_coverage": boot / reps})
            print(f"| {name} | {n} | {ours / reps:.3f} | {boot / reps:.3f} |", flush=True)
    RESULTS.write_text(json.dumps({"benchmark": "sim_consistency_interval", "nominal": 0.95, "reps": reps,
                                   "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
