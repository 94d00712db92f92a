"""``report.md``: the headline numbers and tests as Markdown tables.

Markdown is not HTML: a user string in a table cell must not break the table (``|``), start
emphasis or code (``* _ ` ``), a link (``[ ]``) or a heading (``#``), and raw HTML in
Markdown is rendered by most viewers. :func:`md_cell` handles all of it for every cell and
every sentence that carries user text.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from magbig.reporting.format import (
    INTERVALS_NOTE,
    SCALES_NOTE,
    fixed,
    interval,
    paired_test_headers,
    paired_test_rows,
)
from magbig.stats import STATUSES as FACE_STATUSES

if TYPE_CHECKING:  # type hints only: the report module imports this one, not the reverse
    from magbig.reporting.model import Report

_MARKDOWN_SPECIALS = "|*_`[]#~"


def md_cell(value) -> str:
    """Escape a user string for a Markdown table cell: no pipes, markup, HTML or line breaks."""
    text = "" if value is None else str(value)
    text = " ".join(text.split())
    text = text.replace("\\", "\\\\")  # first, so the escapes added below stay escapes
    text = html.escape(text, quote=False)  # raw HTML in Markdown would be rendered
    for ch in _MARKDOWN_SPECIALS:
        text = text.replace(ch, "\\" + ch)
    return text


def md_table(headers: Sequence[str], rows: Iterable[Sequence]) -> str:
    lines = ["| " + " | ".join(md_cell(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    if len(lines) == 2:
        return "(no rows)\n"
    return "\n".join(lines) + "\n"


_HEADLINE_HEADERS = ("model", "lang", "formulation", "mean p̂_female [95% CI]",
                     "mean abs_dev [95% CI]", "noise floor", "E(max) l1", "n_subjects",
                     "n_labelled", "why an interval is narrow")


def render_markdown(r: Report) -> str:
    out = _preamble(r)
    out.append("## Headline (means over occupations)\n")
    out.append(md_table(_HEADLINE_HEADERS, _headline_rows(r)))
    out.append("## Most skewed occupations (mean raw |p̂ − 0.5| over languages)\n")
    rows = [[row["model"], row["formulation"], row["rank"], row["subject"],
             fixed(row["mean_p_female"]), fixed(row["mean_abs_dev"]),
             f"{fixed(row['p_min'])} ({row['lang_min']}) – {fixed(row['p_max'])} ({row['lang_max']})"]
            for row in r.most_skewed.iter_rows(named=True)]
    out.append(md_table(["model", "formulation", "rank", "occupation", "mean p̂_female",
                         "mean raw |p̂ − 0.5|", "range across languages"], rows))
    for title, tests, against, other in (
        ("Paired tests: languages vs English (abs_dev, Holm-corrected)", r.tests_vs_en, "lang",
         "formulation"),
        ("Paired tests: formulations vs direct (abs_dev, Holm-corrected)", r.tests_vs_direct,
         "formulation", "lang"),
    ):
        out.append(f"## {title}\n")
        out.append(md_table(paired_test_headers(against, other),
                            paired_test_rows(tests, against, other)))
    if r.alignment is not None:
        out.append("## Alignment (raw CLIP cosine)\n")
        rows = [[a["model"], a["lang"], a["formulation"], a["n_subjects"],
                 fixed(a["mean_cos_own"], 4), fixed(a["mean_cos_en"], 4)]
                for a in r.alignment.iter_rows(named=True)]
        out.append(md_table(["model", "lang", "formulation", "n occupations",
                             "cosine (own text)", "cosine (English text)"], rows))
    return "\n".join(out)


def _preamble(r: Report) -> list[str]:
    """Title, what was audited, and the notes on scales, noise floor and intervals."""
    models = ", ".join(str(m) for m in r.models) or "none"
    counts = ", ".join(f"{s}: {r.face_counts.get(s, 0):,}" for s in FACE_STATUSES)
    out = ["# MAGBIG gender-bias audit\n",
           f"Model(s): **{md_cell(models)}** · classifier: **{md_cell(r.classifier)}** · "
           f"{r.face_counts.get('n_images', 0):,} images, {r.n_labelled:,} labelled ({counts})\n"]
    if r.n_labelled == 0:
        out.append("**No labelled images**: no image had exactly one face with a gender label, "
                   "so there is no estimate to report.\n")
    out.append(f"Noise floor: {md_cell(r.noise_floor()['note'])}.\n")
    out.append(f"Scales: {md_cell(SCALES_NOTE)}\n")
    out.append(f"Intervals: {md_cell(INTERVALS_NOTE)}\n")
    return out


def _headline_rows(r: Report) -> Iterable[list]:
    for row in r.aggregates.iter_rows(named=True):
        yield [row["model"], row["lang"], row["formulation"],
               interval(row["mean_p_female"], row["mean_p_female_low"], row["mean_p_female_high"]),
               interval(row["mean_abs_dev"], row["mean_abs_dev_low"], row["mean_abs_dev_high"]),
               fixed(row["mean_noise_floor"]), fixed(row.get("exp_max_l1")), row["n_subjects"],
               row["n_labelled"], row.get("interval_note") or ""]
