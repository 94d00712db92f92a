"""m-GenEval reports: user strings are escaped in HTML; the Markdown table has every task."""

from __future__ import annotations

from neobabel.eval import geneval as ge
from neobabel.eval.report import render_html, render_markdown


def _summary():
    rows = []
    for tag in ge.GENEVAL_TAGS:
        fields = {"key": f"k{tag}", "lang": "en", "tag": tag, "prompt_id": tag, "seed": 0}
        rows += ge.decision_rows(fields, ge.ImageDecision(tag != "counting", "", (ge.Check(0, "count", "cat", ">=1", "1", True),)))
    s = ge.summarize(ge.scores_frame(rows))
    s.update(backend={"detector": "<b>det</b>", "reference": False, "note": "non-reference backend: <i>x</i>",
                      "color": "clip"}, options=ge.GenEvalOptions().to_dict(), vocab="coco", images_per_prompt=1)
    return s


def test_html_escapes_user_strings():
    html = render_html(_summary(), "<script>alert(1)</script>")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<b>det</b>" not in html and "&lt;b&gt;det&lt;/b&gt;" in html


def test_markdown_has_every_task_and_the_overall():
    md = render_markdown(_summary(), "run")
    header = next(line for line in md.splitlines() if line.startswith("| lang"))
    assert all(t in header for t in ge.GENEVAL_TAGS)
    row = next(line for line in md.splitlines() if line.startswith("| en"))
    assert "**0.833**" in row and "0.000" in row  # counting failed: (5 x 1 + 0) / 6
