"""The audit explorer (Streamlit): look at, filter and compare MAGBIG-style audit runs.

    magbig explore RUN [RUN ...]                    # binds 127.0.0.1
    streamlit run apps/explorer.py -- RUN [RUN ...]

RUN is an audit run directory (`magbig audit --out`, or a labelled `neobabel generate` run) or
a scheduled job's folder (`<output>/<job>/`, its dated outputs). Data and statistics come from
apps/data.py, which calls magbig.stats / magbig.reporting (the code of `magbig stats` and the
report). Everything read from runs is shown as text (st.text, st.dataframe, st.json): no run
string reaches Markdown or HTML.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from apps import data
except ImportError:  # `streamlit run apps/explorer.py` from a checkout: the repo root is apps' parent
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from apps import data

import altair as alt
import polars as pl
import streamlit as st


VIEWS = ["Overview", "Perceived-female share", "Neutral prompts", "Heatmap", "Images",
         "Classifier agreement", "Alignment", "Trends", "Downloads", "Methods"]
GRID_COLUMNS = 4


def _run_args() -> list[str]:
    """Runs from the command line (`streamlit run explorer.py -- RUN ...`), else from
    NEOBABEL_EXPLORER_RUNS (tests, launchers without script arguments)."""
    if "run_args" in st.session_state:
        return list(st.session_state["run_args"])
    env = data.env_run_args()
    if env:
        return env
    # `streamlit run` sets sys.argv to [this script, *arguments]; anything else (AppTest under
    # pytest) is some other program's command line.
    if sys.argv and Path(sys.argv[0]).resolve() == Path(__file__).resolve():
        return [a for a in sys.argv[1:] if a != "--"]
    return []


def _fmt(x, d: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and x != x) else f"{x:.{d}f}"


def _problem(title: str, detail: str) -> None:
    """A message with run-supplied text: the title is ours (Markdown), the detail plain text."""
    st.error(title)
    st.text(detail)


# --------------------------------------------------------------------------------------------
# views


def view_overview(runs: list[data.RunSummary], jobs: list[data.JobDir]) -> None:
    st.header("Overview")
    rows = []
    for r in runs:
        row = {"run": r.name, "path": str(r.path),
               "status": ("unusable" if not r.ok else "still being written" if r.writing else "complete"),
               "model": _model_name(r.run_info), "classifiers": ", ".join(r.classifiers)}
        if r.ok:
            try:
                df = data.load_audit(str(r.path), data.audit_identity(r.path), r.classifiers[0])
            except Exception as e:  # a truncated units/manifest table: this run only, the rest shows
                r.ok, r.problem = False, f"{r.path}: tables unreadable ({data.first_line(e)})"
                row["status"] = "unusable"
                rows.append(row)
                continue
            counts = dict(df.group_by("status").len().iter_rows())
            n = df.height
            found = counts.get("ok", 0) + counts.get("uncertain", 0)
            row.update({"languages": ", ".join(sorted(df["lang"].unique().to_list())),
                        "formulations": ", ".join(sorted(df["formulation"].unique().to_list())),
                        "n_subjects": df["subject"].n_unique(), "n_images": n,
                        "n_labelled": int(df["label"].is_not_null().sum()),
                        "face_found_rate": found / n if n else None})
        rows.append(row)
    st.dataframe(pl.DataFrame(rows, infer_schema_length=None), hide_index=True, key="overview_table")
    for r in runs:  # after the table: loading may have found a run unusable
        if not r.ok:
            _problem("A folder could not be shown", r.problem or "")
        elif r.writing:
            st.warning("A run is still being written; its numbers may change on the next reload:")
            st.text(str(r.path))
    if jobs:
        st.subheader("Scheduled jobs")
        st.dataframe(pl.DataFrame([{"job": j.name, "path": str(j.path), "dates": len(j.dates),
                                    "first": j.dates[0], "latest": j.dates[-1]} for j in jobs]),
                     hide_index=True, key="jobs_table")


def _model_name(info: dict) -> str:
    audit = info.get("audit") or {}
    m = audit.get("model") or info.get("model")
    if isinstance(m, dict):
        m = m.get("model") or m.get("name")
    return "" if m is None else str(m)


def view_shares(ctx) -> None:
    st.header("Perceived-female share p̂ per language and formulation")
    with st.spinner("Computing the statistics (magbig stats: cluster bootstrap)…"):
        groups = data.stats_groups(*ctx.key, ctx.filters, ctx.n_boot, ctx.seed)
    if not groups:
        st.info("No labelled images match the filters.")
        return
    g = pl.DataFrame(groups, infer_schema_length=None)
    band = g.select("lang", "formulation",
                    (0.5 - pl.col("mean_noise_floor")).alias("floor_low"),
                    (0.5 + pl.col("mean_noise_floor")).alias("floor_high"))
    base = alt.Chart(g.to_pandas()).encode(
        x=alt.X("lang:N", title="language"), xOffset="formulation:N",
        color=alt.Color("formulation:N"))
    points = base.mark_point(filled=True, size=60).encode(
        y=alt.Y("mean_p_female:Q", title="mean p̂_female (95% interval)", scale=alt.Scale(domain=[0, 1])),
        tooltip=["lang", "formulation", "mean_p_female", "mean_p_female_low", "mean_p_female_high", "n_subjects"])
    bars = base.mark_rule(strokeWidth=2).encode(y="mean_p_female_low:Q", y2="mean_p_female_high:Q")
    floor = alt.Chart(band.to_pandas()).mark_bar(opacity=0.2, color="gray").encode(
        x="lang:N", xOffset="formulation:N", y="floor_low:Q", y2="floor_high:Q")
    parity = alt.Chart(pl.DataFrame({"y": [0.5]}).to_pandas()).mark_rule(strokeDash=[4, 4]).encode(y="y:Q")
    st.altair_chart((floor + parity + bars + points).properties(height=360), width="stretch")
    st.caption("Gray band: 0.5 ± the binomial noise floor E|p̂−0.5| at each group's n (a fair model "
               "lands inside it). Dashed: parity.")
    show = g.select("lang", "formulation", "n_subjects", "n_labelled", "mean_p_female", "mean_p_female_low",
                    "mean_p_female_high", "mean_abs_dev", "mean_abs_dev_low", "mean_abs_dev_high",
                    "mean_abs_dev_raw", "mean_noise_floor", "exp_max_l1")
    st.dataframe(show, hide_index=True, key="shares_table")
    with st.expander("Per prompt (Wilson 95% intervals)"):
        from magbig.stats import per_prompt  # heavy: scipy (loaded by the table above already)

        df = data.filtered(ctx.frame, ctx.filters)
        st.dataframe(per_prompt(df.select("subject", "lang", "formulation", "status", "label")),
                     hide_index=True, key="per_prompt_table")


def _report(ctx):
    with st.spinner("Computing the report's statistics…"):
        return data.report_for(*ctx.key, ctx.filters, ctx.n_boot, ctx.seed, ctx.n_perm)


def view_neutral(ctx) -> None:
    st.header("With and without neutral-prompt engineering")
    st.markdown("Paired by occupation within each language: each formulation against the direct "
                "(generic masculine) one, on abs_dev = |p̂ − 0.5| at matched n. Negative "
                "`mean_diff` = closer to parity than direct.")
    rep = _report(ctx)
    if rep is None:
        st.info("No labelled images match the filters.")
        return
    tests = rep.tests_vs_direct
    if tests.height == 0:
        st.info("No pairs: the selection needs the direct formulation and at least one other.")
    else:
        chart = alt.Chart(tests.to_pandas()).encode(x=alt.X("lang:N"), xOffset="formulation:N",
                                                     color="formulation:N")
        st.altair_chart(
            (chart.mark_rule(strokeWidth=2).encode(y=alt.Y("diff_low:Q", title="abs_dev difference vs direct"),
                                                   y2="diff_high:Q")
             + chart.mark_point(filled=True, size=60).encode(y="mean_diff:Q")
             + alt.Chart(pl.DataFrame({"y": [0.0]}).to_pandas()).mark_rule(strokeDash=[4, 4]).encode(y="y:Q")
             ).properties(height=320), width="stretch")
        st.dataframe(tests.select([c for c in ("model", "lang", "formulation", "n_pairs", "mean_reference",
                                               "mean_level", "mean_diff", "diff_low", "diff_high", "p_value",
                                               "p_holm") if c in tests.columns]),
                     hide_index=True, key="neutral_tests")
    st.subheader("Alignment cost")
    if rep.alignment_tests is None or rep.alignment_tests.height == 0:
        st.info("No alignment scores in this run: run `magbig align RUN` to add the CLIP alignment "
                "of each formulation (its cost beside the bias change).")
    else:
        st.dataframe(rep.alignment_tests, hide_index=True, key="alignment_cost")


def view_heatmap(ctx) -> None:
    st.header("Occupation × language")
    rep = _report(ctx)
    if rep is None:
        st.info("No labelled images match the filters.")
        return
    pp = rep.per_prompt.filter(pl.col("p_female").is_not_null())
    forms = pp["formulation"].unique(maintain_order=True).to_list()
    if not forms:
        st.info("No labelled faces in the selection.")
        return
    form = st.selectbox("formulation", forms, key="heat_form")
    order = st.radio("sort by", ["skew (mean abs_dev, largest first)", "p̂ (most female first)", "name"],
                     horizontal=True, key="heat_sort")
    part = pp.filter(pl.col("formulation") == form)
    per_subject = part.group_by("subject").agg(pl.col("abs_dev").mean().alias("mean_abs_dev"),
                                               pl.col("p_female").mean().alias("mean_p_female"))
    if order.startswith("skew"):
        per_subject = per_subject.sort(["mean_abs_dev", "subject"], descending=[True, False])
    elif order.startswith("p̂"):
        per_subject = per_subject.sort(["mean_p_female", "subject"], descending=[True, False])
    else:
        per_subject = per_subject.sort("subject")
    subjects = per_subject["subject"].to_list()
    chart = alt.Chart(part.select("subject", "lang", "p_female", "n_labelled").to_pandas()).mark_rect().encode(
        x=alt.X("lang:N", title="language"), y=alt.Y("subject:N", sort=subjects, title=None),
        color=alt.Color("p_female:Q", scale=alt.Scale(scheme="redblue", domain=[0, 1], reverse=True)),
        tooltip=["subject", "lang", "p_female", "n_labelled"])
    st.altair_chart(chart.properties(height=max(160, 18 * len(subjects))), width="stretch")
    wide = part.pivot(on="lang", index="subject", values="p_female", aggregate_function=None)
    wide = per_subject.join(wide, on="subject", how="left", maintain_order="left")
    st.dataframe(wide, hide_index=True, key="heat_table")


def view_images(ctx) -> None:
    st.header("Images of one cell")
    df = data.filtered(ctx.frame, ctx.filters)
    if df.height == 0:
        st.info("No images match the filters.")
        return
    c1, c2, c3 = st.columns(3)
    subject = c1.selectbox("occupation / trait", sorted(df["subject"].unique().to_list()), key="img_subject")
    langs = sorted(df.filter(pl.col("subject") == subject)["lang"].unique().to_list())
    lang = c2.selectbox("language", langs, key="img_lang")
    forms = sorted(df.filter((pl.col("subject") == subject) & (pl.col("lang") == lang))["formulation"]
                   .unique().to_list())
    form = c3.selectbox("formulation", forms, key="img_form")
    rows = data.image_rows(ctx.run.path, df, subject, lang, form)
    texts = rows["text"].unique(maintain_order=True).to_list()
    st.text("prompt: " + " | ".join("" if t is None else str(t) for t in texts))
    run = ctx.run.path
    for start in range(0, rows.height, GRID_COLUMNS):
        cols = st.columns(GRID_COLUMNS)
        for col, r in zip(cols, rows.slice(start, GRID_COLUMNS).iter_rows(named=True)):
            with col:
                try:
                    col.image(data.read_image_bytes(run, r["path"]), width=128)
                except data.UnsafePath as e:
                    col.warning("image refused")
                    col.text(str(e))
                except OSError as e:
                    col.warning("image missing")
                    col.text(f"{r['path']}: {e.strerror or type(e).__name__}")
                col.text(f"{r['label'] or '–'}  p_female={_fmt(r['p_female'])}\n"
                         f"{r['status']} ({r['faces']} faces)  seed={r['seed']}")
                if col.button("open", key=f"open_{r['key']}"):
                    st.session_state["open_image"] = r["key"]
    key = st.session_state.get("open_image")
    match = rows.filter(pl.col("key") == key) if key else rows.head(0)
    if match.height:
        r = match.row(0, named=True)
        st.subheader("Full image")
        try:
            blob = data.read_image_bytes(run, r["path"])
        except (data.UnsafePath, OSError) as e:
            st.warning("image not shown")
            st.text(str(e))
            return
        left, right = st.columns([1, 2])
        left.image(blob, width=320)
        try:
            meta = data.png_info(blob)
        except Exception as e:  # a damaged PNG: the picture may still show, its metadata not
            meta = {"error": f"PNG metadata unreadable: {type(e).__name__}"}
        right.text("PNG metadata (text chunks)")
        right.json({"row": {k: r[k] for k in ("key", "prompt_id", "subject", "lang", "formulation", "seed", "text",
                                          "label", "p_female", "status", "faces", "path")},
                 "png": meta}, expanded=True)


def view_agreement(ctx) -> None:
    st.header("Classifier agreement")
    names = ctx.run.classifiers
    if len(names) < 2:
        st.info("This run was labelled by one classifier only; label it with another "
                "(`magbig classify RUN --classifier NAME`) to compare them.")
        return
    rows = data.agreement(*ctx.key[:2], tuple(names))
    st.dataframe(pl.DataFrame(rows, infer_schema_length=None), hide_index=True, key="kappa_table")
    a = st.selectbox("classifier A", names, index=0, key="agree_a")
    b = st.selectbox("classifier B", [n for n in names if n != a], index=0, key="agree_b")
    st.text(f"confusion: rows {a}, columns {b} (label, else face status)")
    st.dataframe(data.kappa_table(*ctx.key[:2], a, b), hide_index=True, key="confusion_table")


def view_alignment(ctx) -> None:
    st.header("Alignment scores")
    shown = False
    scores = data.alignment_scores(str(ctx.run.path), data.file_identity(ctx.run.path / "scores.parquet"))
    if scores:
        st.subheader("m-GenEval / m-DPG / CLC scores (scores.parquet)")
        st.dataframe(pl.DataFrame(scores["table"], infer_schema_length=None), hide_index=True, key="scores_table")
        shown = True
    if (ctx.run.path / "alignment.parquet").is_file():
        rep = _report(ctx)
        if rep is not None and rep.alignment is not None:
            st.subheader("CLIP text-image alignment (magbig align)")
            st.dataframe(rep.alignment, hide_index=True, key="clip_alignment")
            shown = True
    if not shown:
        st.info("This run has no alignment scores (scores.parquet from `neobabel eval`, or "
                "alignment.parquet from `magbig align`).")


def view_trends(jobs: list[data.JobDir]) -> None:
    st.header("Trends across scheduled job dates")
    if not jobs:
        st.info("No job folder was given: pass a scheduled job's output folder "
                "(`<output>/<job>/`, written by `magbig batch run`).")
        return
    job = jobs[[j.name for j in jobs].index(st.selectbox("job", [j.name for j in jobs], key="trend_job"))]
    frame, alerts = data.trend(job)
    if frame.height == 0:
        st.info("The job has no dated summaries yet.")
        return
    c1, c2, c3 = st.columns(3)
    model = c1.selectbox("model", frame["model"].unique(maintain_order=True).to_list(), key="trend_model")
    lang = c2.selectbox("language", frame["lang"].unique(maintain_order=True).to_list(), key="trend_lang")
    form = c3.selectbox("formulation", frame["formulation"].unique(maintain_order=True).to_list(), key="trend_form")
    part = frame.filter((pl.col("model") == model) & (pl.col("lang") == lang) & (pl.col("formulation") == form))
    fired = {a["date"] for a in alerts if a.get("model") in (None, model)
             and a.get("lang") in (None, lang) and a.get("formulation") in (None, form)}
    part = part.with_columns(pl.col("date").is_in(sorted(fired)).alias("alert"))
    base = alt.Chart(part.to_pandas()).encode(x=alt.X("date:O"))
    chart = (base.mark_area(opacity=0.25).encode(y=alt.Y("mean_abs_dev_low:Q", title="mean abs_dev (95% interval)"),
                                                 y2="mean_abs_dev_high:Q")
             + base.mark_line(point=True).encode(y="mean_abs_dev:Q")
             + base.transform_filter("datum.alert").mark_point(shape="triangle-up", size=160, color="red",
                                                              filled=True).encode(y="mean_abs_dev:Q"))
    st.altair_chart(chart.properties(height=300), width="stretch")
    st.dataframe(part, hide_index=True, key="trend_table")
    st.subheader("Alerts")
    if alerts:
        st.dataframe(pl.DataFrame(alerts, infer_schema_length=None), hide_index=True, key="alerts_table")
    else:
        st.text("no alert fired on any date")


def view_downloads(ctx) -> None:
    st.header("Downloads")
    df = data.filtered(ctx.frame, ctx.filters)
    st.text(f"{df.height} labelled images in the filtered selection ({ctx.classifier})")
    table = df
    st.download_button("filtered labels (CSV)", data.to_csv_bytes(table), file_name="labels-filtered.csv",
                       mime="text/csv", key="dl_csv")
    st.download_button("filtered labels (parquet)", data.to_parquet_bytes(table),
                       file_name="labels-filtered.parquet", mime="application/octet-stream", key="dl_parquet")
    groups = data.stats_groups(*ctx.key, ctx.filters, ctx.n_boot, ctx.seed)
    if groups:
        st.download_button("statistics per language × formulation (CSV)",
                           data.to_csv_bytes(pl.DataFrame(groups, infer_schema_length=None)
                                             .select(pl.exclude(pl.List(pl.String)))),
                           file_name="stats-filtered.csv", mime="text/csv", key="dl_stats")
    try:
        html = data.safe_path(ctx.run.path, "report.html").read_bytes()
    except (data.UnsafePath, OSError):
        st.text("this run has no report.html (build it with `magbig report RUN`)")
    else:
        st.download_button("HTML report of the run (report.html)", html, file_name="report.html",
                           mime="text/html", key="dl_report")
    st.text("The CSV gives the same numbers under `magbig stats labels-filtered.csv --n-boot "
            f"{ctx.n_boot} --seed {ctx.seed}`.")


def view_methods() -> None:
    from magbig.reporting.format import INTERVALS_NOTE, SCALES_NOTE  # heavy: the report package

    st.header("Methods: what each number means and how sure it is")
    st.markdown(f"""
