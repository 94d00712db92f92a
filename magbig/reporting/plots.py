"""The report's plots: matplotlib figures rendered to PNG, returned as base64 text.

Plots are drawn on matplotlib's Agg canvas (``matplotlib.figure.Figure``, never pyplot, so
no global backend or figure registry is touched). Why PNG and not inline SVG: every user
string a plot shows (subject, model, language code) becomes pixels, so no prompt or subject
can inject markup into the page whatever matplotlib's SVG writer escapes, and the tables
beside each plot carry the same numbers as text. Mathtext is switched off so a ``$`` in a
subject is shown literally instead of being parsed.
"""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from magbig.reporting.format import form_order, lang_order, order

if TYPE_CHECKING:  # type hints only: the report module imports this one, not the reverse
    from magbig.reporting.model import Report

_DPI = 100


def report_figures(report: Report) -> list[dict]:
    """Every plot of a report: dicts with section, title, alt and png (base64), page order."""
    if report.n_labelled == 0:
        return []
    figs: list[dict] = []
    with _plot_style():
        for model in report.models:
            figs.extend(_model_figures(report, model, multi_model=len(report.models) > 1))
        if report.alignment is not None and report.alignment.height:
            for model in order(report.alignment["model"], report.models):
                a = report.alignment.filter(pl.col("model") == model)
                t = report.alignment_tests
                if t is not None and "model" in t.columns:
                    t = t.filter(pl.col("model") == model)
                figs.append(_figure("alignment", f"Alignment of neutral prompts {model}",
                                    _plot_alignment(a, t, model)))
    return figs


def _model_figures(report: Report, model: str, multi_model: bool) -> list[dict]:
    agg = report.aggregates.filter(pl.col("model") == model)
    labelled = agg.filter(pl.col("n_subjects") > 0)
    forms = form_order(labelled["formulation"])
    langs = lang_order(labelled["lang"])
    if not forms:
        return []  # this model has no labelled image; its tables say so
    suffix = f" {model}" if multi_model else ""
    figs = [_figure("per-language", f"Female share per language{suffix}",
                    _plot_per_language(agg, langs, forms, model))]
    if len(forms) > 1:
        tests = report.tests_vs_direct
        if "model" in tests.columns:
            tests = tests.filter(pl.col("model") == model)
        figs.append(_figure("formulations", f"Formulations compared{suffix}",
                            _plot_formulations(agg, tests, langs, forms, model)))
    heat = report.heatmap.filter(pl.col("model") == model)
    figs.append(_figure("heatmap", f"Occupation × language heatmap{suffix}",
                        _plot_heatmap(heat, langs, forms, model)))
    skew = report.most_skewed.filter(pl.col("model") == model)
    figs.append(_figure("skewed", f"Most skewed occupations{suffix}",
                        _plot_skewed(skew, forms, model)))
    return figs


# --------------------------------------------------------------------------------------------
# drawing


@contextmanager
def _plot_style():
    """rc settings for report plots: no mathtext, no TeX, a font fallback chain."""
    from matplotlib import font_manager  # heavy: matplotlib, only when a plot is drawn

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
    with matplotlib.rc_context(rc), warnings.catch_warnings():
        # a script DejaVu lacks falls back or shows boxes; the tables carry the text anyway
        warnings.filterwarnings("ignore", message=r"Glyph .* missing")
        warnings.filterwarnings("ignore", message=r"Matplotlib currently does not support")
        yield


def _png(fig: Figure) -> str:
    """The figure as base64 PNG; no timestamp or software tag, so equal plots give equal bytes."""
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


def _series(agg: pl.DataFrame, form: str, i: int, langs, forms, column: str):
    """One formulation's rows with a value in ``column``, in language order, and their x
    positions: bars/points of formulation i sit side by side around each language's tick."""
    width = 0.8 / max(1, len(forms))
    rows = _rows_by(agg.filter(pl.col("formulation") == form), "lang")
    pick = [(j, rows[lang]) for j, lang in enumerate(langs) if lang in rows and rows[lang][column] is not None]
    x = np.array([j for j, _ in pick], dtype=float) + (i - (len(forms) - 1) / 2) * width
    return x, [r for _, r in pick], width


