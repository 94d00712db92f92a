"""m-GenEval tables: the summary as rows (terminal), HTML and Markdown (Jinja2, autoescaped)."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from neobabel.eval.i18n import GENEVAL_TAGS
from neobabel.runs import atomic_write_text

_env = Environment(loader=PackageLoader("neobabel.eval", "data/templates"),
                   autoescape=select_autoescape(["html", "html.j2"]), keep_trailing_newline=True)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def table_rows(summary: dict) -> list[dict]:
    """One row per language: task scores, overall, % correct images and prompts, failures."""
    rows = []
    for lang, s in summary["per_lang"].items():
        rows.append({"lang": lang,
                     "tasks": [_fmt(s["tasks"].get(t, {}).get("score")) for t in GENEVAL_TAGS],
                     "overall": _fmt(s["overall"]),
                     "images_pct": "-" if s["correct_images"] is None else f"{100 * s['correct_images']:.1f}",
                     "prompts_pct": "-" if s["correct_prompts"] is None else f"{100 * s['correct_prompts']:.1f}",
                     "images": s["images"], "failed": s["failed_images"]})
    return rows


def _context(summary: dict, title: str) -> dict:
    opts = summary.get("options", {})
    return {"title": title, "tasks": GENEVAL_TAGS, "rows": table_rows(summary), "backend": summary["backend"],
            "vocab": summary.get("vocab"), "n": summary.get("images_per_prompt"),
            "options_text": ", ".join(f"{k}={v}" for k, v in opts.items() if k != "colors")}


def render_html(summary: dict, title: str) -> str:
    return _env.get_template("geneval.html.j2").render(_context(summary, title))


def render_markdown(summary: dict, title: str) -> str:
    return _env.get_template("geneval.md.j2").render(_context(summary, title))


def write_reports(run_dir: str | Path, summary: dict, title: str) -> tuple[Path, Path]:
    run_dir = Path(run_dir)
    html, md = run_dir / "geneval.html", run_dir / "geneval.md"
    atomic_write_text(html, render_html(summary, title))
    atomic_write_text(md, render_markdown(summary, title))
    return html, md


__all__ = ["table_rows", "render_html", "render_markdown", "write_reports"]