- **Scales.** {SCALES_NOTE}
- **Intervals.** {INTERVALS_NOTE}
- **Noise floor.** Sampling noise alone makes |p̂ − 0.5| positive: a fair model measured on n
  images has E|p̂ − 0.5| ≈ 0.4/√n (0.040 at n = 100). The gray band in the share plot is
  0.5 ± that floor; a raw deviation inside it is indistinguishable from parity.
- **Face filter.** Only images with exactly one detected face and a confident label count
  (`ok`); no face, several faces, uncertain and errors are counted, not labelled.
- **Same code as the CLI.** The share table is `magbig stats` (magbig.stats.summarize_labels_table)
  on the filtered labels; paired tests, heatmap and alignment are the report's
  (magbig.reporting.build_report). Bootstrap replicates and seed are set in the sidebar.
- **Perceived gender.** Labels are a classifier's perception of presentation, not anyone's
  gender; classifier agreement (Cohen's κ) shows how much the labels depend on the classifier.
""")


# --------------------------------------------------------------------------------------------
# page


class Context:
    """The selected run, classifier, filters and settings of this rerun."""

    def __init__(self, run, classifier, frame, filters, n_boot, seed, n_perm):
        self.run, self.classifier, self.frame, self.filters = run, classifier, frame, filters
        self.n_boot, self.seed, self.n_perm = n_boot, seed, n_perm
        self.key = (str(run.path), data.audit_identity(run.path), classifier)


def main() -> None:
    st.set_page_config(page_title="neobabel audit explorer", layout="wide")
    st.title("Audit explorer")
    args = _run_args()
    if not args:
        st.info("No run given: start with `magbig explore RUN [RUN ...]` or "
                "`streamlit run apps/explorer.py -- RUN`.")
        return
    runs, jobs = data.discover(args)
    view = st.sidebar.radio("view", VIEWS, key="view")
    if view == "Overview":
        view_overview(runs, jobs)
        return
    if view == "Methods":
        view_methods()
        return
    if view == "Trends":
        view_trends(jobs)
        return
    usable = [r for r in runs if r.ok]
    if not usable:
        st.warning("None of the given folders is a labelled audit run; see Overview for why.")
        return
    names = [r.name for r in usable]
    run = usable[names.index(st.sidebar.selectbox("run", names, key="run"))]
    classifier = st.sidebar.selectbox("classifier", run.classifiers, key="classifier")
    try:
        frame = data.load_audit(str(run.path), data.audit_identity(run.path), classifier)
    except Exception as e:  # a truncated parquet, a run mid-write: say so, keep the page
        _problem("This run's tables could not be read (truncated, or still being written).",
                 f"{run.path}: {data.first_line(e)}")
        return
    sb = st.sidebar
    subjects = sb.multiselect("occupations / traits", sorted(frame["subject"].unique().to_list()), key="f_subjects")
    langs = sb.multiselect("languages", sorted(frame["lang"].unique().to_list()), key="f_langs")
    forms = sb.multiselect("formulations", sorted(frame["formulation"].unique().to_list()), key="f_forms")
    n_boot = int(sb.number_input("bootstrap replicates", 100, 100_000, 2000, step=100, key="n_boot"))
    seed = int(sb.number_input("seed", 0, 2**31 - 1, 0, key="seed"))
    n_perm = int(sb.number_input("permutations (paired tests)", 99, 99_999, 9999, step=100, key="n_perm"))
    ctx = Context(run, classifier, frame, data.Filters(tuple(subjects), tuple(langs), tuple(forms)),
                  n_boot, seed, n_perm)
    if run.writing:
        st.warning("This run is still being written; its numbers may change on the next reload.")
    views = {"Perceived-female share": view_shares, "Neutral prompts": view_neutral, "Heatmap": view_heatmap,
             "Images": view_images, "Classifier agreement": view_agreement, "Alignment": view_alignment,
             "Downloads": view_downloads}
    try:
        views[view](ctx)
    except Exception as e:  # bad data in one run breaks this view only; the sidebar and other views stay
        _problem("This view could not be computed for this run.", f"{run.path}: {type(e).__name__}: "
                 f"{data.first_line(e)}")


if __name__ == "__main__":  # how `streamlit run` and AppTest execute this file
    main()
