"""The audit explorer (apps/explorer.py) under Streamlit's AppTest, on run directories built by
the real audit code (tests/explorer_runs.py): every view renders, and the numbers it shows are
those of `magbig stats` and of the run's report (the same statistics code).
"""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

import explorer_runs as R
from apps import data
from magbig import audit as A
from magbig import cli as magbig_cli
from magbig import stats

EXPLORER = Path(__file__).resolve().parents[1] / "apps" / "explorer.py"
pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("explorer")
    out = {"world": R.world_run(root / "world"),
           "hostile": R.hostile_run(root / "hostile", root / "elsewhere" / "outside.png"),
           "notarun": root / "notarun"}
    out["notarun"].mkdir()
    (out["notarun"] / "hello.txt").write_text("not a run")
    with pytest.MonkeyPatch.context() as mp:
        out["job"] = R.job_dir(root / "jobs", mp)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_random_dir):
    return R.tiny_run(tmp_path_factory.mktemp("tiny") / "run", tiny_random_dir)


@pytest.fixture
def main(monkeypatch, capsys):
    from conftest import run_in_process

    old = signal.getsignal(signal.SIGTERM)
    yield run_in_process(monkeypatch, capsys, "magbig", magbig_cli.main)
    signal.signal(signal.SIGTERM, old)


def app(monkeypatch, *paths, view: str | None = None, **sidebar) -> AppTest:
    monkeypatch.setenv("NEOBABEL_EXPLORER_RUNS", os.pathsep.join(map(str, paths)))
    at = AppTest.from_file(str(EXPLORER), default_timeout=120)
    at.run()
    if view:
        at.sidebar.radio(key="view").set_value(view).run()
    for key, value in sidebar.items():
        widget = at.sidebar.multiselect(key=key) if key.startswith("f_") else \
            at.sidebar.number_input(key=key) if key in ("n_boot", "seed", "n_perm") else at.sidebar.selectbox(key=key)
        widget.set_value(value).run()
    assert not at.exception, at.exception
    return at


def frame_with(at: AppTest, *cols: str):
    """The (pandas) table on the page that has these columns."""
    for d in at.dataframe:
        v = d.value
        if set(cols) <= set(v.columns):
            return v
    raise AssertionError(f"no table with columns {cols}; tables: {[list(d.value.columns) for d in at.dataframe]}")


def texts(at: AppTest) -> list[str]:
    return [t.value for t in at.text]


def close(a, b, tol=1e-12) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return b is not None and abs(float(a) - float(b)) <= tol


# -- overview and bad folders ----------------------------------------------------------------------

