"""Two audits side by side: is one model (or one prompt wording) less skewed than another?

:func:`compare` pairs the runs' per-prompt cells and tests the paired differences of
abs_dev = |p̂_female − 0.5| (``magbig compare``).
"""

from __future__ import annotations

import os

import polars as pl

from magbig import stats
from magbig.rundata import audit_frame, classifier_names, open_run
from neobabel.errors import InputError

__all__ = ["compare"]


def compare(run_a: str | os.PathLike, run_b: str | os.PathLike, classifier: str | None = None, *,
            n_boot: int = 2000, n_perm: int = 9999, seed: int = 0) -> dict:
    """Paired comparison of per-prompt abs_dev = |p̂_female − 0.5| between two runs.

    Pairs the (subject, lang, formulation) cells labelled in both runs (two models on the same
    prompts). When they share no cell but each run has one formulation per (subject, lang)
    (one model with and without neutral prompts), pairs on (subject, lang) and compares the
    formulations. d = abs_dev(B) − abs_dev(A); mean with a paired-bootstrap interval and a
    two-sided sign-flip permutation p-value (:func:`magbig.stats.paired_tests`), overall and
    per language (Holm-adjusted over the per-language tests).
    """
    frames, infos = [], []
    for tag, r in (("A", run_a), ("B", run_b)):
        run = open_run(r)
        names = classifier_names(run.path)
        name = classifier or (names[0] if names else None)
        df = audit_frame(run.path, name)
        pp = stats.per_prompt(df, group_cols=("subject", "lang", "formulation"))
        pp = pp.filter(pl.col("abs_dev").is_not_null())
        frames.append(pp.with_columns(pl.lit(tag).alias("run")))
        model = run.read_run_json().get("model") or {}
        infos.append({"run": str(run.path), "model": model.get("model") if isinstance(model, dict) else model,
                      "classifier": name, "formulations": sorted(pp["formulation"].unique().to_list()),
                      "cells": pp.height})
    a, b = frames
    cell = ["subject", "lang", "formulation"]
    common = a.select(cell).join(b.select(cell), on=cell, how="inner")
    if common.height:
        on, mode = cell, "same prompts"
    else:
        on, mode = ["subject", "lang"], "formulations"
        unique = all(f.select(on).is_unique().all() for f in frames)
        common = a.select(on).join(b.select(on), on=on, how="inner") if unique else common.clear()
        if common.height == 0:
            raise InputError(f"runs {run_a} and {run_b} share no labelled (subject, lang, formulation) cell, "
                             "and no (subject, lang) with one formulation in each; nothing to pair")
    stacked = pl.concat([f.join(common, on=on, how="semi") for f in frames], how="vertical_relaxed")
    stacked = stacked.with_columns(pl.concat_str([pl.col(c) for c in on], separator="/").alias("unit"))
    # n_female / n_labelled let paired_tests compare abs_dev at a common n per pair.
    tests_in = stacked.select(pl.col("unit").alias("subject"), "run", "lang", "abs_dev", "n_female", "n_labelled")
    overall = stats.paired_tests(tests_in.drop("lang"), against="run", reference="A", metric="abs_dev",
                                 by=(), n_perm=n_perm, n_boot=n_boot, seed=seed)
    per_lang = stats.paired_tests(tests_in, against="run", reference="A", metric="abs_dev", by=("lang",),
                                  n_perm=n_perm, n_boot=n_boot, seed=seed)
    o = overall.row(0, named=True)
    return {
        "metric": "abs_dev = |p_female - 0.5| per prompt (l1 = 2 * abs_dev), each pair at its common n",
        "difference": "B - A",
        "mode": mode,
        "paired_on": on,
        "a": infos[0],
        "b": infos[1],
        "n_pairs": o["n_pairs"],
        "mean_abs_dev_a": o["mean_reference"],
        "mean_abs_dev_b": o["mean_level"],
        "mean_diff": o["mean_diff"],
        "diff_low": o["diff_low"],
        "diff_high": o["diff_high"],
        "p_value": o["p_value"],
        "test": "two-sided sign-flip permutation test on paired differences; paired-bootstrap 95% interval",
        "per_lang": [{k: r[k] for k in ("lang", "n_pairs", "mean_reference", "mean_level", "mean_diff",
                                        "diff_low", "diff_high", "p_value", "p_holm")}
                     for r in per_lang.iter_rows(named=True)],
    }
