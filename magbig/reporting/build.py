"""``build_report(labels)``: every statistic a report shows, computed once.

The statistics are :mod:`magbig.stats`' (per prompt, aggregates with cluster-bootstrap
intervals, paired tests with Holm correction, MAGBIG's expected maximum unfairness,
cross-language consistency); this module only prepares the labels, calls them, and shapes
the few presentation frames (most skewed occupations, heatmap, prompt samples, alignment).
"""

from __future__ import annotations

import json

import polars as pl

from magbig import stats
from magbig.reporting.format import PROMPT_SAMPLES, form_order, jsonable, lang_order, order
from magbig.reporting.model import FACE_STATUSES, Report
from neobabel.errors import InputError

_KEYS = ("model", "lang", "formulation")


def build_report(
    labels: pl.DataFrame,
    *,
    run_info: dict | None = None,
    alignment: pl.DataFrame | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    n_perm: int = 9999,
    top_k: int = 10,
) -> Report:
    """Compute every statistic a report shows, for ONE classifier's labels.

    ``labels``: one row per image with subject, lang, formulation, status, label (optionally
    model, text, prompt_id, path), or pre-counted rows (n_female, n_male, …) as
    :func:`magbig.stats.per_prompt` accepts. ``run_info``: the run's ``run.json`` (model name
    and classifier are read from it when the labels lack them). ``alignment``: optional frame
    with lang, formulation, subject (or prompt_id), clip_cos_en and clip_cos_own (raw CLIP
    cosines against the English text and against the prompt's own text).
    Deterministic given ``seed``.
    """
    run_info = dict(run_info or {})
    df, classifier = _prepare_labels(labels, run_info)
    pp = stats.per_prompt(df)
    agg = stats.aggregate(pp, n_boot=n_boot, seed=seed)
    emu = stats.expected_max_unfairness(pp, seed=seed)
    ok_counts = pp.group_by(list(_KEYS)).agg(pl.col("n_ok").sum())
    agg = agg.join(emu.select(*_KEYS, "exp_max_l1", "exp_max_l1_std"), on=list(_KEYS),
                   how="left", nulls_equal=True, maintain_order="left")
    agg = agg.join(ok_counts, on=list(_KEYS), how="left", nulls_equal=True, maintain_order="left")
    langs = lang_order(pp["lang"])
    forms = form_order(pp["formulation"])
    models = order(pp["model"], [])
    agg = _in_reading_order(agg, before=("model",))
    vs_en = _paired_or_empty(pp, "lang", "en", n_perm, n_boot, seed)
    vs_direct = _paired_or_empty(pp, "formulation", "direct", n_perm, n_boot, seed)
    face = {s: int(pp[f"n_{s}"].sum()) for s in FACE_STATUSES}
    face["n_images"] = int(pp["n_images"].sum())
    face["n_labelled"] = int(pp["n_labelled"].sum())
    align = align_tests = None
    if alignment is not None:
        align, align_tests = _alignment(alignment, models[0] if len(models) == 1 else None,
                                        n_boot, seed, n_perm)
    return Report(
        per_prompt=pp,
        aggregates=agg,
        tests_vs_en=vs_en,
        tests_vs_direct=vs_direct,
        expected_max_unfairness=emu,
        language_spread=stats.language_spread(pp),
        spearman=stats.spearman_between_languages(pp),
        most_skewed=_most_skewed(pp, top_k),
        heatmap=_heatmap(pp, langs),
        face_counts=face,
        prompt_samples=_prompt_samples(df),
        alignment=align,
        alignment_tests=align_tests,
        run_info=run_info,
        classifier=classifier,
        models=models,
        langs=langs,
        formulations=forms,
        n_boot=n_boot,
        seed=seed,
    )


def _prepare_labels(labels: pl.DataFrame, run_info: dict) -> tuple[pl.DataFrame, str]:
    missing = [c for c in ("subject", "lang", "formulation") if c not in labels.columns]
    if missing:
        raise InputError(
            f"labels lack column(s) {', '.join(missing)}; a labels table needs subject, lang, "
            "formulation, and label (one row per image) or n_female + n_male"
        )
    classifier = run_info.get("classifier")
    if "classifier" in labels.columns:
        names = sorted(str(v) for v in labels["classifier"].drop_nulls().unique().to_list())
        if len(names) > 1:
            raise InputError(
                f"labels hold several classifiers ({', '.join(names)}); build one report per "
                "classifier (filter the labels to one of them)"
            )
        if names:
            classifier = names[0]
    df = labels
    if "model" not in df.columns:
        df = df.with_columns(pl.lit(_model_name(run_info) or "unnamed model").alias("model"))
    df = df.with_columns(
        pl.col(c).cast(pl.String) for c in ("model", "subject", "lang", "formulation")
    )
    return df, ("not recorded" if classifier in (None, "") else _describe(classifier))


def _most_skewed(pp: pl.DataFrame, top_k: int) -> pl.DataFrame:
    """Top occupations per (model, formulation) by abs_dev averaged over languages."""
    schema = {"model": pl.String, "formulation": pl.String, "rank": pl.Int64,
              "subject": pl.String, "n_langs": pl.Int64, "mean_p_female": pl.Float64,
              "mean_abs_dev": pl.Float64, "p_min": pl.Float64, "lang_min": pl.String,
              "p_max": pl.Float64, "lang_max": pl.String}
    df = pp.filter(pl.col("p_female").is_not_null())
    if df.height == 0:
        return pl.DataFrame(schema=schema)
    out = df.group_by("model", "formulation", "subject").agg(
        pl.len().cast(pl.Int64).alias("n_langs"),
        pl.col("p_female").mean().alias("mean_p_female"),
        pl.col("abs_dev").mean().alias("mean_abs_dev"),
        pl.col("p_female").min().alias("p_min"),
        pl.col("lang").sort_by("p_female").first().alias("lang_min"),
        pl.col("p_female").max().alias("p_max"),
        pl.col("lang").sort_by("p_female").last().alias("lang_max"),
    )
    out = out.sort(["model", "formulation", "mean_abs_dev", "subject"],
                   descending=[False, False, True, False])
    out = out.with_columns(
        pl.int_range(1, pl.len() + 1).over("model", "formulation").cast(pl.Int64).alias("rank")
    ).filter(pl.col("rank") <= top_k)
    return out.select(list(schema))


