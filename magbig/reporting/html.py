"""``report.html``: one self-contained page rendered from Jinja2 templates.

The templates (``templates/``, package data) hold the markup; this module turns a report
into plain values for them: strings, numbers already formatted by :mod:`.format`, and
:class:`Table` objects. Nothing here builds markup or escapes by hand: the environment
autoescapes every ``{{ value }}``, so a prompt, subject, model name or note can only ever
reach the page as text. Plots are base64 PNGs (see :mod:`.plots`), so they carry no markup
either, and the page loads nothing from outside itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from typing import TYPE_CHECKING

import jinja2
import polars as pl

from magbig.reporting.format import (
    INTERVALS_NOTE,
    PROMPT_SAMPLES,
    SCALES_NOTE,
    fixed,
    interval,
    jsonable,
    p_value,
    paired_test_headers,
    paired_test_rows,
)
from magbig.stats import STATUSES as FACE_STATUSES
from neobabel.languages import LANGUAGES

if TYPE_CHECKING:  # type hints only: the report module imports this one, not the reverse
    from magbig.reporting.model import Report

SECTIONS = (
    ("headline", "Headline"),
    ("per-language", "Female share per language"),
    ("formulations", "Direct vs neutral formulations"),
    ("vs-english", "Languages vs English"),
    ("heatmap", "Occupation × language heatmap"),
    ("skewed", "Most skewed occupations"),
    ("consistency", "Cross-language consistency"),
    ("alignment", "Alignment cost of neutral prompts"),
    ("methods", "Methods"),
)

SEED_SCHEMES = {
    "per_subject": "per subject: every language and formulation of an occupation starts from the same "
                   "noise, different occupations from independent noise (the bootstrap resamples "
                   "occupations as independent clusters)",
    "shared": "shared: slot i of every prompt uses the same seed, so occupations are not independent "
              "when a model draws much of a face from its starting noise; intervals may be too narrow",
}

HEADLINE_HEADERS = ("model", "lang", "formulation", "mean p̂_female [95% CI]",
                    "mean abs_dev [95% CI]", "mean l1 [95% CI]", "noise floor (abs_dev)",
                    "E(max) l1", "n_subjects", "n_images (labelled)", "n_images (all)",
                    "why an interval is narrow")


@dataclass(frozen=True)
class TextCell:
    """A table cell with attributes, e.g. ``dir="auto"`` for a prompt in any script."""

    text: str
    attrs: dict


@dataclass
class Table:
    """Headers and rows of plain text (or :class:`TextCell`); ``numeric``: right-aligned columns."""

    headers: list[str]
    rows: list[list]
    numeric: frozenset[int] = field(default_factory=frozenset)


@dataclass
class PairedPanel:
    """One paired-difference comparison (languages vs English, or formulations vs direct)."""

    level: str  # what is compared: "language", "formulation"
    reference: str  # what it is compared against, as shown
    reference_is_code: bool  # a column value (shown as code) rather than a word
    reading: str  # how to read the sign of a difference
    table: Table
    empty_note: str | None = None  # said when there is nothing to compare; None: say nothing


# --------------------------------------------------------------------------------------------
# rendering


@cache
def environment() -> jinja2.Environment:
    """The report's Jinja2 environment: templates from the package, every value autoescaped."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("magbig.reporting", "templates"),
        autoescape=True,  # all of these templates are HTML; no file-name rule to get wrong
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the render, not the reader
        finalize=lambda value: "" if value is None else value,  # a missing value: empty cell
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_html(report: Report) -> str:
    """The whole page as one string (plots embedded, no external resources)."""
    return environment().get_template("report.html.j2").render(page_context(report))


