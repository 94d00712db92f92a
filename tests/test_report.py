"""Tests for magbig.report(ing): numbers equal magbig.stats', HTML is self-contained and escaped,
templates come from the package and autoescape every user string."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser

import numpy as np
import polars as pl
import pytest

from magbig import report, stats
from neobabel.errors import InputError

N_BOOT = 200
N_PERM = 999
SEED = 3
LANGS = ("en", "de", "ar")
FORMS = ("direct", "indirect")
N_SUBJECTS = 12
N_IMAGES = 20
AR_TEXT = "صورة لوجه طبيب"
HI_TEXT = "एक डॉक्टर के चेहरे की तस्वीर"


def _true_share(s: int, li: int, fi: int) -> float:
    base = 0.05 + 0.9 * s / (N_SUBJECTS - 1)
    # Indirect prompts pull every occupation 40% of the way towards parity.
    return float(np.clip(base + 0.04 * li + (0.5 - base) * 0.4 * fi, 0.0, 1.0))


def simulate(seed: int = 0, subjects=None, texts=None) -> pl.DataFrame:
    """12 occupations × 3 languages × 2 formulations × 20 images with known shares."""
    rng = np.random.default_rng(seed)
    subjects = subjects or [f"occ{s:02d}" for s in range(N_SUBJECTS)]
    rows = []
    for s, subject in enumerate(subjects):
        for li, lang in enumerate(LANGS):
            for fi, form in enumerate(FORMS):
                p = _true_share(s, li, fi)
                status = rng.choice(["ok"] * 8 + ["no_face", "multiple_faces"], N_IMAGES)
                female = rng.random(N_IMAGES) < p
                text = (texts or {}).get((lang, form), f"a photo of the face of a {subject} [{lang}]")
                for i in range(N_IMAGES):
                    label = ("female" if female[i] else "male") if status[i] == "ok" else None
                    rows.append(("sim-model", subject, lang, form, str(status[i]), label, text,
                                 f"{subject}/{lang}/{form}"))
    return pl.DataFrame(
        rows,
        schema=["model", "subject", "lang", "formulation", "status", "label", "text", "prompt_id"],
        orient="row",
    )


def simulate_alignment(labels: pl.DataFrame) -> pl.DataFrame:
    prompts = labels.select("prompt_id", "lang", "formulation", "subject").unique().sort("prompt_id")
    rng = np.random.default_rng(1)
    own = 0.30 - 0.03 * (prompts["formulation"] == "indirect").to_numpy() + rng.normal(0, 0.005, prompts.height)
    return prompts.with_columns(
        pl.Series("clip_cos_own", own), pl.Series("clip_cos_en", own - 0.01)
    )


@pytest.fixture(scope="module")
def labels() -> pl.DataFrame:
    return simulate()


@pytest.fixture(scope="module")
def rep(labels) -> report.Report:
    return report.build_report(labels, run_info={"model": {"model": "sim-model"}, "classifier": "oracle"},
                               alignment=simulate_alignment(labels), n_boot=N_BOOT, seed=SEED,
                               n_perm=N_PERM)


@pytest.fixture(scope="module")
def page(rep) -> str:
    return rep.to_html()


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(page: str) -> _Collector:
    c = _Collector()
    c.feed(page)
    c.close()
    return c


_ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "main", "h1", "h2", "h3", "p",
                 "b", "nav", "a", "section", "table", "thead", "tbody", "tr", "th", "td", "figure",
                 "img", "figcaption", "ul", "li", "code", "div"}


# ----------------------------------------------------------------------------- numbers


def test_summary_numbers_equal_stats(labels, rep):
    pp = stats.per_prompt(labels)
    agg = stats.aggregate(pp, n_boot=N_BOOT, seed=SEED)
    emu = stats.expected_max_unfairness(pp, seed=SEED)
    summary = rep.summary()
    groups = {(g["model"], g["lang"], g["formulation"]): g for g in summary["groups"]}
    assert len(groups) == agg.height == len(LANGS) * len(FORMS)
    for row in agg.iter_rows(named=True):
        g = groups[(row["model"], row["lang"], row["formulation"])]
        for col, value in row.items():
            assert g[col] == pytest.approx(value, abs=1e-12), col
        # known shares: the estimate is near the truth (deterministic: fixed seeds)
        li, fi = LANGS.index(row["lang"]), FORMS.index(row["formulation"])
        truth = np.mean([_true_share(s, li, fi) for s in range(N_SUBJECTS)])
        assert abs(g["mean_p_female"] - truth) < 0.08
        assert g["mean_p_female_low"] < g["mean_p_female"] < g["mean_p_female_high"]
        assert g["mean_l1"] == pytest.approx(2 * g["mean_abs_dev"])
    for row in emu.iter_rows(named=True):
        g = groups[(row["model"], row["lang"], row["formulation"])]
        assert g["exp_max_l1"] == pytest.approx(row["exp_max_l1"], abs=1e-12)
    # face-filter counts
    statuses = labels["status"].value_counts()
    counts = dict(zip(statuses["status"], statuses["count"], strict=True))
    assert summary["face_filter"]["ok"] == counts["ok"]
    assert summary["face_filter"]["no_face"] == counts["no_face"]
    assert summary["n_images"] == labels.height
    assert summary["n_labelled"] == counts["ok"]
    # noise floor at the median labelled n
    n_med = int(round(float(pp["n_labelled"].median())))
    assert summary["noise_floor"]["n"] == n_med
    assert summary["noise_floor"]["abs_dev"] == pytest.approx(stats.noise_floor(n_med))


def test_paired_tests_equal_stats(labels, rep):
    pp = stats.per_prompt(labels)
    want_en = stats.paired_tests(pp, against="lang", reference="en", n_perm=N_PERM, n_boot=N_BOOT,
                                 seed=SEED)
    want_direct = stats.paired_tests(pp, against="formulation", reference="direct", n_perm=N_PERM,
                                     n_boot=N_BOOT, seed=SEED)
    got = rep.summary()["paired_tests"]
    assert got["metric"] == "abs_dev"
    assert [r["p_holm"] for r in got["vs_en"]] == pytest.approx(want_en["p_holm"].to_list())
    assert [r["mean_diff"] for r in got["vs_direct"]] == pytest.approx(
        want_direct["mean_diff"].to_list())
    assert len(got["vs_en"]) == (len(LANGS) - 1) * len(FORMS)
    # the planted effect: indirect is closer to parity than direct in every language
    assert all(r["mean_diff"] < 0 for r in got["vs_direct"])


def test_summary_is_json_and_deterministic(labels, rep):
    text = json.dumps(rep.summary(), allow_nan=False)
    again = report.build_report(labels, run_info={"model": {"model": "sim-model"},
                                                  "classifier": "oracle"},
                                alignment=simulate_alignment(labels), n_boot=N_BOOT, seed=SEED,
                                n_perm=N_PERM)
    assert json.dumps(again.summary(), allow_nan=False) == text
    s = json.loads(text)
    assert s["classifier"] == "oracle" and s["models"] == ["sim-model"]
    assert s["most_skewed"][0]["rank"] == 1


def test_most_skewed_and_heatmap(rep):
    top = rep.most_skewed.filter(pl.col("formulation") == "direct")
    assert top["rank"].to_list() == list(range(1, 11))
    # the planted extremes lead (occ11 sits at ≈ 0.95-1 in every language); the two left out
    # come from the band planted near parity (where sampling noise decides the order)
    assert set(top["subject"].head(3).to_list()) <= {"occ00", "occ01", "occ10", "occ11"}
    assert "occ11" in top["subject"].head(2).to_list()
    left_out = {f"occ{s:02d}" for s in range(N_SUBJECTS)} - set(top["subject"].to_list())
    assert len(left_out) == 2 and left_out <= {"occ03", "occ04", "occ05", "occ06", "occ07"}
    assert (top["mean_abs_dev"].diff().drop_nulls() <= 0).all()
    assert rep.heatmap.columns == ["model", "formulation", "subject", *LANGS]
    assert rep.heatmap.height == N_SUBJECTS * len(FORMS)


def test_alignment_summary(labels, rep):
    a = rep.summary()["alignment"]
    assert "raw CLIP cosine" in a["scale"]
    al = simulate_alignment(labels)
    for g in a["groups"]:
        sub = al.filter((pl.col("lang") == g["lang"]) & (pl.col("formulation") == g["formulation"]))
        assert g["mean_cos_own"] == pytest.approx(sub["clip_cos_own"].mean())
        assert g["n_subjects"] == N_SUBJECTS
    costs = [t["mean_diff"] for t in a["vs_direct"] if t["metric"] == "clip_cos_own"]
    assert len(costs) == len(LANGS) and all(c < -0.02 for c in costs)


# ----------------------------------------------------------------------------- HTML


def test_html_sections_and_one_image_per_plot(rep, page):
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in page
    for _, title in report._SECTIONS:
        assert f"<h2>{title}</h2>" in page, title
    parsed = _parse(page)
    imgs = [a for t, a in parsed.tags if t == "img"]
    figs = rep.figures()
    sections = [f["section"] for f in figs]
    assert sections == ["per-language", "formulations", "heatmap", "skewed", "alignment"]
    assert len(imgs) == len(figs)
    for a in imgs:
        assert a["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(a["src"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
        assert a["alt"]
    text = " ".join(parsed.text)
    assert "E|p̂−0.5| = " in text and "for a fair model" in text
    for status in stats.STATUSES:
        assert status in text
    assert "Wilson" in text and "cluster bootstrap" in text
    assert "abs_dev = |p̂ − 0.5|" in text and "l1 = 2|p̂ − 0.5|" in text
    assert "raw CLIP cosine" in text
    assert "oracle" in text


def test_html_is_self_contained(page):
    assert not re.search(r"""(src|href|action|poster)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<link" not in page.lower() and "<script" not in page.lower()
    assert "@import" not in page and "url(" not in page
    parsed = _parse(page)
    for tag, attrs in parsed.tags:
        if tag == "a":
            assert attrs["href"].startswith("#")


