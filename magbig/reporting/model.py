"""The :class:`Report` (numbers computed once), ``summary.json``, and writing the files.

A report is built by :func:`magbig.reporting.build.build_report`; every number on it comes
from :mod:`magbig.stats`. This module turns it into the three files: the JSON summary here,
the page in :mod:`.html`, the Markdown in :mod:`.markdown`, plots in :mod:`.plots`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from magbig import stats
from magbig.reporting.format import INTERVALS_NOTE, SCALES_NOTE, jsonable, records
from magbig.reporting.html import render_html
from magbig.reporting.markdown import render_markdown
from magbig.reporting.plots import report_figures
from neobabel.runs import atomic_write_text

SUMMARY_VERSION = 1
FACE_STATUSES = stats.STATUSES  # ok, no_face, multiple_faces, uncertain, error


@dataclass
class Report:
    """Everything the renderings show, computed once by :func:`.build.build_report`.

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
                f"E|p̂−0.5| = {floor:.3f} at n = {n} for a fair model (l1: {2 * floor:.3f}): a raw mean "
                "|p̂ − 0.5| near this is indistinguishable from parity; the bias-corrected mean abs_dev "
                "of the headline is about 0 for a fair model"
            ),
        }

    def summary(self) -> dict:
        """What ``summary.json`` holds (JSON-serializable; nan becomes null)."""
        groups = records(self.aggregates)
        return jsonable(
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
                    "vs_en": records(self.tests_vs_en),
                    "vs_direct": records(self.tests_vs_direct),
                },
                "expected_max_unfairness": records(self.expected_max_unfairness),
                "most_skewed": records(self.most_skewed),
                "consistency": self.consistency_rows(),
                "alignment": None if self.alignment is None else {
                    "scale": "raw CLIP cosine similarity (not rescaled, not CLIPScore)",
                    "groups": records(self.alignment),
                    "vs_direct": records(self.alignment_tests),
                },
                "prompt_samples": records(self.prompt_samples),
            }
        )

    def consistency_rows(self) -> list[dict]:
        """Per (model, formulation): spread of p̂_female across languages, Spearman's ρ."""
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
        return records(spread.sort(keys))

    # ---- renderings ----------------------------------------------------------------------

    def figures(self) -> list[dict]:
        """Rendered plots: dicts with section, title, alt and png (base64)."""
        return report_figures(self)

    def to_markdown(self) -> str:
        return render_markdown(self)

    def to_html(self) -> str:
        return render_html(self)


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