def page_context(r: Report) -> dict:
    """Every value the template shows, as plain (unescaped) text, numbers and tables."""
    figures: dict[str, list[dict]] = {}
    for fig in r.figures():
        figures.setdefault(fig["section"], []).append(fig)
    n_images = r.face_counts.get("n_images", 0)
    return {
        "sections": SECTIONS,
        "titles": dict(SECTIONS),
        "models": ", ".join(str(m) for m in r.models) or "none",
        "classifier": r.classifier,
        "n_images": f"{n_images:,}",
        "n_labelled": f"{r.n_labelled:,}",
        "langs": ", ".join(map(str, r.langs)),
        "formulations": ", ".join(map(str, r.formulations)),
        "empty": r.n_labelled == 0,
        "n_images_raw": n_images,
        "face_counts": ", ".join(f"{s}: {r.face_counts.get(s, 0)}" for s in FACE_STATUSES),
        "figures": figures,
        "scales_note": SCALES_NOTE,
        "noise_floor_note": r.noise_floor()["note"],
        "headline": headline_table(r),
        "n_formulations": len(r.formulations),
        "vs_direct": PairedPanel(
            "formulation", "direct", True, "negative: closer to parity than direct",
            _paired_table(r.tests_vs_direct, "formulation", "lang")),
        "vs_english": PairedPanel(
            "language", "English", False, "positive: further from parity than English",
            _paired_table(r.tests_vs_en, "lang", "formulation"),
            empty_note="No comparison with English (English not audited, or no labelled images)."),
        "skewed": skewed_table(r) if r.most_skewed.height else None,
        "consistency": consistency_table(r),
        "alignment": alignment_tables(r),
        "methods": methods_context(r),
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


# --------------------------------------------------------------------------------------------
# tables


def headline_table(r: Report) -> Table:
    rows = [
        [row["model"], row["lang"], row["formulation"],
         interval(row["mean_p_female"], row["mean_p_female_low"], row["mean_p_female_high"]),
         interval(row["mean_abs_dev"], row["mean_abs_dev_low"], row["mean_abs_dev_high"]),
         interval(row["mean_l1"], row["mean_l1_low"], row["mean_l1_high"]),
         fixed(row["mean_noise_floor"]), fixed(row.get("exp_max_l1")),
         str(row["n_subjects"]), str(row["n_labelled"]), str(row["n_images"]),
         row.get("interval_note") or ""]
        for row in r.aggregates.iter_rows(named=True)
    ]
    return Table(list(HEADLINE_HEADERS), rows, frozenset(range(3, 11)))


def _paired_table(tests: pl.DataFrame, against: str, other: str) -> Table:
    return Table(paired_test_headers(against, other), list(paired_test_rows(tests, against, other)),
                 frozenset(range(4, 10)))


def skewed_table(r: Report) -> Table:
    rows = [[row["model"], row["formulation"], str(row["rank"]), row["subject"],
             fixed(row["mean_p_female"]), fixed(row["mean_abs_dev"]),
             f"{fixed(row['p_min'])} ({row['lang_min']}) – {fixed(row['p_max'])} ({row['lang_max']})",
             str(row["n_langs"])] for row in r.most_skewed.iter_rows(named=True)]
    return Table(["model", "formulation", "rank", "occupation", "mean p̂_female", "mean raw |p̂ − 0.5|",
                  "p̂_female range across languages", "n langs"], rows, frozenset((2, 4, 5, 7)))


def consistency_table(r: Report) -> Table | None:
    rows = [[c.get("model"), c.get("formulation"), str(c.get("n_subjects")),
             fixed(c.get("mean_spread")), fixed(c.get("max_spread")), str(c.get("n_lang_pairs", "–")),
             fixed(c.get("mean_rho")), fixed(c.get("min_rho"))] for c in r.consistency_rows()]
    if not rows:
        return None
    return Table(["model", "formulation", "n occupations", "mean spread", "max spread",
                  "language pairs", "mean ρ", "min ρ"], rows, frozenset(range(2, 8)))


def alignment_tables(r: Report) -> dict | None:
    """The alignment groups and their paired tests against direct (None: not measured)."""
    if r.alignment is None:
        return None
    groups = Table(
        ["model", "lang", "formulation", "n occupations", "n images", "mean cosine (own text)",
         "mean cosine (English text)"],
        [[a["model"], a["lang"], a["formulation"], str(a["n_subjects"]), str(a["n_images"]),
          fixed(a["mean_cos_own"], 4), fixed(a["mean_cos_en"], 4)]
         for a in r.alignment.iter_rows(named=True)],
        frozenset(range(3, 7)))
    tests = None
    if r.alignment_tests is not None and r.alignment_tests.height:
        tests = Table(
            ["model", "lang", "formulation", "metric", "n pairs", "Δ cosine vs direct [95% CI]",
             "p (sign-flip)", "p (Holm)"],
            [[t["model"], t["lang"], t["formulation"], t["metric"], str(t["n_pairs"]),
              interval(t["mean_diff"], t["diff_low"], t["diff_high"], 4), p_value(t["p_value"]),
              p_value(t["p_holm"])] for t in r.alignment_tests.iter_rows(named=True)],
            frozenset(range(4, 8)))
    return {"groups": groups, "tests": tests}


# --------------------------------------------------------------------------------------------
# methods


def methods_context(r: Report) -> dict:
    npp = r.n_per_prompt()
    scheme = (r.run_info.get("audit") or {}).get("seeds")
    return {
        "images_per_prompt": _range_text(npp["n_images"]),
        "labelled_per_prompt": _range_text(npp["n_labelled"]),
        "seed_scheme": SEED_SCHEMES.get(scheme, scheme) if scheme else None,
        "n_boot": r.n_boot,
        "seed": r.seed,
        "face_filter": face_filter_table(r),
        "face_filter_by_group": face_filter_by_group(r),
        "intervals_note": INTERVALS_NOTE,
        "prompt_samples_per_group": PROMPT_SAMPLES,
        "prompts": prompts_table(r),
        "run": Table(["field", "value"], [list(row) for row in flatten(r.run_info)])
        if r.run_info else None,
    }


def _range_text(counts: dict) -> str:
    return f"{counts['min']}–{counts['max']} (median {counts['median']:g})"


def face_filter_table(r: Report) -> Table:
    total = max(1, r.face_counts.get("n_images", 0))
    rows = [[s, f"{r.face_counts.get(s, 0):,}", f"{r.face_counts.get(s, 0) / total:.1%}"]
            for s in FACE_STATUSES]
    return Table(["status", "images", "share"], rows, frozenset((1, 2)))


def face_filter_by_group(r: Report) -> Table | None:
    if not r.aggregates.height:
        return None
    rows = [[a["model"], a["lang"], a["formulation"], str(a["n_images"]), str(a.get("n_ok") or 0),
             *(str(a.get(f"n_{s}") or 0) for s in FACE_STATUSES[1:])]
            for a in r.aggregates.iter_rows(named=True)]
    return Table(["model", "lang", "formulation", "images", *FACE_STATUSES], rows,
                 frozenset(range(3, 9)))


def prompts_table(r: Report) -> Table | None:
    """Sample prompts; the text cell carries ``dir="auto"`` (and ``lang`` when known) so
    Arabic, Hebrew or Devanagari prompts are laid out in their own direction and font."""
    samples = r.prompt_samples
    if samples is None or not samples.height:
        return None
    has_id = "prompt_id" in samples.columns
    rows = []
    for p in samples.iter_rows(named=True):
        attrs = {"dir": "auto"}
        if str(p["lang"]) in LANGUAGES:  # only a known code becomes a lang attribute
            attrs["lang"] = str(p["lang"])
        ids = [p["prompt_id"]] if has_id else []
        rows.append([p["lang"], p["formulation"], p["subject"], *ids, TextCell(p["text"], attrs)])
    headers = ["lang", "formulation", "subject", *(["prompt id"] if has_id else []), "prompt"]
    return Table(headers, rows)


def flatten(info: dict, prefix: str = "") -> list[tuple[str, str]]:
    """run.json as (dotted key, short text) rows for the methods table."""
    rows: list[tuple[str, str]] = []
    for key, value in info.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows.extend(flatten(value, f"{name}."))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            rows.append((name, f"{len(value)} entries"))
        else:
            text = value if isinstance(value, str) else json.dumps(jsonable(value), ensure_ascii=False)
            rows.append((name, text if len(text) <= 300 else text[:297] + "…"))
    return rows