XSS_PROMPT = "<script>alert(1)</script>"
XSS_SUBJECT = '"><img src=x onerror=alert(1)>'


def test_user_strings_are_escaped(tmp_path):
    subjects = [XSS_SUBJECT, "$x^2$ welder", "a|b", *[f"occ{s:02d}" for s in range(3, N_SUBJECTS)]]
    texts = {("en", "direct"): XSS_PROMPT, ("de", "direct"): "eine*r Ärzt*in | `x`"}
    labels = simulate(subjects=subjects, texts=texts).with_columns(
        pl.lit("<b onmouseover=alert(3)>model</b>").alias("model"))
    run_info = {"note": "<script>alert(2)</script>", "model": {"model": "'\"><svg onload=alert(4)>"}}
    r = report.build_report(labels, run_info=run_info, alignment=simulate_alignment(labels),
                            n_boot=50, seed=0, n_perm=99)
    page = r.to_html()
    assert "<script" not in page.lower()
    assert "<img src=x" not in page and "<svg" not in page.lower() and "<b onmouseover" not in page
    # shown to the reader, escaped
    assert html_escaped(XSS_PROMPT) in page
    assert html_escaped(XSS_SUBJECT) in page
    assert html_escaped("<script>alert(2)</script>") in page
    parsed = _parse(page)
    assert {t for t, _ in parsed.tags} <= _ALLOWED_TAGS
    for tag, attrs in parsed.tags:
        assert not any(k.lower().startswith("on") for k in attrs), (tag, attrs)
    assert sum(1 for t, _ in parsed.tags if t == "img") == len(r.figures())
    text = "".join(parsed.text)
    assert XSS_PROMPT in text and XSS_SUBJECT in text  # visible as text after un-escaping
    md = r.to_markdown()
    assert "<script" not in md and "<img" not in md and "<b " not in md
    report.write_report(r, tmp_path)  # renders and writes with hostile strings too