def test_overview_lists_runs_jobs_and_refuses_a_non_run(monkeypatch, runs, tmp_path):
    import shutil

    truncated = tmp_path / "truncated"
    R.world_run(truncated)
    raw = (truncated / "labels.parquet").read_bytes()
    (truncated / "labels.parquet").write_bytes(raw[: len(raw) // 2])
    cut_units = tmp_path / "cut-units"
    shutil.copytree(runs["world"], cut_units)
    raw = (cut_units / "units.parquet").read_bytes()
    (cut_units / "units.parquet").write_bytes(raw[: len(raw) // 3])
    at = app(monkeypatch, runs["world"], runs["notarun"], truncated, cut_units, runs["job"])
    table = frame_with(at, "run", "status", "n_images", "face_found_rate")
    world = table[table["run"] == "world"].iloc[0]
    frame = A.audit_frame(runs["world"])
    assert world["status"] == "complete" and world["n_images"] == frame.height == 96
    assert world["classifiers"] == "world, world2"
    found = frame.filter(pl.col("status").is_in(["ok", "uncertain"])).height
    assert world["face_found_rate"] == pytest.approx(found / frame.height)
    assert set(table[table["run"] != "world"]["status"]) >= {"unusable"}
    shown = "\n".join(texts(at))
    assert "is not a run directory" in shown and str(runs["notarun"]) in shown
    assert "labels unreadable" in shown and f"{cut_units}: tables unreadable" in shown
    assert len(at.error) == 3  # one per unusable folder; the rest of the page still renders
    jobs = frame_with(at, "job", "dates")
    assert jobs["dates"].tolist() == [3]
    # the other views still work on the good run
    at.sidebar.radio(key="view").set_value("Perceived-female share").run()
    assert not at.exception and not at.error and "cut-units" not in at.sidebar.selectbox(key="run").options


def test_a_run_still_being_written_is_marked(monkeypatch, runs, tmp_path):
    import shutil

    busy = tmp_path / "busy"
    shutil.copytree(runs["world"], busy)
    info = json.loads((busy / "run.json").read_text())
    info["audit_status"] = "running"
    (busy / "run.json").write_text(json.dumps(info))
    at = app(monkeypatch, busy)
    assert frame_with(at, "run", "status")["status"].tolist() == ["still being written"]
    assert any("still being written" in w.value for w in at.warning)


def test_no_argument_says_how_to_start(monkeypatch):
    monkeypatch.delenv("NEOBABEL_EXPLORER_RUNS", raising=False)
    at = AppTest.from_file(str(EXPLORER), default_timeout=60)
    at.run()
    assert "magbig explore" in at.info[0].value


# -- the share view equals `magbig stats` --------------------------------------------------------

STAT_COLS = ["n_subjects", "n_labelled", "mean_p_female", "mean_p_female_low", "mean_p_female_high",
             "mean_abs_dev", "mean_abs_dev_low", "mean_abs_dev_high", "mean_abs_dev_raw", "mean_noise_floor",
             "exp_max_l1"]


def _assert_same_groups(shown, printed: list[dict]) -> None:
    assert len(shown) == len(printed)
    by_key = {(g["lang"], g["formulation"]): g for g in printed}
    for _, row in shown.iterrows():
        g = by_key[(row["lang"], row["formulation"])]
        for c in STAT_COLS:
            assert close(row[c], g[c]), (row["lang"], row["formulation"], c, row[c], g[c])


def test_share_view_equals_magbig_stats(monkeypatch, runs, main):
    at = app(monkeypatch, runs["world"], view="Perceived-female share", n_boot=500)
    code, out, err = main("stats", runs["world"] / "labels.parquet", "--classifier", "world", "--n-boot", "500")
    assert code == 0, err
    _assert_same_groups(frame_with(at, "mean_p_female", "mean_noise_floor"), json.loads(out))
    assert len(at.get("vega_lite_chart")) == 1


def test_a_filter_changes_the_numbers_to_those_of_the_filtered_table(monkeypatch, runs, main, tmp_path):
    at = app(monkeypatch, runs["world"], view="Perceived-female share", n_boot=500,
             f_langs=["de"], f_subjects=["nurse", "firefighter"])
    shown = frame_with(at, "mean_p_female", "mean_noise_floor")
    assert set(shown["lang"]) == {"de"}
    labels = pl.read_parquet(runs["world"] / "labels.parquet").filter(
        (pl.col("classifier") == "world") & (pl.col("lang") == "de") & pl.col("subject").is_in(["nurse", "firefighter"]))
    labels.write_csv(tmp_path / "filtered.csv")
    code, out, err = main("stats", tmp_path / "filtered.csv", "--classifier", "world", "--n-boot", "500")
    assert code == 0, err
    _assert_same_groups(shown, json.loads(out))
    assert (shown["n_subjects"] == 2).all()


def test_the_second_classifier_is_selectable(monkeypatch, runs, main):
    at = app(monkeypatch, runs["world"], view="Perceived-female share", n_boot=500, classifier="world2")
    code, out, err = main("stats", runs["world"] / "labels.parquet", "--classifier", "world2", "--n-boot", "500")
    assert code == 0, err
    _assert_same_groups(frame_with(at, "mean_p_female", "mean_noise_floor"), json.loads(out))


# -- the report's numbers ------------------------------------------------------------------------

def test_neutral_prompt_view_equals_the_reports_paired_tests(monkeypatch, runs):
    # the run's report was built with its audit's n_boot (200) and seed 0 and 9999 permutations
    at = app(monkeypatch, runs["world"], view="Neutral prompts", n_boot=200)
    shown = frame_with(at, "mean_diff", "diff_low", "p_holm")
    report = json.loads((runs["world"] / "summary.json").read_text())["paired_tests"]["vs_direct"]
    assert len(shown) == len(report) == 2
    by_key = {(r["lang"], r["formulation"]): r for r in report}
    for _, row in shown.iterrows():
        r = by_key[(row["lang"], row["formulation"])]
        for c in ("n_pairs", "mean_reference", "mean_level", "mean_diff", "diff_low", "diff_high", "p_value", "p_holm"):
            assert close(row[c], r[c]), c
    assert any("magbig align" in i.value for i in at.info)  # no alignment.parquet: says how to add it


def test_heatmap_is_sorted_by_skew_and_shows_per_prompt_shares(monkeypatch, runs):
    at = app(monkeypatch, runs["world"], view="Heatmap")
    table = frame_with(at, "subject", "mean_abs_dev", "en", "de")
    assert table["mean_abs_dev"].tolist() == sorted(table["mean_abs_dev"].tolist(), reverse=True)
    pp = stats.per_prompt(A.audit_frame(runs["world"]))
    form = at.selectbox(key="heat_form").value
    for _, row in table.iterrows():
        for lang in ("en", "de"):
            want = pp.filter((pl.col("subject") == row["subject"]) & (pl.col("lang") == lang)
                             & (pl.col("formulation") == form))["p_female"][0]
            assert close(row[lang], want)
    at.radio(key="heat_sort").set_value("name").run()
    assert frame_with(at, "subject", "mean_abs_dev")["subject"].tolist() == sorted(R.OCCS)


def test_agreement_view_kappa_equals_stats(monkeypatch, runs):
    at = app(monkeypatch, runs["world"], view="Classifier agreement")
    table = frame_with(at, "classifier_a", "classifier_b", "kappa")
    a = A.audit_frame(runs["world"], "world").sort("key")
    b = A.audit_frame(runs["world"], "world2").sort("key")
    assert table.iloc[0]["n_images"] == a.height
    assert close(table.iloc[0]["kappa"], stats.cohen_kappa(a["label"].to_list(), b["label"].to_list()))
    confusion = frame_with(at, "world")
    assert int(confusion.drop(columns=["world"]).to_numpy().sum()) == a.height


def test_agreement_with_one_classifier_says_so(monkeypatch, runs):
    at = app(monkeypatch, runs["hostile"], view="Classifier agreement")
    assert "one classifier" in at.info[0].value


def test_alignment_view_shows_scores_when_present(monkeypatch, runs, tmp_path):
    import shutil

    at = app(monkeypatch, runs["world"], view="Alignment")
    assert "no alignment scores" in at.info[0].value
    scored = tmp_path / "scored"
    shutil.copytree(runs["world"], scored)
    pl.DataFrame({"task": ["counting", "counting", "colors"], "lang": ["en", "de", "en"],
                  "correct": [1.0, 0.0, 1.0]}).write_parquet(scored / "scores.parquet")
    at = app(monkeypatch, scored, view="Alignment")
    table = frame_with(at, "task", "lang", "correct", "n_rows")
    assert sorted(zip(table["task"], table["lang"], table["correct"])) == [
        ("colors", "en", 1.0), ("counting", "de", 0.0), ("counting", "en", 1.0)]


def test_trends_show_every_date_and_mark_the_alert(monkeypatch, runs):
    from magbig.batch import trend_frame

    at = app(monkeypatch, runs["job"], view="Trends")
    table = frame_with(at, "date", "mean_abs_dev", "alert")
    assert table["date"].tolist() == R.DAYS
    assert table["alert"].tolist() == [False, False, True]
    want = trend_frame(runs["job"]).filter((pl.col("model") == table.iloc[0]["model"])
                                           & (pl.col("lang") == table.iloc[0]["lang"])
                                           & (pl.col("formulation") == table.iloc[0]["formulation"]))
    assert [close(x, y) for x, y in zip(table["mean_abs_dev"], want["mean_abs_dev"])] == [True] * 3
    alerts = frame_with(at, "date", "rule")
    assert "rising_abs_dev" in set(alerts[alerts["date"] == R.DAYS[2]]["rule"])
    assert len(at.get("vega_lite_chart")) == 1


def test_trends_without_a_job_say_how_to_get_one(monkeypatch, runs):
    at = app(monkeypatch, runs["world"], view="Trends")
    assert "magbig batch run" in at.info[0].value


# -- images, hostile text and paths --------------------------------------------------------------

def test_image_grid_opens_an_image_with_its_png_metadata(monkeypatch, runs):
    at = app(monkeypatch, runs["world"], view="Images")
    cell = A.audit_frame(runs["world"]).filter(
        (pl.col("subject") == at.selectbox(key="img_subject").value) & (pl.col("lang") == at.selectbox(key="img_lang").value)
        & (pl.col("formulation") == at.selectbox(key="img_form").value))
    assert len(at.get("image")) == cell.height == 8
    shown = texts(at)
    assert f"prompt: {cell['text'][0]}" in shown
    first = cell.sort("slot").row(0, named=True)
    assert any(f"seed={first['seed']}" in t and first["status"] in t for t in shown)
    at.button(key=f"open_{first['key']}").click().run()
    meta = json.loads(at.json[0].value)
    assert meta["row"]["key"] == first["key"] and meta["png"]["key"] == first["key"]
    assert meta["png"]["prompt"] == first["text"] and meta["png"]["seed"] == str(first["seed"])
    assert len(at.get("image")) == cell.height + 1


def test_hostile_prompt_is_text_and_paths_out_of_the_run_are_refused(monkeypatch, runs):
    at = app(monkeypatch, runs["hostile"], view="Images")
    shown = texts(at)
    assert f"prompt: {R.EVIL}" in shown  # literally, as text
    refused = [t for t in shown if "refused" in t]
    assert len(refused) == 3, shown
    assert any("'..'" in t for t in refused) and any("absolute path" in t for t in refused)
    assert any("symlink" in t for t in refused)
    assert len(at.get("image")) == 6 - 3
    # no element renders Markdown or HTML made from run data
    for el in [*at.markdown, *at.caption]:
        assert "<script>" not in el.value and "onerror" not in el.value
    assert "unsafe_allow_html" not in EXPLORER.read_text(encoding="utf-8")


@pytest.mark.parametrize("rel, ok", [("images/a.png", True), ("../x.png", False), ("/etc/passwd", False),
                                      ("images/../../x.png", False), ("C:\\x.png", False), ("", False),
                                      ("images/link.png", False)])
def test_safe_path(tmp_path, rel, ok):
    run = tmp_path / "run"
    (run / "images").mkdir(parents=True)
    (run / "images" / "a.png").write_bytes(b"x")
    (tmp_path / "secret.png").write_bytes(b"s")
    os.symlink(tmp_path / "secret.png", run / "images" / "link.png")
    if ok:
        assert data.read_image_bytes(run, rel) == b"x"
    else:
        with pytest.raises(data.UnsafePath):
            data.read_image_bytes(run, rel)


# -- downloads, methods, the tiny model ----------------------------------------------------------

def test_downloads_and_methods(monkeypatch, runs):
    at = app(monkeypatch, runs["world"], view="Downloads", f_langs=["en"])
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["filtered labels (CSV)", "filtered labels (parquet)",
                      "statistics per language × formulation (CSV)", "HTML report of the run (report.html)"]
    n = A.audit_frame(runs["world"]).filter(pl.col("lang") == "en").height
    assert f"{n} labelled images in the filtered selection (world)" in texts(at)
    at.sidebar.radio(key="view").set_value("Methods").run()
    body = at.markdown[0].value
    assert "noise floor" in body.lower() and "Wilson" in body and "magbig stats" in body


def test_filtered_download_bytes_give_the_shown_numbers(runs):
    """What the CSV button serves (data.to_csv_bytes of the filtered frame) reads back as the
    same table the views compute from."""
    ident = data.audit_identity(runs["world"])
    frame = data.load_audit(str(runs["world"]), ident, "world")
    f = data.Filters(langs=("de",))
    part = data.filtered(frame, f)
    back = pl.read_csv(data.to_csv_bytes(part), schema=part.schema)
    assert back.equals(part)
    assert pl.read_parquet(data.to_parquet_bytes(part)).equals(part)
    assert frame.sort("key").equals(A.audit_frame(runs["world"]).sort("key").select(frame.columns))
    assert set(A.audit_frame(runs["world"]).columns) - set(frame.columns) == {"text", "in_audit"}


@pytest.mark.slow
def test_every_view_on_a_tiny_diffusion_model_run(monkeypatch, tiny, main):
    for view in ("Overview", "Perceived-female share", "Neutral prompts", "Heatmap", "Images",
                 "Classifier agreement", "Alignment", "Trends", "Downloads", "Methods"):
        at = app(monkeypatch, tiny, view=view)
        assert not at.error, (view, [e.value for e in at.error])
    table = frame_with(app(monkeypatch, tiny), "run", "n_images")
    assert table.iloc[0]["n_images"] == A.audit_frame(tiny).height == 8
    code, out, err = main("stats", tiny / "labels.parquet", "--classifier", "world")
    at = app(monkeypatch, tiny, view="Perceived-female share")
    if code == 0:
        _assert_same_groups(frame_with(at, "mean_p_female", "mean_noise_floor"), json.loads(out))


# -- magbig explore ------------------------------------------------------------------------------

def test_magbig_explore_starts_streamlit_on_localhost(monkeypatch, runs, main):
    import subprocess

    calls, envs = [], []
    stop_with_ctrl_c = []

    class Server:  # stands in for `streamlit run`'s process
        def __init__(self, cmd, **kw):
            calls.append(cmd)
            envs.append(kw["env"])

        def wait(self, timeout=None):
            if stop_with_ctrl_c:
                stop_with_ctrl_c.pop()
                raise KeyboardInterrupt
            return 0

        def terminate(self):
            calls.append("terminated")

    monkeypatch.setattr(subprocess, "Popen", Server)
    code, _, err = main("explore", runs["world"], runs["job"])
    assert code == 0, err
    cmd = calls[0]
    assert cmd[1:4] == ["-m", "streamlit", "run"] and Path(cmd[4]) == EXPLORER
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.headless") + 1] == "true"
    assert cmd[cmd.index("--") + 1:] == [str(runs["world"].resolve()), str(runs["job"].resolve())]
    assert envs[0]["OMP_NUM_THREADS"] == os.environ.get("OMP_NUM_THREADS", "1")
    code, _, _ = main("explore", runs["world"], "--host", "0.0.0.0", "--port", "8600")
    assert calls[1][calls[1].index("--server.address") + 1] == "0.0.0.0"
    assert calls[1][calls[1].index("--server.port") + 1] == "8600"
    code, _, err = main("explore", "/no/such/run")
    assert code == 2 and "no such directory" in err
    stop_with_ctrl_c.append(True)  # Ctrl-C stops the server: exit 0, not "interrupted; rerun"
    code, _, err = main("explore", runs["world"])
    assert code == 0 and "explorer stopped" in err and "rerun" not in err
    assert calls[-1] == "terminated"  # the server goes with it


def test_alignment_cost_beside_the_paired_tests_equals_the_report(monkeypatch, runs, tmp_path):
    """With an alignment.parquet (`magbig align`'s table; cosines made up here) the neutral-prompt
    view shows the report's paired alignment differences, and the Alignment view its means."""
    import shutil

    import numpy as np

    from magbig.alignment import ALIGNMENT_COLUMNS

    run = tmp_path / "aligned"
    shutil.copytree(runs["world"], run)
    units = pl.read_parquet(run / "units.parquet")
    rng = np.random.default_rng(0)
    own = 0.30 - 0.03 * (units["formulation"] == "indirect").to_numpy() + rng.normal(0, 0.01, units.height)
    pl.DataFrame({
        "key": units["key"], "prompt_id": units["prompt_id"], "subject": units["subject"], "lang": units["lang"],
        "formulation": units["formulation"], "text": units["text"], "text_en": units["text"], "en_source": "builtin",
        "clip_model": "tiny-clip", "clip_revision": "r0", "clip_cos_en": own - 0.01, "clip_cos_own": own,
        "own_truncated": False, "en_truncated": False, "detail": None,
    }, schema=ALIGNMENT_COLUMNS).write_parquet(run / "alignment.parquet")
    A.report(run, n_boot=200)
    want = json.loads((run / "summary.json").read_text())["alignment"]
    at = app(monkeypatch, run, view="Neutral prompts", n_boot=200)
    cost = frame_with(at, "metric", "mean_diff", "lang", "formulation")
    assert len(cost) == len(want["vs_direct"]) == 4
    by_key = {(r["metric"], r["lang"], r["formulation"]): r for r in want["vs_direct"]}
    for _, row in cost.iterrows():
        r = by_key[(row["metric"], row["lang"], row["formulation"])]
        assert all(close(row[c], r[c]) for c in ("mean_diff", "diff_low", "diff_high", "p_value", "p_holm"))
        assert row["mean_diff"] == pytest.approx(-0.03, abs=0.02)
    at.sidebar.radio(key="view").set_value("Alignment").run()
    means = frame_with(at, "mean_cos_own", "mean_cos_en")
    assert sorted(means["mean_cos_own"].round(12)) == sorted(round(g["mean_cos_own"], 12) for g in want["groups"])


def test_label_parts_of_a_run_being_labelled_are_read_like_the_label_store(monkeypatch, runs, tmp_path):
    """Parts under .labels-parts/ (a labelling pass in progress) join labels.parquet with the
    label store's rule, the newest row per (key, classifier) wins; the page says it is being written."""
    import shutil

    from magbig.rundata import LabelStore

    run = tmp_path / "labelling"
    shutil.copytree(runs["world"], run)
    labels = pl.read_parquet(run / "labels.parquet")
    flipped = labels.filter(pl.col("classifier") == "world").head(10).with_columns(
        pl.lit("ok").alias("status"), pl.lit("female").alias("label"), pl.lit(1.0).alias("p_female"))
    (run / ".labels-parts").mkdir()
    flipped.write_parquet(run / ".labels-parts" / "00000000000000000001-1-000001.parquet")
    frame = data.load_audit(str(run), data.audit_identity(run), "world")
    want = A.audit_frame(run, "world")  # through LabelStore.frame()
    assert LabelStore(run).frame().height == labels.height
    assert frame.sort("key").equals(want.sort("key").select(frame.columns))
    assert frame.filter(pl.col("key").is_in(flipped["key"].to_list()))["label"].to_list() == ["female"] * 10
    at = app(monkeypatch, run)
    assert frame_with(at, "run", "status")["status"].tolist() == ["still being written"]