def _paired_diff_panel(ax, tests: pl.DataFrame, langs, others, colors, *, ylabel: str, title: str,
                       stars: bool = False) -> None:
    """Each formulation's paired difference against direct, per language, with its interval
    (the abs_dev and the alignment figures both draw one); ``stars`` marks Holm p < 0.05."""
    x0 = np.arange(len(langs), dtype=float)
    for i, form in enumerate(others):
        x, r, _ = _series(tests, form, i, langs, others, "mean_diff") if tests.height else ([], [], 0)
        if not r:
            continue
        y = [row["mean_diff"] for row in r]
        ax.errorbar(x, y, yerr=_err(y, [row["diff_low"] for row in r], [row["diff_high"] for row in r]),
                    fmt="o", capsize=3, color=colors.get(form, "0.3"), label=form)
        for xi, row in zip(x, r, strict=True):
            if stars and row["p_holm"] is not None and row["p_holm"] < 0.05:
                top = row["diff_high"] if row["diff_high"] is not None else row["mean_diff"]
                ax.annotate("*", (xi, top), ha="center", va="bottom", fontsize=12)
    ax.axhline(0, lw=1, color="0.5")
    ax.set_xticks(x0, langs)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if others:
        ax.legend(fontsize=8)


def _plot_per_language(agg: pl.DataFrame, langs, forms, model) -> tuple[Figure, str]:
    fig = Figure(figsize=(max(6.5, 0.75 * len(langs) + 2.5), 6.2), layout="constrained")
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    colors = _colors(forms)
    x0 = np.arange(len(langs), dtype=float)
    for i, form in enumerate(forms):
        x, r, _ = _series(agg, form, i, langs, forms, "mean_p_female")
        if not r:
            continue
        for ax, name in ((ax1, "p_female"), (ax2, "abs_dev")):
            # abs_dev can be missing where p̂ is not (every prompt with one labelled image)
            has = [row[f"mean_{name}"] is not None for row in r]
            if not any(has):
                continue
            xs, rs = x[has], [row for row, h in zip(r, has) if h]
            y = [row[f"mean_{name}"] for row in rs]
            ax.errorbar(xs, y, yerr=_err(y, [row[f"mean_{name}_low"] for row in rs],
                                         [row[f"mean_{name}_high"] for row in rs]),
                        fmt="o", ms=5, capsize=3, color=colors[form], label=form)
    ax1.axhline(0.5, ls="--", lw=1, color="0.5")
    ax1.set_ylim(-0.02, 1.02)
    ax1.set_ylabel("mean p̂_female over occupations")
    ax1.text(1.0, 0.49, "parity ", color="0.4", fontsize=8, ha="right", va="top",
             transform=ax1.get_yaxis_transform())
    ax2.axhline(0, lw=1, color="0.5")  # a fair model: the corrected mean is ~0 at any n
    ax2.set_ylim(-0.1, 0.52)
    ax2.set_ylabel("mean abs_dev (bias-corrected)")
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
    x0 = np.arange(len(langs), dtype=float)
    for i, form in enumerate(forms):
        x, r, width = _series(agg, form, i, langs, forms, "mean_abs_dev")
        if not r:
            continue
        y = [row["mean_abs_dev"] for row in r]
        ax1.bar(x, y, width=width * 0.95, color=colors[form], label=form,
                yerr=_err(y, [row["mean_abs_dev_low"] for row in r], [row["mean_abs_dev_high"] for row in r]),
                error_kw={"capsize": 2, "lw": 0.8})
    ax1.set_xticks(x0, langs)
    ax1.set_ylim(-0.1, 0.52)
    ax1.set_ylabel("mean abs_dev (bias-corrected)")
    ax1.set_title("Distance from parity by formulation", fontsize=10)
    ax1.legend(title="formulation", fontsize=8)
    others = [f for f in forms if f != "direct"]
    _paired_diff_panel(ax2, tests, langs, others, colors, stars=True,
                       ylabel="Δ abs_dev vs direct (paired by occupation)",
                       title="Change against direct\n95% paired bootstrap; * Holm p < 0.05")
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
    langs, forms = lang_order(a["lang"]), form_order(a["formulation"])
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
        t = tests.filter(pl.col("metric") == "clip_cos_own")
        _paired_diff_panel(axes[2], t, langs, form_order(t["formulation"]), colors,
                           ylabel="Δ raw CLIP cosine (own text) vs direct",
                           title="Alignment cost (95% paired bootstrap)")
    fig.suptitle(f"{model}: text–image alignment by formulation (raw CLIP cosine, not rescaled)",
                 fontsize=10)
    alt = (f"Raw CLIP cosine of images against their own prompt and the English prompt per "
           f"language and formulation for {model}, and the change against direct prompts.")
    return fig, alt