def html_escaped(s: str) -> str:
    """The page's escaping (Jinja2's autoescape is MarkupSafe: quotes become &#34; / &#39;)."""
    from markupsafe import escape

    return str(escape(s))


def test_rtl_and_devanagari_text_survive(tmp_path):
    texts = {("ar", "direct"): AR_TEXT, ("en", "direct"): HI_TEXT}
    labels = simulate(texts=texts)
    r = report.build_report(labels, n_boot=50, n_perm=99)
    page = r.to_html()
    assert AR_TEXT in page and HI_TEXT in page
    assert re.search(r'<td dir="auto" lang="ar">' + re.escape(AR_TEXT) + "</td>", page)
    report.write_report(r, tmp_path)
    on_disk = (tmp_path / "report.html").read_bytes().decode("utf-8")
    assert AR_TEXT in on_disk and HI_TEXT in on_disk
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert AR_TEXT in {p["text"] for p in summary["prompt_samples"]}


# ----------------------------------------------------------------------------- Markdown


def test_markdown_escapes_pipes_and_has_tables(rep):
    subjects = ["a|b", "star*x", *[f"occ{s:02d}" for s in range(2, N_SUBJECTS)]]
    labels = simulate(subjects=subjects).with_columns(pl.lit("m|1").alias("model"))
    r = report.build_report(labels, n_boot=50, n_perm=99, top_k=N_SUBJECTS)
    md = r.to_markdown()
    assert "a\\|b" in md and "m\\|1" in md and "star\\*x" in md
    assert "a|b" not in md.replace("a\\|b", "")
    # every table row has as many unescaped pipes as its header
    for block in re.split(r"\n\n+", md):
        lines = [ln for ln in block.splitlines() if ln.startswith("|")]
        if lines:
            widths = {len(re.findall(r"(?<!\\)\|", ln)) for ln in lines}
            assert len(widths) == 1, lines
    headline = rep.to_markdown()
    assert "mean p̂\\_female \\[95% CI\\]" in headline
    assert "E\\|p̂−0.5\\| = " in headline
    assert "Holm" in headline and "n\\_subjects" in headline and "n\\_labelled" in headline