def _heatmap(pp: pl.DataFrame, langs: list) -> pl.DataFrame:
    idx = ["model", "formulation", "subject"]
    if pp.height == 0:
        return pl.DataFrame(schema={c: pl.String for c in idx})
    wide = pp.pivot(on="lang", index=idx, values="p_female", aggregate_function=None)
    return wide.select(*idx, *[lang for lang in langs if lang in wide.columns]).sort(idx)


def _prompt_samples(df: pl.DataFrame) -> pl.DataFrame | None:
    if "text" not in df.columns:
        return None
    cols = ["lang", "formulation", "subject", *(["prompt_id"] if "prompt_id" in df.columns else []),
            "text"]
    distinct = df.select(cols).filter(pl.col("text").is_not_null()).unique(
        subset=["lang", "formulation", "subject"], keep="first", maintain_order=True
    )
    distinct = distinct.with_columns(pl.col("text").cast(pl.String))
    out = distinct.sort("lang", "formulation", "subject").group_by(
        "lang", "formulation", maintain_order=True
    ).head(PROMPT_SAMPLES)
    return _in_reading_order(out, after=("subject",))


def _alignment(alignment: pl.DataFrame, default_model: str | None, n_boot: int, seed: int,
               n_perm: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    need = ["lang", "formulation", "clip_cos_en", "clip_cos_own"]
    missing = [c for c in need if c not in alignment.columns]
    unit = "subject" if "subject" in alignment.columns else "prompt_id"
    if missing or unit not in alignment.columns:
        raise InputError(
            "alignment needs columns lang, formulation, subject (or prompt_id), clip_cos_en and "
            f"clip_cos_own; missing: {', '.join(missing or ['subject'])}"
        )
    a = alignment
    if "model" not in a.columns:
        a = a.with_columns(pl.lit(default_model or "unnamed model").alias("model"))
    if unit == "prompt_id":  # "{subject}/{lang}/{formulation}"
        a = a.with_columns(pl.col("prompt_id").cast(pl.String).str.split("/").list.first()
                           .alias("subject"))
    a = a.with_columns(
        *(pl.col(c).cast(pl.String) for c in ("model", "lang", "formulation", "subject")),
        *(pl.col(c).cast(pl.Float64) for c in ("clip_cos_en", "clip_cos_own")),
    )
    # One value per prompt (mean over its images): the subject is the pairing unit.
    per_subject = a.group_by("model", "lang", "formulation", "subject").agg(
        pl.len().alias("n_images"),
        pl.col("clip_cos_en").mean(),
        pl.col("clip_cos_own").mean(),
    )
    groups = per_subject.group_by("model", "lang", "formulation").agg(
        pl.len().cast(pl.Int64).alias("n_subjects"),
        pl.col("n_images").sum().cast(pl.Int64),
        pl.col("clip_cos_own").mean().alias("mean_cos_own"),
        pl.col("clip_cos_en").mean().alias("mean_cos_en"),
    )
    groups = _in_reading_order(groups, before=("model",))
    tests = []
    for metric in ("clip_cos_own", "clip_cos_en"):
        t = stats.paired_tests(per_subject.filter(pl.col(metric).is_not_null()),
                               against="formulation", reference="direct", metric=metric,
                               by=("model", "lang"), n_perm=n_perm, n_boot=n_boot, seed=seed)
        tests.append(t)
    return groups, pl.concat(tests, how="vertical_relaxed")



def _in_reading_order(df: pl.DataFrame, before: tuple = (), after: tuple = ()) -> pl.DataFrame:
    """Rows sorted the way readers scan them: by ``before``, then English first and direct
    first (:func:`.format.lang_order`, :func:`.format.form_order`), then by ``after``."""
    langs, forms = lang_order(df["lang"]), form_order(df["formulation"])
    ranks = [
        pl.col("lang").replace_strict({v: i for i, v in enumerate(langs)}, default=len(langs),
                                      return_dtype=pl.Int64).alias("_lang_rank"),
        pl.col("formulation").replace_strict({v: i for i, v in enumerate(forms)},
                                             default=len(forms), return_dtype=pl.Int64)
        .alias("_form_rank"),
    ]
    return (df.with_columns(ranks).sort(*before, "_lang_rank", "_form_rank", *after)
            .drop("_lang_rank", "_form_rank"))


def _paired_or_empty(pp: pl.DataFrame, against: str, reference: str, n_perm, n_boot, seed) -> pl.DataFrame:
    """The report's comparisons against English / the direct wording; none when it is absent."""
    return stats.paired_tests(pp, against=against, reference=reference, n_perm=n_perm, n_boot=n_boot,
                              seed=seed, missing_reference="empty")


def _model_name(run_info: dict) -> str | None:
    model = run_info.get("model")
    if isinstance(model, dict):
        model = model.get("model") or model.get("name")
    return None if model in (None, "") else str(model)


def _describe(value) -> str:
    if isinstance(value, dict):
        name = value.get("name") or value.get("classifier") or value.get("backend")
        return str(name) if name else json.dumps(jsonable(value), ensure_ascii=False)
    return str(value)

