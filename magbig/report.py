"""Audit reports: ``summary.json``, one self-contained ``report.html`` and ``report.md``.

``build_report(labels)`` runs the statistics of :mod:`magbig.stats` once (per prompt,
aggregates with cluster-bootstrap intervals, paired tests with Holm correction, MAGBIG's
expected maximum unfairness, cross-language consistency) and keeps the frames on a
:class:`Report`; the three renderings only format what is already computed.

Plots are rendered by matplotlib's Agg canvas (``matplotlib.figure.Figure``, never pyplot, so
no global backend is touched) to PNG and embedded as base64 ``data:`` URIs. Why PNG and not
inline SVG: every user string (subject, model, language code) that a plot shows becomes
pixels, so no prompt or subject can inject markup into the page, whatever matplotlib's SVG
writer escapes or not, and the tables beside each plot carry the same numbers as text.
Everything else in the page passes through :func:`html.escape`; matplotlib's mathtext is
switched off so a ``$`` in a subject is shown literally instead of being parsed.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import matplotlib
import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from magbig import stats
from neobabel.errors import InputError
from neobabel.languages import LANGUAGE_CODES, LANGUAGES
from neobabel.runs import atomic_write_text

__all__ = ["Report", "build_report", "write_report"]

SUMMARY_VERSION = 1
FORMULATION_ORDER = ("direct", "indirect", "feminine", "gender_star")
FACE_STATUSES = stats.STATUSES  # ok, no_face, multiple_faces, uncertain, error
_KEYS = ("model", "lang", "formulation")
_DPI = 100
_PROMPT_SAMPLES = 3  # prompt strings shown per (lang, formulation)

INTERVALS_NOTE = (
    "Per prompt: Wilson score 95% interval for p̂_female at that prompt's labelled images. "
    "Aggregates (means over occupations): 95% percentile interval of a two-stage cluster "
    "bootstrap (resample occupations with replacement, then each drawn occupation's images "
    "as Binomial(n, p̂)). Paired tests: paired-bootstrap 95% interval of the mean difference "
    "and a two-sided sign-flip permutation p-value, Holm-adjusted within each family "
    "(all languages vs English; all formulations vs direct)."
)
SCALES_NOTE = (
    "p̂_female = share of single-face ('ok') images labelled female; "
    "abs_dev = |p̂ − 0.5| (distance from parity, 0 to 0.5); "
    "l1 = 2|p̂ − 0.5| (MAGBIG's L1 deviation, 0 to 1; always 2 × abs_dev)."
)


# --------------------------------------------------------------------------------------------
# small helpers


def _e(value) -> str:
    """HTML-escape any value (quotes too, so it is safe inside attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def _md(value) -> str:
    """Escape a user string for a Markdown table cell: no pipes, markup, HTML or line breaks."""
    text = "" if value is None else str(value)
    text = " ".join(text.split())
    text = text.replace("\\", "\\\\")
    text = html.escape(text, quote=False)  # raw HTML in Markdown would be rendered
    for ch in "|*_`[]#~":
        text = text.replace(ch, "\\" + ch)
    return text


def _num(x) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _f(x, digits: int = 3) -> str:
    v = _num(x)
    return "–" if v is None else f"{v:.{digits}f}"


def _ci(est, low, high, digits: int = 3) -> str:
    if _num(est) is None:
        return "–"
    return f"{_f(est, digits)} [{_f(low, digits)}, {_f(high, digits)}]"


def _p(x) -> str:
    v = _num(x)
    if v is None:
        return "–"
    return "< 0.001" if v < 0.001 else f"{v:.3f}"


def _jsonable(value):
    """Plain JSON types; nan/inf become None; anything unknown becomes its str()."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _num(value)
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _records(df: pl.DataFrame | None) -> list[dict]:
    return [] if df is None else _jsonable(df.to_dicts())


def _order(values: Iterable, preferred: Sequence[str]) -> list:
    present = [v for v in dict.fromkeys(values) if v is not None]
    first = [p for p in preferred if p in present]
    return first + sorted((v for v in present if v not in preferred), key=str)


def _lang_order(values: Iterable) -> list:
    return _order(values, LANGUAGE_CODES)


def _form_order(values: Iterable) -> list:
    return _order(values, FORMULATION_ORDER)


_SEED_SCHEMES = {
    "per_subject": "per subject: every language and formulation of an occupation starts from the same "
                   "noise, different occupations from independent noise (the bootstrap resamples "
                   "occupations as independent clusters)",
    "shared": "shared: slot i of every prompt uses the same seed, so occupations are not independent "
              "when a model draws much of a face from its starting noise; intervals may be too narrow",
}


def _model_name(run_info: dict) -> str | None:
    model = run_info.get("model")
    if isinstance(model, dict):
        model = model.get("model") or model.get("name")
    return None if model in (None, "") else str(model)


def _describe(value) -> str:
    if isinstance(value, dict):
        name = value.get("name") or value.get("classifier") or value.get("backend")
        return str(name) if name else json.dumps(_jsonable(value), ensure_ascii=False)
    return str(value)


def _flatten(info: dict, prefix: str = "") -> list[tuple[str, str]]:
    """run.json as (dotted key, short text) rows for the methods table."""
    rows: list[tuple[str, str]] = []
    for key, value in info.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows.extend(_flatten(value, f"{name}."))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            rows.append((name, f"{len(value)} entries"))
        else:
            text = json.dumps(_jsonable(value), ensure_ascii=False) if not isinstance(value, str) else value
            rows.append((name, text if len(text) <= 300 else text[:297] + "…"))
    return rows


# --------------------------------------------------------------------------------------------
# the report


@dataclass
class Report:
    """Everything the renderings show, computed once by :func:`build_report`.

    Frames (all from :mod:`magbig.stats` unless said otherwise):

    - ``per_prompt``: one row per (model, subject, lang, formulation): counts, p_female with
      Wilson ci_low/ci_high, abs_dev, l1, noise_floor.
    - ``aggregates``: one row per (model, lang, formulation), means over occupations with
      cluster-bootstrap bounds, face-filter totals, joined with ``exp_max_l1`` and ``n_ok``.
    - ``tests_vs_en`` / ``tests_vs_direct``: paired tests of abs_dev (Holm within each frame).
    - ``expected_max_unfairness``, ``language_spread``, ``spearman``.
    - ``most_skewed``: per (model, formulation) the top occupations by abs_dev averaged over
      languages, with the range of p̂_female across languages.
    - ``heatmap``: wide p̂_female matrix, rows (model, formulation, subject), one column per
      language.
    - ``alignment`` / ``alignment_tests``: raw CLIP cosine means per (model, lang,
      formulation) and their paired differences against ``direct`` (None without alignment).
    - ``prompt_samples``: a few prompt strings per (lang, formulation) (None without ``text``).
    """

    per_prompt: pl.DataFrame
    aggregates: pl.DataFrame
    tests_vs_en: pl.DataFrame
    tests_vs_direct: pl.DataFrame
    expected_max_unfairness: pl.DataFrame
    language_spread: pl.DataFrame
    spearman: pl.DataFrame
    most_skewed: pl.DataFrame
    heatmap: pl.DataFrame
    face_counts: dict
    prompt_samples: pl.DataFrame | None = None
    alignment: pl.DataFrame | None = None
    alignment_tests: pl.DataFrame | None = None
    run_info: dict = field(default_factory=dict)
    classifier: str = "not recorded"
    models: list = field(default_factory=list)
    langs: list = field(default_factory=list)
    formulations: list = field(default_factory=list)
    n_boot: int = 2000
    seed: int = 0

    # ---- numbers -------------------------------------------------------------------------

    @property
    def n_labelled(self) -> int:
        return int(self.face_counts.get("n_labelled", 0))

    def n_per_prompt(self) -> dict:
        """min / median / max images and labelled images per prompt."""
        out = {}
        for col in ("n_images", "n_labelled"):
            s = self.per_prompt[col] if self.per_prompt.height else pl.Series(col, [], pl.Int64)
            out[col] = {
                "min": int(s.min()) if s.len() else 0,
                "median": float(s.median()) if s.len() else 0.0,
                "max": int(s.max()) if s.len() else 0,
            }
        return out

    def noise_floor(self) -> dict:
        """Binomial noise floor at the median number of labelled images per prompt."""
        labelled = self.per_prompt.filter(pl.col("n_labelled") > 0)["n_labelled"]
        if labelled.len() == 0:
            return {"n": 0, "abs_dev": None, "l1": None, "note": "no labelled images"}
        n = int(round(float(labelled.median())))
        floor = float(stats.noise_floor(n))
        return {
            "n": n,
            "abs_dev": floor,
            "l1": 2.0 * floor,
            "note": (
                f"E|p̂−0.5| = {floor:.3f} at n = {n} for a fair model (l1: {2 * floor:.3f}); "
                "a measured abs_dev near this is indistinguishable from parity"
            ),
        }

    def summary(self) -> dict:
        """What ``summary.json`` holds (JSON-serializable; nan becomes null)."""
        groups = _records(self.aggregates)
        return _jsonable(
            {
                "summary_version": SUMMARY_VERSION,
                "run_info": self.run_info,
                "models": self.models,
                "classifier": self.classifier,
                "languages": self.langs,
                "formulations": self.formulations,
                "n_images": self.face_counts.get("n_images", 0),
                "n_labelled": self.n_labelled,
                "no_labelled_images": self.n_labelled == 0,
                "face_filter": {s: self.face_counts.get(s, 0) for s in FACE_STATUSES},
                "n_per_prompt": self.n_per_prompt(),
                "noise_floor": self.noise_floor(),
                "scales": SCALES_NOTE,
                "intervals": INTERVALS_NOTE,
                "bootstrap": {"n_boot": self.n_boot, "seed": self.seed},
                "groups": groups,
                "paired_tests": {
                    "metric": "abs_dev",
                    "vs_en": _records(self.tests_vs_en),
                    "vs_direct": _records(self.tests_vs_direct),
                },
                "expected_max_unfairness": _records(self.expected_max_unfairness),
                "most_skewed": _records(self.most_skewed),
                "consistency": self._consistency_rows(),
                "alignment": None if self.alignment is None else {
                    "scale": "raw CLIP cosine similarity (not rescaled, not CLIPScore)",
                    "groups": _records(self.alignment),
                    "vs_direct": _records(self.alignment_tests),
                },
                "prompt_samples": _records(self.prompt_samples),
            }
        )

    def _consistency_rows(self) -> list[dict]:
        keys = [c for c in ("model", "formulation") if c in self.language_spread.columns]
        if self.language_spread.height == 0:
            return []
        spread = self.language_spread.filter(pl.col("n_langs") > 1).group_by(keys).agg(
            pl.len().alias("n_subjects"),
            pl.col("spread").mean().alias("mean_spread"),
            pl.col("spread").max().alias("max_spread"),
        )
        if self.spearman.height:
            rho = self.spearman.group_by(keys).agg(
                pl.len().alias("n_lang_pairs"),
                pl.col("rho").mean().alias("mean_rho"),
                pl.col("rho").min().alias("min_rho"),
            )
            spread = spread.join(rho, on=keys, how="left", nulls_equal=True)
        return _records(spread.sort(keys))

    # ---- figures -------------------------------------------------------------------------

    def figures(self) -> list[dict]:
        """Rendered plots: dicts with section, title, alt and png (base64)."""
        if self.n_labelled == 0:
            return []
        figs: list[dict] = []
        with _plot_style():
            for model in self.models:
                agg = self.aggregates.filter(pl.col("model") == model)
                pp = self.per_prompt.filter(pl.col("model") == model)
                forms = _form_order(agg.filter(pl.col("n_subjects") > 0)["formulation"])
                langs = _lang_order(agg.filter(pl.col("n_subjects") > 0)["lang"])
                if not forms:
                    continue  # this model has no labelled image; its tables say so
                title = f"{model}" if len(self.models) > 1 else ""
                figs.append(_figure("per-language", f"Female share per language {title}".strip(),
                                    _plot_per_language(agg, langs, forms, model)))
                if len(forms) > 1:
                    tests = self.tests_vs_direct.filter(pl.col("model") == model) \
                        if "model" in self.tests_vs_direct.columns else self.tests_vs_direct
                    figs.append(_figure("formulations", f"Formulations compared {title}".strip(),
                                        _plot_formulations(agg, tests, langs, forms, model)))
                heat = self.heatmap.filter(pl.col("model") == model)
                figs.append(_figure("heatmap", f"Occupation × language heatmap {title}".strip(),
                                    _plot_heatmap(heat, langs, forms, model)))
                skew = self.most_skewed.filter(pl.col("model") == model)
                figs.append(_figure("skewed", f"Most skewed occupations {title}".strip(),
                                    _plot_skewed(skew, forms, model)))
            if self.alignment is not None and self.alignment.height:
                for model in _order(self.alignment["model"], self.models):
                    a = self.alignment.filter(pl.col("model") == model)
                    t = self.alignment_tests
                    if t is not None and "model" in t.columns:
                        t = t.filter(pl.col("model") == model)
                    figs.append(_figure("alignment", f"Alignment of neutral prompts {model}",
                                        _plot_alignment(a, t, model)))
        return figs

    # ---- renderings ----------------------------------------------------------------------

    def to_markdown(self) -> str:
        return _render_markdown(self)

    def to_html(self) -> str:
        return _render_html(self)


# --------------------------------------------------------------------------------------------
# building


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
    ).head(_PROMPT_SAMPLES)
    langs, forms = _lang_order(out["lang"]), _form_order(out["formulation"])
    return out.with_columns(
        pl.col("lang").replace_strict({v: i for i, v in enumerate(langs)}, default=len(langs),
                                      return_dtype=pl.Int64).alias("_l"),
        pl.col("formulation").replace_strict({v: i for i, v in enumerate(forms)},
                                             default=len(forms), return_dtype=pl.Int64).alias("_f"),
    ).sort("_l", "_f", "subject").drop("_l", "_f")


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
    langs, forms = _lang_order(groups["lang"]), _form_order(groups["formulation"])
    groups = groups.with_columns(
        pl.col("lang").replace_strict({v: i for i, v in enumerate(langs)}, return_dtype=pl.Int64)
        .alias("_l"),
        pl.col("formulation").replace_strict({v: i for i, v in enumerate(forms)},
                                             return_dtype=pl.Int64).alias("_f"),
    ).sort("model", "_l", "_f").drop("_l", "_f")
    tests = []
    for metric in ("clip_cos_own", "clip_cos_en"):
        t = stats.paired_tests(per_subject.filter(pl.col(metric).is_not_null()),
                               against="formulation", reference="direct", metric=metric,
                               by=("model", "lang"), n_perm=n_perm, n_boot=n_boot, seed=seed)
        tests.append(t)
    return groups, pl.concat(tests, how="vertical_relaxed")


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
    langs = _lang_order(pp["lang"])
    forms = _form_order(pp["formulation"])
    models = _order(pp["model"], [])
    # Sort the groups the way readers scan them: English first, direct first.
    lang_rank = {v: i for i, v in enumerate(langs)}
    form_rank = {v: i for i, v in enumerate(forms)}
    agg = agg.with_columns(
        pl.col("lang").replace_strict(lang_rank, default=len(langs), return_dtype=pl.Int64).alias("_l"),
        pl.col("formulation").replace_strict(form_rank, default=len(forms), return_dtype=pl.Int64)
        .alias("_f"),
    ).sort("model", "_l", "_f").drop("_l", "_f")
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


# --------------------------------------------------------------------------------------------
# plots (matplotlib Figure + Agg canvas -> PNG; no pyplot state)


class _plot_style:
    """rc settings for report plots: no mathtext, no TeX, a font fallback chain."""

    def __enter__(self):
        from matplotlib import font_manager

        available = {f.name for f in font_manager.fontManager.ttflist}
        fallback = [f for f in ("Noto Sans CJK JP", "Noto Sans", "Noto Sans Devanagari",
                                "Noto Sans Arabic") if f in available]
        rc = {
            "text.usetex": False,
            "text.parse_math": False,  # a '$' in a subject is text, not mathtext
            "font.family": ["DejaVu Sans", *fallback],
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
        self._rc = matplotlib.rc_context(rc)
        self._rc.__enter__()
        self._warn = warnings.catch_warnings()
        self._warn.__enter__()
        warnings.filterwarnings("ignore", message=r"Glyph .* missing")
        warnings.filterwarnings("ignore", message=r"Matplotlib currently does not support")
        return self

    def __exit__(self, *exc):
        self._warn.__exit__(*exc)
        self._rc.__exit__(*exc)
        return False


def _png(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight", pad_inches=0.15,
                metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(section: str, title: str, fig_and_alt: tuple[Figure, str]) -> dict:
    fig, alt = fig_and_alt
    return {"section": section, "title": title, "alt": alt, "png": _png(fig)}


def _colors(forms: Sequence[str]) -> dict:
    fixed = {"direct": "#1b6ca8", "indirect": "#e07b00", "feminine": "#b0298c",
             "gender_star": "#2a9d55"}
    extra = matplotlib.colormaps["tab10"].colors
    out, i = {}, 0
    for f in forms:
        if f in fixed:
            out[f] = fixed[f]
        else:
            out[f] = extra[(i + 5) % len(extra)]
            i += 1
    return out


def _rows_by(df: pl.DataFrame, key: str) -> dict:
    return {r[key]: r for r in df.iter_rows(named=True)}


def _err(y, lo, hi) -> np.ndarray:
    y, lo, hi = (np.array([np.nan if v is None else v for v in a], dtype=float) for a in (y, lo, hi))
    return np.nan_to_num(np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)]))


def _plot_per_language(agg: pl.DataFrame, langs, forms, model) -> tuple[Figure, str]:
    fig = Figure(figsize=(max(6.5, 0.75 * len(langs) + 2.5), 6.2), layout="constrained")
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    colors = _colors(forms)
    width = 0.8 / max(1, len(forms))
    x0 = np.arange(len(langs), dtype=float)
    floor_drawn = False
    for i, form in enumerate(forms):
        rows = _rows_by(agg.filter(pl.col("formulation") == form), "lang")
        pick = [(j, rows[lang]) for j, lang in enumerate(langs)
                if lang in rows and rows[lang]["mean_p_female"] is not None]
        if not pick:
            continue
        x = np.array([j for j, _ in pick]) + (i - (len(forms) - 1) / 2) * width
        r = [row for _, row in pick]
        for ax, name in ((ax1, "p_female"), (ax2, "abs_dev")):
            y = [row[f"mean_{name}"] for row in r]
            ax.errorbar(x, y, yerr=_err(y, [row[f"mean_{name}_low"] for row in r],
                                        [row[f"mean_{name}_high"] for row in r]),
                        fmt="o", ms=5, capsize=3, color=colors[form], label=form)
        ax2.scatter(x, [row["mean_noise_floor"] for row in r], marker="_", s=120, color="0.45",
                    zorder=3, label=None if floor_drawn else "noise floor (fair model)")
        floor_drawn = True
    ax1.axhline(0.5, ls="--", lw=1, color="0.5")
    ax1.set_ylim(-0.02, 1.02)
    ax1.set_ylabel("mean p̂_female over occupations")
    ax1.text(1.0, 0.49, "parity ", color="0.4", fontsize=8, ha="right", va="top",
             transform=ax1.get_yaxis_transform())
    ax2.set_ylim(0, 0.52)
    ax2.set_ylabel("mean abs_dev = |p̂ − 0.5|")
    ax2.set_xticks(x0, langs)
    ax2.set_xlabel("language")
    ax1.legend(title="formulation", loc="upper right", fontsize=8, ncols=min(4, len(forms)))
    ax2.legend(fontsize=8, loc="upper right", ncols=min(5, len(forms) + 1))
    fig.suptitle(f"{model}: share of faces perceived female, per language\n"
                 "dots: mean over occupations; bars: 95% cluster-bootstrap interval",
                 fontsize=10)
    alt = (f"Mean female share and mean abs_dev per language for {model}, one series per "
           f"formulation ({', '.join(forms)}), with 95% intervals; numbers in the headline table.")
    return fig, alt


def _plot_formulations(agg, tests, langs, forms, model) -> tuple[Figure, str]:
    fig = Figure(figsize=(max(9, 1.2 * len(langs) + 4), 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[1.2, 1])
    colors = _colors(forms)
    width = 0.8 / max(1, len(forms))
    x0 = np.arange(len(langs), dtype=float)
    for i, form in enumerate(forms):
        rows = _rows_by(agg.filter(pl.col("formulation") == form), "lang")
        pick = [(j, rows[lang]) for j, lang in enumerate(langs)
                if lang in rows and rows[lang]["mean_abs_dev"] is not None]
        if not pick:
            continue
        x = np.array([j for j, _ in pick]) + (i - (len(forms) - 1) / 2) * width
        y = [r["mean_abs_dev"] for _, r in pick]
        ax1.bar(x, y, width=width * 0.95, color=colors[form], label=form,
                yerr=_err(y, [r["mean_abs_dev_low"] for _, r in pick],
                          [r["mean_abs_dev_high"] for _, r in pick]),
                error_kw={"capsize": 2, "lw": 0.8})
    ax1.set_xticks(x0, langs)
    ax1.set_ylim(0, 0.52)
    ax1.set_ylabel("mean abs_dev = |p̂ − 0.5|")
    ax1.set_title("Distance from parity by formulation", fontsize=10)
    ax1.legend(title="formulation", fontsize=8)
    others = [f for f in forms if f != "direct"]
    w2 = 0.8 / max(1, len(others))
    for i, form in enumerate(others):
        t = tests.filter(pl.col("formulation") == form) if tests.height else tests
        rows = _rows_by(t, "lang") if t.height else {}
        pick = [(j, rows[lang]) for j, lang in enumerate(langs) if lang in rows]
        if not pick:
            continue
        x = np.array([j for j, _ in pick]) + (i - (len(others) - 1) / 2) * w2
        y = [r["mean_diff"] for _, r in pick]
        ax2.errorbar(x, y, yerr=_err(y, [r["diff_low"] for _, r in pick],
                                     [r["diff_high"] for _, r in pick]),
                     fmt="o", capsize=3, color=colors[form], label=form)
        for xi, (_, r) in zip(x, pick, strict=True):
            if r["p_holm"] is not None and r["p_holm"] < 0.05:
                ax2.annotate("*", (xi, r["diff_high"] if r["diff_high"] is not None else r["mean_diff"]),
                             ha="center", va="bottom", fontsize=12)
    ax2.axhline(0, lw=1, color="0.5")
    ax2.set_xticks(x0, langs)
    ax2.set_ylabel("Δ abs_dev vs direct (paired by occupation)")
    ax2.set_title("Change against direct\n95% paired bootstrap; * Holm p < 0.05", fontsize=10)
    if others:
        ax2.legend(fontsize=8)
    fig.suptitle(f"{model}: direct (generic) prompts vs neutral / feminine formulations",
                 fontsize=10)
    alt = (f"Mean abs_dev per language and formulation for {model}, and paired differences "
           "of each formulation against direct; numbers in the table below.")
    return fig, alt


def _plot_heatmap(heat: pl.DataFrame, langs, forms, model) -> tuple[Figure, str]:
    forms = [f for f in forms if f in set(heat["formulation"].to_list())] or forms[:1]
    langs = [lang for lang in langs if lang in heat.columns]
    # One subject order for all panels: most male-skewed at the top, by mean over cells.
    order = heat.with_columns(pl.mean_horizontal(*langs).alias("_m")).group_by("subject").agg(
        pl.col("_m").mean()).sort("_m", "subject", nulls_last=True)
    subjects = order["subject"].to_list()
    n = len(subjects)
    panel_w = 0.42 * len(langs) + 0.5
    fig = Figure(figsize=(1.8 + panel_w * len(forms) + 1.0, max(3.0, 0.155 * n + 1.6)),
                 layout="constrained")
    axes = fig.subplots(1, len(forms), sharey=True, squeeze=False)[0]
    cmap = matplotlib.colormaps["PuOr"].with_extremes(bad="#d9d9d9")
    norm = TwoSlopeNorm(vmin=0.0, vcenter=0.5, vmax=1.0)
    pos = {s: i for i, s in enumerate(subjects)}
    image = None
    for ax, form in zip(axes, forms, strict=True):
        sub = heat.filter(pl.col("formulation") == form)
        mat = np.full((n, len(langs)), np.nan)
        for row in sub.iter_rows(named=True):
            for j, lang in enumerate(langs):
                if row[lang] is not None:
                    mat[pos[row["subject"]], j] = row[lang]
        image = ax.imshow(np.ma.masked_invalid(mat), cmap=cmap, norm=norm, aspect="auto",
                          interpolation="nearest")
        ax.set_xticks(range(len(langs)), langs, rotation=0)
        ax.xaxis.tick_top()
        ax.set_title(form, fontsize=10, pad=18)
        ax.tick_params(length=0)
        for side in ("left", "bottom", "top", "right"):
            ax.spines[side].set_visible(False)
        if n * len(langs) <= 500:
            for (i, j), v in np.ndenumerate(mat):
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6.5,
                            color="white" if abs(v - 0.5) > 0.3 else "black")
    axes[0].set_yticks(range(n), subjects, fontsize=7 if n > 40 else 8)
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=min(1.0, 12 / max(n, 1) + 0.3), pad=0.02,
                     label="p̂_female (0 all male · 0.5 parity · 1 all female)")
    fig.suptitle(f"{model}: p̂_female per occupation and language\n(grey: no labelled image)",
                 fontsize=10)
    alt = (f"Heatmap of the female share for {n} occupations × {len(langs)} languages, one "
           f"panel per formulation, diverging colours centred at parity (0.5), for {model}.")
    return fig, alt


def _plot_skewed(skew: pl.DataFrame, forms, model) -> tuple[Figure, str]:
    forms = [f for f in forms if f in set(skew["formulation"].to_list())] or forms[:1]
    k = max(1, int(skew.group_by("formulation").len()["len"].max() or 1)) if skew.height else 1
    fig = Figure(figsize=(max(6.5, 4.2 * len(forms)), 0.32 * k + 1.8), layout="constrained")
    axes = fig.subplots(1, len(forms), squeeze=False)[0]
    for ax, form in zip(axes, forms, strict=True):
        sub = skew.filter(pl.col("formulation") == form).sort("rank")
        names = sub["subject"].to_list()
        p = sub["mean_p_female"].to_numpy()
        y = np.arange(len(names))
        colors = np.where(p >= 0.5, "#8e5fb0", "#d98b2b")
        ax.barh(y, p - 0.5, left=0.5, color=colors, height=0.7)
        lo, hi = sub["p_min"].to_numpy(), sub["p_max"].to_numpy()
        ax.errorbar(p, y, xerr=np.vstack([p - lo, hi - p]), fmt="none", ecolor="0.25",
                    capsize=2, lw=0.8)
        ax.axvline(0.5, color="0.4", lw=1)
        ax.set_xlim(0, 1)
        ax.set_yticks(y, names)
        ax.invert_yaxis()
        ax.set_xlabel("p̂_female (mean over languages; whiskers: min–max)")
        ax.set_title(form, fontsize=10)
    fig.suptitle(f"{model}: most skewed occupations by mean abs_dev over languages\n"
                 "orange: male-skewed · purple: female-skewed", fontsize=10)
    alt = (f"Bars of the female share of the most skewed occupations for {model}, one panel "
           "per formulation; the table below lists them.")
    return fig, alt


def _plot_alignment(a: pl.DataFrame, tests: pl.DataFrame | None, model) -> tuple[Figure, str]:
    langs, forms = _lang_order(a["lang"]), _form_order(a["formulation"])
    colors = _colors(forms)
    has_tests = tests is not None and tests.height > 0
    fig = Figure(figsize=(max(10, 1.1 * len(langs) * (3 if has_tests else 2)), 3.8),
                 layout="constrained")
    axes = fig.subplots(1, 3 if has_tests else 2)
    width = 0.8 / max(1, len(forms))
    x0 = np.arange(len(langs), dtype=float)
    for ax, col, title in ((axes[0], "mean_cos_own", "vs own prompt"),
                           (axes[1], "mean_cos_en", "vs English prompt")):
        for i, form in enumerate(forms):
            rows = _rows_by(a.filter(pl.col("formulation") == form), "lang")
            pick = [(j, rows[lang]) for j, lang in enumerate(langs) if lang in rows]
            x = np.array([j for j, _ in pick], dtype=float) + (i - (len(forms) - 1) / 2) * width
            ax.plot(x, [r[col] for _, r in pick], "o", color=colors[form], label=form)
        ax.set_xticks(x0, langs)
        ax.set_ylabel("raw CLIP cosine")
        ax.set_title(f"Image–text cosine {title}", fontsize=10)
    axes[0].legend(title="formulation", fontsize=8)
    if has_tests:
        ax = axes[2]
        t = tests.filter(pl.col("metric") == "clip_cos_own")
        others = _form_order(t["formulation"])
        w2 = 0.8 / max(1, len(others))
        for i, form in enumerate(others):
            rows = _rows_by(t.filter(pl.col("formulation") == form), "lang")
            pick = [(j, rows[lang]) for j, lang in enumerate(langs) if lang in rows]
            x = np.array([j for j, _ in pick], dtype=float) + (i - (len(others) - 1) / 2) * w2
            y = [r["mean_diff"] for _, r in pick]
            ax.errorbar(x, y, yerr=_err(y, [r["diff_low"] for _, r in pick],
                                        [r["diff_high"] for _, r in pick]),
                        fmt="o", capsize=3, color=colors.get(form, "0.3"), label=form)
        ax.axhline(0, color="0.5", lw=1)
        ax.set_xticks(x0, langs)
        ax.set_ylabel("Δ raw CLIP cosine (own text) vs direct")
        ax.set_title("Alignment cost (95% paired bootstrap)", fontsize=10)
        if others:
            ax.legend(fontsize=8)
    fig.suptitle(f"{model}: text–image alignment by formulation (raw CLIP cosine, not rescaled)",
                 fontsize=10)
    alt = (f"Raw CLIP cosine of images against their own prompt and the English prompt per "
           f"language and formulation for {model}, and the change against direct prompts.")
    return fig, alt


# --------------------------------------------------------------------------------------------
# HTML


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;margin:0;
color:#1d1d1f;background:#fafafa;line-height:1.45}
main{max-width:1200px;margin:0 auto;padding:1.5rem 2rem 4rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{margin-top:2.4rem;border-bottom:1px solid #ddd;
padding-bottom:.2rem} h3{margin-top:1.4rem}
.lede{color:#555;margin-top:0} nav a{margin-right:1rem;white-space:nowrap}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.88rem;background:#fff}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f0f0} td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1rem 0;background:#fff;border:1px solid #e3e3e3;padding:.5rem;overflow-x:auto}
figure img{max-width:100%;height:auto} figcaption{color:#555;font-size:.85rem}
.warn{background:#fff4e5;border-left:4px solid #e07b00;padding:.6rem 1rem}
.note{color:#555;font-size:.9rem} code{background:#f0f0f0;padding:0 .2rem}
.scroll{max-height:32rem;overflow:auto}
"""

_SECTIONS = [
    ("headline", "Headline"),
    ("per-language", "Female share per language"),
    ("formulations", "Direct vs neutral formulations"),
    ("vs-english", "Languages vs English"),
    ("heatmap", "Occupation × language heatmap"),
    ("skewed", "Most skewed occupations"),
    ("consistency", "Cross-language consistency"),
    ("alignment", "Alignment cost of neutral prompts"),
    ("methods", "Methods"),
]


def _cell(value, cls: str | None = None, attrs: dict | None = None) -> str:
    extra = "".join(f' {_e(k)}="{_e(v)}"' for k, v in (attrs or {}).items())
    c = f' class="{_e(cls)}"' if cls else ""
    return f"<td{c}{extra}>{_e(value)}</td>"


def _table(headers: Sequence[str], rows: Iterable[Sequence], numeric: Iterable[int] = ()) -> str:
    """An HTML table; every header and cell is escaped. A cell may be (text, attrs dict)."""
    numeric = set(numeric)
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            if isinstance(v, tuple):
                cells.append(_cell(v[0], attrs=v[1]))
            else:
                cells.append(_cell(v, "n" if i in numeric else None))
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        return '<p class="note">(no rows)</p>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _paired_or_empty(pp: pl.DataFrame, against: str, reference: str, n_perm, n_boot, seed) -> pl.DataFrame:
    """The report's comparisons against English / the direct wording; none when it is absent."""
    return stats.paired_tests(pp, against=against, reference=reference, n_perm=n_perm, n_boot=n_boot,
                              seed=seed, missing_reference="empty")


def _fig_html(fig: dict) -> str:
    return (f'<figure><img alt="{_e(fig["alt"])}" src="data:image/png;base64,{fig["png"]}">'
            f"<figcaption>{_e(fig['title'])}</figcaption></figure>")


def _headline_rows(r: Report, markdown: bool = False):
    for row in r.aggregates.iter_rows(named=True):
        yield [
            row["model"], row["lang"], row["formulation"],
            _ci(row["mean_p_female"], row["mean_p_female_low"], row["mean_p_female_high"]),
            _ci(row["mean_abs_dev"], row["mean_abs_dev_low"], row["mean_abs_dev_high"]),
            _ci(row["mean_l1"], row["mean_l1_low"], row["mean_l1_high"]),
            _f(row["mean_noise_floor"]),
            _f(row.get("exp_max_l1")),
            str(row["n_subjects"]), str(row["n_labelled"]), str(row["n_images"]),
            row.get("interval_note") or "",
        ]


_HEADLINE_HEADERS = ["model", "lang", "formulation", "mean p̂_female [95% CI]",
                     "mean abs_dev [95% CI]", "mean l1 [95% CI]", "noise floor (abs_dev)",
                     "E(max) l1", "n_subjects", "n_images (labelled)", "n_images (all)",
                     "why an interval is narrow"]


def _test_rows(t: pl.DataFrame, against: str, other: str):
    for row in t.iter_rows(named=True):
        yield [
            row.get("model", ""), row.get(other, ""), row[against], row["reference"],
            str(row["n_pairs"]), _f(row["mean_reference"]), _f(row["mean_level"]),
            _ci(row["mean_diff"], row["diff_low"], row["diff_high"]),
            _p(row["p_value"]), _p(row["p_holm"]),
        ]


def _test_headers(against: str, other: str) -> list[str]:
    return ["model", other, against, "reference", "n pairs", "mean abs_dev (reference)",
            f"mean abs_dev ({against})", "difference [95% CI]", "p (sign-flip)", "p (Holm)"]


def _render_html(r: Report) -> str:
    figs = r.figures()
    by_section: dict[str, list[dict]] = {}
    for f in figs:
        by_section.setdefault(f["section"], []).append(f)
    nf = r.noise_floor()
    empty = r.n_labelled == 0
    models = ", ".join(str(m) for m in r.models) or "none"
    out: list[str] = []
    w = out.append
    w('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
      '<meta name="viewport" content="width=device-width, initial-scale=1">\n')
    w(f"<title>{_e('MAGBIG gender-bias audit — ' + models)}</title>\n<style>{_CSS}</style>\n")
    w("</head>\n<body><main>\n")
    w("<h1>Gender-bias audit (MAGBIG protocol)</h1>\n")
    w(f'<p class="lede">Model(s): <b>{_e(models)}</b> · classifier: <b>{_e(r.classifier)}</b> · '
      f"{r.face_counts.get('n_images', 0):,} images, {r.n_labelled:,} labelled · languages: "
      f"{_e(', '.join(map(str, r.langs)))} · formulations: "
      f"{_e(', '.join(map(str, r.formulations)))}</p>\n")
    w("<nav>" + "".join(f'<a href="#{sid}">{_e(title)}</a>' for sid, title in _SECTIONS)
      + "</nav>\n")
    if empty:
        counts = ", ".join(f"{s}: {r.face_counts.get(s, 0)}" for s in FACE_STATUSES)
        w(f'<p class="warn"><b>No labelled images.</b> None of the {r.face_counts.get("n_images", 0)} '
          f"images had exactly one face with a gender label ({_e(counts)}), so there is no "
          "estimate to report. Check the face detector and the face-filter counts in Methods.</p>\n")

    def section(sid: str, title: str) -> None:
        w(f'<section id="{sid}">\n<h2>{_e(title)}</h2>\n')

    def figures_of(sid: str) -> None:
        for f in by_section.get(sid, []):
            w(_fig_html(f) + "\n")

    def no_data() -> None:
        w('<p class="note">No labelled images, so nothing to show.</p>\n')

    # headline
    section(*_SECTIONS[0])
    w(f'<p>Means over occupations (subjects) per model × language × formulation. {_e(SCALES_NOTE)} '
      f'{_e(nf["note"])}.</p>\n')
    w(_table(_HEADLINE_HEADERS, _headline_rows(r), numeric=range(3, 11)))
    w("</section>\n")

    # per language
    section(*_SECTIONS[1])
    if empty:
        no_data()
    figures_of("per-language")
    w('<p class="note">The grey dashes mark the binomial noise floor: the abs_dev a perfectly '
      "fair model would show at these sample sizes.</p>\n</section>\n")

    # formulations
    section(*_SECTIONS[2])
    if empty:
        no_data()
    elif len(r.formulations) < 2:
        w('<p class="note">Only one formulation was audited; nothing to compare.</p>\n')
    figures_of("formulations")
    if r.tests_vs_direct.height:
        w("<p>Each formulation against <code>direct</code>, paired by occupation, metric abs_dev "
          "(negative: closer to parity than direct). Holm correction over this table.</p>\n")
        w(_table(_test_headers("formulation", "lang"),
                 _test_rows(r.tests_vs_direct, "formulation", "lang"), numeric=range(4, 10)))
    w("</section>\n")

    # vs english
    section(*_SECTIONS[3])
    if r.tests_vs_en.height:
        w("<p>Each language against English, paired by occupation, metric abs_dev (positive: "
          "further from parity than English). Holm correction over this table.</p>\n")
        w(_table(_test_headers("lang", "formulation"),
                 _test_rows(r.tests_vs_en, "lang", "formulation"), numeric=range(4, 10)))
    else:
        w('<p class="note">No comparison with English (English not audited, or no labelled '
          "images).</p>\n")
    w("</section>\n")

    # heatmap
    section(*_SECTIONS[4])
    if empty:
        no_data()
    figures_of("heatmap")
    w("</section>\n")

    # most skewed
    section(*_SECTIONS[5])
    if empty:
        no_data()
    figures_of("skewed")
    if r.most_skewed.height:
        rows = [[row["model"], row["formulation"], str(row["rank"]), row["subject"],
                 _f(row["mean_p_female"]), _f(row["mean_abs_dev"]),
                 f"{_f(row['p_min'])} ({row['lang_min']}) – {_f(row['p_max'])} ({row['lang_max']})",
                 str(row["n_langs"])] for row in r.most_skewed.iter_rows(named=True)]
        w(_table(["model", "formulation", "rank", "occupation", "mean p̂_female",
                  "mean abs_dev", "p̂_female range across languages", "n langs"], rows,
                 numeric=(2, 4, 5, 7)))
    w("</section>\n")

    # consistency
    section(*_SECTIONS[6])
    cons = r._consistency_rows()
    if cons:
        w("<p>Per occupation, the spread of p̂_female across languages (max − min), and "
          "Spearman's ρ between languages over occupations (high ρ: languages agree on which "
          "occupations are skewed, even where levels differ).</p>\n")
        rows = [[c.get("model"), c.get("formulation"), str(c.get("n_subjects")),
                 _f(c.get("mean_spread")), _f(c.get("max_spread")), str(c.get("n_lang_pairs", "–")),
                 _f(c.get("mean_rho")), _f(c.get("min_rho"))] for c in cons]
        w(_table(["model", "formulation", "n occupations", "mean spread", "max spread",
                  "language pairs", "mean ρ", "min ρ"], rows, numeric=range(2, 8)))
    else:
        w('<p class="note">Needs at least two languages with labelled images.</p>\n')
    w("</section>\n")

    # alignment
    section(*_SECTIONS[7])
    if r.alignment is None:
        w('<p class="note">Not measured: no alignment scores were given.</p>\n')
    else:
        w("<p>Text–image alignment as <b>raw CLIP cosine similarity</b> (not rescaled, not "
          "CLIPScore; typical values for matching pairs are around 0.2–0.35). A neutral "
          "formulation that lowers it pays for less bias with worse prompt following.</p>\n")
        figures_of("alignment")
        rows = [[a["model"], a["lang"], a["formulation"], str(a["n_subjects"]),
                 str(a["n_images"]), _f(a["mean_cos_own"], 4), _f(a["mean_cos_en"], 4)]
                for a in r.alignment.iter_rows(named=True)]
        w(_table(["model", "lang", "formulation", "n occupations", "n images",
                  "mean cosine (own text)", "mean cosine (English text)"], rows,
                 numeric=range(3, 7)))
        if r.alignment_tests is not None and r.alignment_tests.height:
            rows = [[t["model"], t["lang"], t["formulation"], t["metric"], str(t["n_pairs"]),
                     _ci(t["mean_diff"], t["diff_low"], t["diff_high"], 4), _p(t["p_value"]),
                     _p(t["p_holm"])] for t in r.alignment_tests.iter_rows(named=True)]
            w("<p>Paired by occupation against <code>direct</code> (Holm within each metric).</p>\n")
            w(_table(["model", "lang", "formulation", "metric", "n pairs",
                      "Δ cosine vs direct [95% CI]", "p (sign-flip)", "p (Holm)"], rows,
                     numeric=range(4, 8)))
    w("</section>\n")

    # methods
    section(*_SECTIONS[8])
    npp = r.n_per_prompt()
    w("<h3>Setup</h3>\n<ul>\n")
    w(f"<li>Model(s): {_e(models)}</li>\n")
    w(f"<li>Perceived-gender classifier: {_e(r.classifier)}</li>\n")
    w(f"<li>Images per prompt: {npp['n_images']['min']}–{npp['n_images']['max']} (median "
      f"{npp['n_images']['median']:g}); labelled (single face, gender decided) per prompt: "
      f"{npp['n_labelled']['min']}–{npp['n_labelled']['max']} (median "
      f"{npp['n_labelled']['median']:g})</li>\n")
    w(f"<li>Binomial noise floor: {_e(nf['note'])}.</li>\n")
    scheme = (r.run_info.get("audit") or {}).get("seeds")
    if scheme:
        w(f"<li>Image seeds: {_e(_SEED_SCHEMES.get(scheme, scheme))}.</li>\n")
    w(f"<li>Bootstrap: {r.n_boot} replicates, seed {r.seed}.</li>\n</ul>\n")
    w("<h3>Face filter</h3>\n<p>Only images with exactly one face and a decided label "
      "(<code>ok</code>) count towards p̂_female; the others are reported, not silently "
      "dropped.</p>\n")
    total = max(1, r.face_counts.get("n_images", 0))
    w(_table(["status", "images", "share"],
             [[s, f"{r.face_counts.get(s, 0):,}", f"{r.face_counts.get(s, 0) / total:.1%}"]
              for s in FACE_STATUSES], numeric=(1, 2)))
    if r.aggregates.height:
        rows = [[a["model"], a["lang"], a["formulation"], str(a["n_images"]),
                 str(a.get("n_ok") or 0), *(str(a.get(f"n_{s}") or 0) for s in FACE_STATUSES[1:])]
                for a in r.aggregates.iter_rows(named=True)]
        w('<div class="scroll">' + _table(["model", "lang", "formulation", "images",
                                           *FACE_STATUSES], rows, numeric=range(3, 9)) + "</div>\n")
    w("<h3>Scales and intervals</h3>\n<ul>\n")
    w("<li><b>p̂_female</b>: share of labelled faces perceived female (0 to 1; 0.5 = parity).</li>\n"
      "<li><b>abs_dev</b> = |p̂ − 0.5|: distance from parity, 0 to 0.5.</li>\n"
      "<li><b>l1</b> = 2|p̂ − 0.5|: MAGBIG's L1 deviation of (female, male) from (0.5, 0.5), "
      "0 to 1; always 2 × abs_dev.</li>\n"
      "<li><b>E(max) l1</b>: MAGBIG's expected maximum unfairness — a simulated user draws 10 "
      "occupations × 10 images; the mean over 1000 users of the worst l1 met.</li>\n"
      f"<li><b>Intervals</b>: {_e(INTERVALS_NOTE)}</li>\n"
      "<li>mean abs_dev estimates E|p̂ − 0.5|, which exceeds the true distance from parity by "
      "up to the noise floor: compare it with the noise floor, not with 0.</li>\n</ul>\n")
    w("<h3>Prompts</h3>\n")
    if r.prompt_samples is not None and r.prompt_samples.height:
        w(f"<p>Up to {_PROMPT_SAMPLES} prompt strings per language × formulation.</p>\n")
        has_id = "prompt_id" in r.prompt_samples.columns
        rows = []
        for p in r.prompt_samples.iter_rows(named=True):
            lang = str(p["lang"])
            attrs = {"dir": "auto"}
            if lang in LANGUAGES:
                attrs["lang"] = lang
            row = [p["lang"], p["formulation"], p["subject"]]
            if has_id:
                row.append(p["prompt_id"])
            row.append((p["text"], attrs))
            rows.append(row)
        headers = ["lang", "formulation", "subject", *(["prompt id"] if has_id else []), "prompt"]
        w(_table(headers, rows))
    else:
        w('<p class="note">The labels carry no prompt text.</p>\n')
    if r.run_info:
        w("<h3>Run</h3>\n")
        w('<div class="scroll">' + _table(["field", "value"], _flatten(r.run_info)) + "</div>\n")
    w("</section>\n")
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    w(f'<p class="note">Generated by magbig.report on {_e(generated)}. The numbers are also in '
      "summary.json beside this file.</p>\n")
    w("</main></body>\n</html>\n")
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Markdown


def _md_table(headers: Sequence[str], rows: Iterable[Sequence]) -> str:
    lines = ["| " + " | ".join(_md(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    if len(lines) == 2:
        return "(no rows)\n"
    return "\n".join(lines) + "\n"


def _render_markdown(r: Report) -> str:
    nf = r.noise_floor()
    models = ", ".join(str(m) for m in r.models) or "none"
    out = ["# MAGBIG gender-bias audit\n"]
    out.append(f"Model(s): **{_md(models)}** · classifier: **{_md(r.classifier)}** · "
               f"{r.face_counts.get('n_images', 0):,} images, {r.n_labelled:,} labelled "
               f"({', '.join(f'{s}: {r.face_counts.get(s, 0):,}' for s in FACE_STATUSES)})\n")
    if r.n_labelled == 0:
        out.append("**No labelled images**: no image had exactly one face with a gender label, "
                   "so there is no estimate to report.\n")
    out.append(f"Noise floor: {_md(nf['note'])}.\n")
    out.append(f"Scales: {_md(SCALES_NOTE)}\n")
    out.append(f"Intervals: {_md(INTERVALS_NOTE)}\n")
    out.append("## Headline (means over occupations)\n")
    headers = ["model", "lang", "formulation", "mean p̂_female [95% CI]", "mean abs_dev [95% CI]",
               "noise floor", "E(max) l1", "n_subjects", "n_labelled", "why an interval is narrow"]
    rows = [[row["model"], row["lang"], row["formulation"],
             _ci(row["mean_p_female"], row["mean_p_female_low"], row["mean_p_female_high"]),
             _ci(row["mean_abs_dev"], row["mean_abs_dev_low"], row["mean_abs_dev_high"]),
             _f(row["mean_noise_floor"]), _f(row.get("exp_max_l1")), row["n_subjects"],
             row["n_labelled"], row.get("interval_note") or ""] for row in r.aggregates.iter_rows(named=True)]
    out.append(_md_table(headers, rows))
    out.append("## Most skewed occupations (mean abs_dev over languages)\n")
    rows = [[row["model"], row["formulation"], row["rank"], row["subject"],
             _f(row["mean_p_female"]), _f(row["mean_abs_dev"]),
             f"{_f(row['p_min'])} ({row['lang_min']}) – {_f(row['p_max'])} ({row['lang_max']})"]
            for row in r.most_skewed.iter_rows(named=True)]
    out.append(_md_table(["model", "formulation", "rank", "occupation", "mean p̂_female",
                          "mean abs_dev", "range across languages"], rows))
    for title, t, against, other in (
        ("Paired tests: languages vs English (abs_dev, Holm-corrected)", r.tests_vs_en, "lang",
         "formulation"),
        ("Paired tests: formulations vs direct (abs_dev, Holm-corrected)", r.tests_vs_direct,
         "formulation", "lang"),
    ):
        out.append(f"## {title}\n")
        out.append(_md_table(_test_headers(against, other), _test_rows(t, against, other)))
    if r.alignment is not None:
        out.append("## Alignment (raw CLIP cosine)\n")
        rows = [[a["model"], a["lang"], a["formulation"], a["n_subjects"],
                 _f(a["mean_cos_own"], 4), _f(a["mean_cos_en"], 4)]
                for a in r.alignment.iter_rows(named=True)]
        out.append(_md_table(["model", "lang", "formulation", "n occupations",
                              "cosine (own text)", "cosine (English text)"], rows))
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# files


def write_report(report: Report, run_dir: str | Path) -> dict[str, Path]:
    """Write summary.json, report.html and report.md into ``run_dir``, each atomically.

    Everything is rendered before the first file is written, so a rendering error leaves the
    previous report untouched. Returns the written paths by name.
    """
    run_dir = Path(run_dir)
    contents = {
        "summary.json": json.dumps(report.summary(), indent=2, ensure_ascii=False,
                                   allow_nan=False) + "\n",
        "report.html": report.to_html(),
        "report.md": report.to_markdown(),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, text in contents.items():
        path = run_dir / name
        atomic_write_text(path, text)  # temp name in the same folder, fsync, os.replace
        paths[name] = path
    return paths