# ----------------------------------------------------------------------------- files, edges


def test_write_report_atomic(tmp_path, rep):
    paths = report.write_report(rep, tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "report.html", "report.md", "summary.json"]
    assert set(paths) == {"summary.json", "report.html", "report.md"}
    s = json.loads(paths["summary.json"].read_text(encoding="utf-8"))
    assert s["summary_version"] == report.SUMMARY_VERSION
    report.write_report(rep, tmp_path / "run")  # overwrite in place, still no temporaries
    assert len(list((tmp_path / "run").iterdir())) == 3


def test_only_no_face_rows_gives_a_report(tmp_path):
    labels = pl.DataFrame({
        "subject": ["doctor", "nurse"] * 5, "lang": ["en"] * 10, "formulation": ["direct"] * 10,
        "status": ["no_face"] * 10, "label": [None] * 10,
    })
    r = report.build_report(labels, n_boot=50, n_perm=99)
    s = r.summary()
    assert s["n_labelled"] == 0 and s["no_labelled_images"] is True
    assert s["face_filter"]["no_face"] == 10
    assert s["noise_floor"]["abs_dev"] is None
    page = r.to_html()
    assert "No labelled images" in page
    assert "<img" not in page
    assert "No labelled images" in r.to_markdown()
    report.write_report(r, tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["groups"][0]["mean_p_female"] is None


def test_empty_labels_and_bad_input():
    empty = pl.DataFrame(schema={"subject": pl.String, "lang": pl.String,
                                 "formulation": pl.String, "status": pl.String,
                                 "label": pl.String})
    r = report.build_report(empty, n_boot=10, n_perm=9)
    assert "No labelled images" in r.to_html() and r.summary()["groups"] == []
    with pytest.raises(InputError, match="several classifiers"):
        report.build_report(simulate().with_columns(
            pl.Series("classifier", ["a", "b"] * (simulate().height // 2))))
    with pytest.raises(InputError, match="formulation"):
        report.build_report(pl.DataFrame({"subject": ["x"], "lang": ["en"], "label": ["male"]}))


def test_two_models_one_without_faces():
    a = simulate()
    b = simulate(seed=1).with_columns(pl.lit("blind-model").alias("model"),
                                      pl.lit("no_face").alias("status"))
    r = report.build_report(pl.concat([a, b]), n_boot=50, n_perm=99)
    assert r.models == ["blind-model", "sim-model"]
    figs = r.figures()
    assert [f["section"] for f in figs] == ["per-language", "formulations", "heatmap", "skewed"]
    groups = r.summary()["groups"]
    blind = [g for g in groups if g["model"] == "blind-model"]
    assert len(blind) == len(LANGS) * len(FORMS)
    assert all(g["n_subjects"] == 0 and g["mean_p_female"] is None for g in blind)
    page = r.to_html()
    assert page.count("<img ") == len(figs) and "blind-model" in page


def test_a_one_occupation_group_says_why_its_interval_is_narrow():
    # one occupation: no spread between occupations to estimate, so the interval holds image
    # noise only; the headline tables must say so instead of printing it as the usual interval
    labels = simulate(seed=3, subjects=["doctor"])
    r = report.build_report(labels, n_boot=50, n_perm=99)
    notes = r.aggregates["interval_note"].to_list()
    assert notes and all(n == stats._NOTE_ONE_SUBJECT for n in notes)
    assert stats._NOTE_ONE_SUBJECT in "".join(_parse(r.to_html()).text)
    assert stats._NOTE_ONE_SUBJECT in r.to_markdown()
    # with several occupations the column stays empty
    assert "one subject: image noise only" not in rep_page_text(simulate(seed=4))


def rep_page_text(labels) -> str:
    return "".join(_parse(report.build_report(labels, n_boot=50, n_perm=99).to_html()).text)


# ----------------------------------------------------------------------------- templates


class _Sections(HTMLParser):
    """Per <section id>: its paragraphs' text and each table's header row."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.sections: dict[str, dict] = {}
        self._section = None
        self._in = None  # "p" or "th" while inside one

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self._section = self.sections.setdefault(dict(attrs)["id"], {"p": [], "tables": []})
        elif self._section is not None and tag == "table":
            self._section["tables"].append([])
        elif self._section is not None and tag in ("p", "th"):
            self._in = tag
            if tag == "p":
                self._section["p"].append("")
            else:
                self._section["tables"][-1].append("")

    def handle_endtag(self, tag):
        if tag == "section":
            self._section = None
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._in == "p":
            self._section["p"][-1] += data
        elif self._in == "th":
            self._section["tables"][-1][-1] += data


def test_hostile_names_reach_the_page_only_as_text(tmp_path):
    script, img = "<script>alert(1)</script>", "<img src=x onerror=alert(1)>"
    subjects = [f"welder {img}", *[f"occ{s:02d}" for s in range(1, N_SUBJECTS)]]
    labels = simulate(subjects=subjects, texts={("de", "direct"): f"Ein Bild {script}"})
    labels = labels.with_columns(pl.lit(f"model {script}").alias("model"))
    run_info = {"classifier": f"clf {img}", "note": f"note {script}"}
    page = report.build_report(labels, run_info=run_info, n_boot=20, n_perm=19).to_html()
    parsed = _parse(page)
    assert not [t for t, _ in parsed.tags if t == "script"]
    imgs = [a for t, a in parsed.tags if t == "img"]
    assert imgs and all(set(a) == {"alt", "src"} and a["src"].startswith("data:image/png;base64,")
                        for a in imgs), imgs  # only our plots: no src=x, no onerror
    assert all(f"model {script}" in a["alt"] for a in imgs)  # attribute values escaped too
    text = "".join(parsed.text)
    for shown in (f"welder {img}", f"Ein Bild {script}", f"model {script}", f"clf {img}",
                  f"note {script}"):
        assert shown in text, shown
    assert "<script" not in page and "<img src=x" not in page


def test_templates_come_from_the_package_whatever_the_cwd(tmp_path, monkeypatch, rep):
    import tomllib
    from fnmatch import fnmatch
    from pathlib import Path

    from magbig.reporting import html as report_html

    monkeypatch.chdir(tmp_path)
    report_html.environment.cache_clear()  # build the loader afresh from the temp folder
    page = rep.to_html()
    assert "<h2>Headline</h2>" in page and "td.n{text-align:right" in page  # template + CSS
    env = report_html.environment()
    assert env.autoescape is True
    package_templates = Path(report_html.__file__).parent / "templates"
    assert Path(env.get_template("report.html.j2").filename).parent == package_templates
    # every template ships in the wheel: pyproject's package-data globs cover each file
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["magbig"]
    for path in package_templates.rglob("*"):
        if path.is_file():
            rel = path.relative_to(package_templates.parents[1]).as_posix()  # reporting/templates/…
            assert any(fnmatch(rel, g) for g in globs), rel


def test_no_template_switches_autoescaping_off():
    from pathlib import Path

    from magbig.reporting import html as report_html

    templates = Path(report_html.__file__).parent / "templates"
    for path in templates.glob("*.j2"):
        source = re.sub(r"\{#.*?#\}", "", path.read_text(encoding="utf-8"), flags=re.S)  # code only
        assert not re.search(r"\|\s*safe\b|filter\s+safe", source), path.name
        assert not re.search(r"\{%-?\s*autoescape", source), path.name
    # nor does any module mark text as safe or escape by hand (markdown.py escapes Markdown)
    for module in Path(report_html.__file__).parent.glob("*.py"):
        source = module.read_text(encoding="utf-8")
        assert not re.search(r"\bMarkup\(|__html__", source), module.name
        assert module.name == "markdown.py" or "html.escape(" not in source, module.name


def test_one_paired_difference_panel_for_languages_and_formulations(page):
    from pathlib import Path

    from magbig.reporting import html as report_html
    from magbig.reporting.format import paired_test_headers

    sections = _Sections()
    sections.feed(page)
    by_direct, by_english = sections.sections["formulations"], sections.sections["vs-english"]
    assert by_direct["tables"] == [paired_test_headers("formulation", "lang")]
    assert by_english["tables"] == [paired_test_headers("lang", "formulation")]
    intro = re.compile(r"Each (\w+) against (\w+), paired by occupation, metric abs_dev \((.+)\)\. "
                       r"Holm correction over this table\.")
    direct_intro = [m.groups() for p in by_direct["p"] if (m := intro.fullmatch(p))]
    english_intro = [m.groups() for p in by_english["p"] if (m := intro.fullmatch(p))]
    assert direct_intro == [("formulation", "direct", "negative: closer to parity than direct")]
    assert english_intro == [("language", "English", "positive: further from parity than English")]
    # one definition: the sentence exists once in the templates, the macro is called twice
    templates = Path(report_html.__file__).parent / "templates"
    sources = {p.name: p.read_text(encoding="utf-8") for p in templates.glob("*.j2")}
    assert sum(s.count("paired by occupation, metric abs_dev") for s in sources.values()) == 1
    assert sources["report.html.j2"].count("{{ paired_differences(") == 2


def test_paired_panel_without_rows_says_its_note_or_nothing():
    from magbig.reporting.html import PairedPanel, Table, environment

    macros = environment().get_template("macros.html.j2").module
    empty = Table(["model"], [])
    noted = str(macros.paired_differences(PairedPanel("language", "English", False, "r", empty,
                                                      empty_note="No <English> here.")))
    assert noted.strip() == '<p class="note">No &lt;English&gt; here.</p>'
    assert str(macros.paired_differences(PairedPanel("formulation", "direct", True, "r",
                                                     empty))).strip() == ""
