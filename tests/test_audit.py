"""magbig.audit + magbig.selftest: end to end on an oracle generator with planted shares.

The oracle (magbig.selftest.OraclePipeline) has BabelPipeline's interface but renders world
portraits whose presentation is drawn, from the seed, with the bias table's p_feminine for
the prompt's cell; the `world` classifier reads them back through the normal classify path.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from magbig import audit as A
from magbig.classify import WorldClassifier
from magbig.prompts import Prompt, PromptSet
from magbig.selftest import OraclePipeline, selftest
from neobabel.errors import InputError
from neobabel.world.bias import load_table

OCCS = ["nurse", "firefighter", "construction worker"]


def _spec(**kw) -> A.AuditSpec:
    data = {"name": "t", "model": "oracle", "subjects": OCCS, "langs": ["en", "de"],
            "formulations": ["direct", "indirect"], "n": 4, "seed": 0, "batch_size": 16,
            "classifiers": [{"name": "world"}], "n_boot": 200}
    data.update(kw)
    return A.make_spec(data)


class CountingOracle(OraclePipeline):
    """Records every generated (text, lang, seed) in a list shared across instances and can
    raise KeyboardInterrupt at its k-th generate() call (before producing anything)."""

    def __init__(self, log: list, fail_at: int | None = None, **kw):
        base = OraclePipeline.from_bias_table(**kw)
        super().__init__(base.cells, ambiguous_share=base.ambiguous_share, **kw)
        self.log, self.fail_at, self.n_calls = log, fail_at, 0

    def generate(self, prompts, langs=None, seeds=0, params=None, **kw):
        self.n_calls += 1
        if self.fail_at is not None and self.n_calls == self.fail_at:
            raise KeyboardInterrupt
        images = super().generate(prompts, langs, seeds, params, **kw)
        self.log.extend(zip(prompts, langs, seeds))
        return images


# -- end to end ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def e2e_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "run"
    A.run_audit(_spec(n=40), out, progress=False, pipeline=OraclePipeline.from_bias_table())
    return out


def test_end_to_end_recovers_planted_shares(e2e_run):
    table = load_table()
    assert A.audit_frame(e2e_run).height == 3 * 2 * 2 * 40
    cmp = A.compare_to_planted(e2e_run, tolerance=0.15)
    assert cmp.height == 12
    for r in cmp.iter_rows(named=True):
        assert r["planted"] == table.lookup(r["subject"], r["lang"], r["formulation"]).p_feminine
    assert cmp["within"].sum() >= 10, cmp
    assert cmp["error"].abs().mean() < 0.08
    # direct prompts are planted more skewed than indirect ones, and the audit shows it
    summary = json.loads((e2e_run / "summary.json").read_text())
    groups = {(g["lang"], g["formulation"]): g for g in summary["groups"]}
    for lang in ("en", "de"):
        assert groups[(lang, "direct")]["mean_abs_dev"] > groups[(lang, "indirect")]["mean_abs_dev"] + 0.1
    assert summary["classifier"] == "world"


@pytest.mark.parametrize("name,images", [("quick", 3240), ("world-direct", 2304), ("full", None)])
def test_shipped_audit_configs_validate_and_select_prompts(name, images):
    from neobabel.registry import REPO_ROOT

    spec = A.load_audit_config(REPO_ROOT / "configs" / "audits" / f"{name}.yaml")
    prompts = A.select_prompts(spec)
    assert spec.name == name and len(prompts) > 0
    if name == "quick":  # the world's 405 planted cells, 8 images each
        assert spec.model == "world" and len(prompts) * spec.n == images
        table = load_table()
        assert {(p.subject, p.lang, p.formulation) for p in prompts} == \
               {(c.occupation, c.lang, c.formulation) for c in table.cells}
    elif name == "world-direct":  # the learned cells: direct prompts, 12 occupations x 4 languages
        assert spec.model == "world" and len(prompts) * spec.n == images
        table = load_table()
        cells = {(c.occupation, c.lang, c.formulation) for c in table.cells}
        assert {(p.subject, p.lang, p.formulation) for p in prompts} <= cells
        assert {p.formulation for p in prompts} == {"direct"} and spec.seed >= 8  # apart from quick's seeds
    else:
        assert spec.n == 100 and spec.face_policy == "reject"


def test_within_tolerance_probability_matches_the_binomial():
    from scipy.stats import binom

    # n=10, p=0.5, ±0.1: X in {4, 5, 6}
    assert A.within_tolerance_probability(10, 0.5, 0.10) == pytest.approx(binom.pmf([4, 5, 6], 10, 0.5).sum())
    # n=8, p=0.3, ±0.1: X/8 in [0.2, 0.4] -> X in {2, 3}
    assert A.within_tolerance_probability(8, 0.3, 0.10) == pytest.approx(binom.pmf([2, 3], 8, 0.3).sum())
    assert A.within_tolerance_probability(1, 0.5, 0.10) == 0.0
    assert A.within_tolerance_probability(100, 0.5, 0.10) > 0.95


def test_expected_abs_error_closed_form_and_scipy():
    from scipy.stats import binom

    for p in (0.03, 0.3, 0.5, 0.95):
        assert A.expected_abs_error(1, p) == pytest.approx(2 * p * (1 - p))  # |1-p|p + p(1-p)
        want = binom.expect(lambda k, p=p: abs(k / 8 - p), args=(8, p))
        assert A.expected_abs_error(8, p) == pytest.approx(want)


def test_planted_fit_test_accepts_the_planted_shares_and_rejects_a_shift():
    from scipy.stats import chi2

    rng = np.random.default_rng(3)
    planted = rng.uniform(0.05, 0.95, 300)
    n = np.full(300, 8)
    drawn = rng.binomial(n, planted)
    assert A.planted_fit_test(drawn, n, planted)["p_value"] > 0.05
    shifted = rng.binomial(n, np.clip(planted + 0.15, 0, 1))
    assert A.planted_fit_test(shifted, n, planted)["p_value"] < 0.001
    # at large n the deviance is chi-square with one degree of freedom per cell
    big = np.full(40, 400)
    res = A.planted_fit_test(rng.binomial(big, planted[:40]), big, planted[:40])
    assert res["p_value"] == pytest.approx(chi2.sf(res["g_statistic"], 40), abs=0.03)
    # cells without labels count for nothing
    assert A.planted_fit_test([0, 3], [0, 8], [0.5, 0.4])["cells"] == 1


def test_planted_recovery_summary_on_the_oracle(e2e_run):
    cmp = A.compare_to_planted(e2e_run)
    rec = A.planted_recovery(cmp, 0.10)
    assert rec["cells"] == 12 and 0.8 * 12 * 40 <= rec["labelled_images"] <= 12 * 40  # ~10% ambiguous
    assert rec["within"] == pytest.approx(float(cmp["within"].mean()), abs=1e-4)
    # an exact generator recovers about as many cells as binomial noise allows at n=40
    assert rec["within_if_perfect"] == pytest.approx(0.8, abs=0.15)
    assert abs(rec["within"] - rec["within_if_perfect"]) <= 0.35
    assert rec["planted_in_wilson_ci"] >= 0.75
    skew = rec["direct_more_skewed_than_indirect"]
    assert skew["planted_in"] == 2 and skew["shown_in"] == 2
    assert set(rec["per_formulation"]) == {"direct", "indirect"}
    # the baseline column is each occupation's planted share pooled over all of the table's cells
    from neobabel.world.bias import load_table

    cells = load_table().cells
    for row in cmp.select("subject", "planted_occupation_mean").unique().iter_rows(named=True):
        shares = [c.p_feminine for c in cells if c.occupation == row["subject"]]
        assert row["planted_occupation_mean"] == pytest.approx(sum(shares) / len(shares))
    # the oracle draws each cell's own share, so it is closer to the table than a model that
    # learned only the occupation's pooled share would be
    assert rec["mean_abs_error"] < rec["mean_abs_error_occupation_only"]
    # and its counts are what the planted shares give: the fit test does not reject them, and
    # its mean error is about what binomial noise alone gives at this n
    assert rec["fit_to_planted"]["p_value"] > 0.01 and rec["fit_to_planted"]["cells"] == 12
    assert rec["mean_abs_error"] == pytest.approx(rec["mean_abs_error_if_perfect"], abs=0.04)
    assert all(f["fit_p_value"] > 0.01 for f in rec["per_formulation"].values())


def test_occupation_only_baseline_is_the_planted_share_pooled_over_the_occupation():
    from neobabel.world.bias import load_table

    table = load_table()
    doctor = [c.p_feminine for c in table.cells if c.occupation == "doctor"]
    pooled = sum(doctor) / len(doctor)
    # a model that drew the pooled share in every doctor cell: zero error against the baseline
    cmp = pl.DataFrame({"subject": ["doctor"] * 2, "lang": ["de", "de"], "formulation": ["direct", "feminine"],
                        "n_female": [round(pooled * 40)] * 2, "n_labelled": [40, 40],
                        "p_female": [pooled, pooled], "ci_low": [0.0, 0.0],
                        "ci_high": [1.0, 1.0]})
    planted = {(c.lang, c.formulation): c.p_feminine for c in table.cells if c.occupation == "doctor"}
    cmp = cmp.with_columns(pl.Series("planted", [planted["de", "direct"], planted["de", "feminine"]]),
                           pl.lit(pooled).alias("planted_occupation_mean"))
    cmp = cmp.with_columns((pl.col("p_female") - pl.col("planted")).alias("error"))
    rec = A.planted_recovery(cmp, 0.10)
    assert rec["mean_abs_error_occupation_only"] == pytest.approx(0.0, abs=1e-4)
    assert rec["mean_abs_error"] == pytest.approx(
        (abs(pooled - planted["de", "direct"]) + abs(pooled - planted["de", "feminine"])) / 2, abs=1e-4)


def test_run_directory_contract(e2e_run):
    info = json.loads((e2e_run / "run.json").read_text())
    assert info["audit"]["model"] == "oracle" and info["audit"]["n"] == 40
    assert info["audit_status"] == "complete"
    assert [c["backend"] for c in info["classifiers"]] == ["world"]
    assert info["prompt_set"]["count"] == 12
    gens = pl.read_parquet(e2e_run / "generations.parquet")
    labels = pl.read_parquet(e2e_run / "labels.parquet")
    assert gens.height == 480 and labels.height == 480
    assert set(A.LABELS_COLUMNS) <= set(labels.columns)
    assert labels.select("key", "classifier").is_unique().all()
    units = pl.read_parquet(e2e_run / "units.parquet")
    assert units["in_audit"].all() and units.select("prompt_id", "slot").is_unique().all()
    # per-subject seeds: every prompt of a subject uses the same seed in a slot, subjects differ
    assert units["seed"].to_list() == [A.image_seed(s, 0, i) for s, i in zip(units["subject"], units["slot"])]
    assert units.group_by("subject", "slot").agg(pl.col("seed").n_unique())["seed"].max() == 1
    firsts = units.filter(pl.col("slot") == 0).group_by("subject").agg(pl.col("seed").first())
    assert firsts["seed"].n_unique() == len(OCCS)
    for name in ("summary.json", "report.html", "report.md", "rejections.parquet"):
        assert (e2e_run / name).is_file()
    assert "Image seeds: per subject" in (e2e_run / "report.html").read_text(encoding="utf-8")


def test_rerun_is_a_no_op(e2e_run):
    log: list = []
    A.run_audit(_spec(n=40), e2e_run, progress=False, pipeline=CountingOracle(log), report_files=False)
    assert log == []
    assert pl.read_parquet(e2e_run / "labels.parquet").height == 480


# -- resume ------------------------------------------------------------------------------------

def test_resume_after_interrupts_in_generation_and_classification(tmp_path, monkeypatch):
    out = tmp_path / "run"
    spec = _spec(subjects=["nurse", "pilot"], langs=["en"], n=6, batch_size=4,
                 classifiers=[{"name": "world", "options": {"batch_size": 4}}])
    log: list = []
    # 1) killed during generation (3rd batch of 4)
    with pytest.raises(KeyboardInterrupt):
        A.run_audit(spec, out, progress=False, pipeline=CountingOracle(log, fail_at=3))
    assert len(log) == 8
    assert json.loads((out / "run.json").read_text())["audit_status"] == "interrupted"
    # 2) killed during classification (3rd classifier batch)
    calls = {"n": 0}
    real = WorldClassifier.classify

    def flaky(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, *a, **kw)

    monkeypatch.setattr(WorldClassifier, "classify", flaky)
    with pytest.raises(KeyboardInterrupt):
        A.run_audit(spec, out, progress=False, pipeline=CountingOracle(log))
    assert len(log) == 24
    partial = A.LabelStore(out).frame()
    assert partial.height == 8 and partial.select("key", "classifier").is_unique().all()
    assert not (out / ".labels-parts").exists()  # merged on the way out
    # 3) clean rerun finishes without regenerating or relabelling anything twice
    monkeypatch.setattr(WorldClassifier, "classify", real)
    A.run_audit(spec, out, progress=False, pipeline=CountingOracle(log))
    assert len(log) == 24 and len(set(log)) == 24
    labels = pl.read_parquet(out / "labels.parquet")
    assert labels.height == 24 and labels.select("key", "classifier").is_unique().all()
    assert set(labels["key"]) == set(pl.read_parquet(out / "generations.parquet")["key"])
    assert json.loads((out / "run.json").read_text())["audit_status"] == "complete"


def test_label_store_keeps_newest_row_per_key_and_classifier(tmp_path):
    store = A.LabelStore(tmp_path, merge_every=3)

    def row(key, status):
        return pl.DataFrame([{"key": key, "classifier": "world", "status": status}],
                            schema={k: A.LABELS_COLUMNS[k] for k in ("key", "classifier", "status")})

    store.append(row("a", "ok"))
    store.append(row("a", "no_face"))  # a re-label replaces, never duplicates
    assert store.frame().height == 1 and store.frame()["status"][0] == "no_face"
    store.append(row("b", "ok"))  # third part: merged into labels.parquet
    assert not (tmp_path / ".labels-parts").exists()
    store.append(row("b", "error"))  # a leftover part, as a kill would leave it
    df = A.LabelStore(tmp_path).frame()
    assert sorted(zip(df["key"], df["status"])) == [("a", "no_face"), ("b", "error")]


def test_label_store_reads_old_tables_whose_key_column_is_image(tmp_path):
    # labels.parquet written before the one schema called the image's key `image`
    old = pl.DataFrame({"image": ["a", "b"], "classifier": ["world", "world"], "status": ["ok", "no_face"]})
    old.write_parquet(tmp_path / "labels.parquet")
    df = A.LabelStore(tmp_path).frame()
    assert "image" not in df.columns and sorted(zip(df["key"], df["status"])) == [("a", "ok"), ("b", "no_face")]
    assert A.LabelStore(tmp_path).done_keys("world") == {"a", "b"}


def test_image_seeds_shared_and_per_subject():
    assert [A.image_seed("nurse", 5, i, "shared") for i in range(3)] == [5, 6, 7]
    nurse = [A.image_seed("nurse", 5, i) for i in range(3)]
    assert nurse[1] - nurse[0] == 1 and (nurse[0] - 5) % A.SUBJECT_SEED_STRIDE == 0
    assert A.image_seed("pilot", 5, 0) != nurse[0]
    # the slots of one subject stay below the next multiple of the stride
    with pytest.raises(InputError, match="per_subject"):
        _spec(seed=A.SUBJECT_SEED_STRIDE - 3, n=4)
    assert _spec(seed=A.SUBJECT_SEED_STRIDE - 3, n=4, seeds="shared").seeds == "shared"


def test_resuming_under_another_seed_scheme_is_refused(tmp_path):
    A.run_audit(_spec(subjects=["nurse"], langs=["en"], n=2, seeds="shared"), tmp_path, progress=False,
                pipeline=OraclePipeline.from_bias_table(), report_files=False)
    before = sorted(p.name for p in (tmp_path / "images").iterdir())
    with pytest.raises(InputError, match="seeds: shared.*--seeds shared"):
        A.run_audit(_spec(subjects=["nurse"], langs=["en"], n=2), tmp_path, progress=False,
                    pipeline=OraclePipeline.from_bias_table(), report_files=False)
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == before
    # a run recorded before the field existed counts as shared
    info = json.loads((tmp_path / "run.json").read_text())
    del info["audit"]["seeds"]
    (tmp_path / "run.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match="seeds: shared"):
        A.run_audit(_spec(subjects=["nurse"], langs=["en"], n=2), tmp_path, progress=False,
                    pipeline=OraclePipeline.from_bias_table(), report_files=False)


# -- rejection sampling -------------------------------------------------------------------

def test_rejection_sampling_logs_rejected_seeds_and_respects_the_cap(tmp_path):
    log: list = []
    blank = lambda s: s % 4 == 0 or s == 3  # noqa: E731  slot 0 never gets a face; slot 3 on try 2
    pipe = CountingOracle(log, blank=blank)
    spec = _spec(subjects=["doctor"], langs=["en"], n=4, face_policy="reject", max_tries=3, seeds="shared")
    A.run_audit(spec, tmp_path, progress=False, pipeline=pipe)
    rej = pl.read_parquet(tmp_path / "rejections.parquet")
    for prompt_id in ("doctor/en/direct", "doctor/en/indirect"):
        r = rej.filter(pl.col("prompt_id") == prompt_id).sort("slot", "attempt")
        assert list(zip(r["slot"], r["seed"])) == [(0, 0), (0, 4), (0, 8), (3, 3)]
        assert r["status"].to_list() == ["no_face"] * 4
        assert r["cap_reached"].to_list() == [False, False, True, False]
    assert sorted({s for _, _, s in log}) == [0, 1, 2, 3, 4, 7, 8]  # cap: seed 12 never tried
    frame = A.audit_frame(tmp_path)
    assert frame.select("prompt_id", "slot").is_unique().all() and frame.height == 8
    accepted = frame.filter(pl.col("slot") != 0)
    assert (accepted["faces"] == 1).all() and accepted["status"].is_in(["ok", "uncertain"]).all()
    assert set(accepted.filter(pl.col("slot") == 3)["seed"]) == {7}
    capped = frame.filter(pl.col("slot") == 0)
    assert capped["status"].to_list() == ["no_face", "no_face"] and set(capped["seed"]) == {8}
    info = json.loads((tmp_path / "run.json").read_text())["audit_result"]
    assert info["rejected_tries"] == 8 and info["slots_cap_reached"] == 2
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["face_filter"]["no_face"] == 2  # capped slots show in the denominators


# -- re-labelling and reports ------------------------------------------------------------------

def test_relabel_without_regenerating(tmp_path):
    out = tmp_path / "run"
    A.run_audit(_spec(subjects=["pilot"], langs=["en"], n=3), out, progress=False,
                pipeline=OraclePipeline.from_bias_table())
    manifest = (out / "generations.parquet").read_bytes()
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()}
    res = A.relabel(out, "world", {"alias": "world2"}, progress=False)
    assert res["labelled_now"] == 6 and res["statuses"]
    assert A.relabel(out, "world", {"alias": "world2"}, progress=False)["labelled_now"] == 0
    # a changed configuration re-labels (and replaces) instead of adding rows
    assert A.relabel(out, "world", {"alias": "world2", "uncertain_margin": 0.1},
                     progress=False)["labelled_now"] == 6
    labels = pl.read_parquet(out / "labels.parquet")
    assert labels.group_by("classifier").len().sort("classifier").rows() == [("world", 6), ("world2", 6)]
    assert (out / "generations.parquet").read_bytes() == manifest
    assert {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()} == mtimes
    assert A.classifier_names(out) == ["world", "world2"]
    res = A.report(out, "world2", n_boot=200)
    assert res["paths"]["report.html"] == out / "reports" / "world2" / "report.html"
    assert json.loads((out / "reports" / "world2" / "summary.json").read_text())["classifier"] == "world2"


def test_report_escapes_prompt_strings(tmp_path):
    evil = 'A photo of the face of a <script>alert("x")</script> nurse & <b>co</b>'
    ps = PromptSet("evil", "1", (Prompt.make("occupations", "nurse", "en", "direct", evil),))
    pipe = OraclePipeline({(evil, "en"): ("nurse", 0.8)})
    A.run_audit(_spec(subjects=["nurse"], langs=["en"], formulations=["direct"], n=3), tmp_path,
                progress=False, pipeline=pipe, prompts=ps)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<script>alert" not in html and "<b>co</b>" not in html
    assert "&lt;script&gt;alert(" in html


def test_compare_formulations_and_same_prompts(tmp_path):
    pipe = OraclePipeline.from_bias_table()
    a, b = tmp_path / "direct", tmp_path / "indirect"
    A.run_audit(_spec(formulations=["direct"], n=20), a, progress=False, pipeline=pipe, report_files=False)
    A.run_audit(_spec(formulations=["indirect"], n=20), b, progress=False, pipeline=pipe, report_files=False)
    res = A.compare(a, b, n_boot=200, n_perm=999)
    assert res["mode"] == "formulations" and res["n_pairs"] == 6
    assert res["mean_diff"] < -0.1 and res["mean_abs_dev_a"] > res["mean_abs_dev_b"]
    assert res["p_value"] < 0.1  # exact sign-flip over 2^6 patterns: 2/64 if all 6 agree in sign
    assert {r["lang"] for r in res["per_lang"]} == {"en", "de"}
    same = A.compare(a, a, n_boot=200, n_perm=999)
    assert same["mode"] == "same prompts" and same["mean_diff"] == 0 and same["p_value"] == 1.0


# -- spec validation ------------------------------------------------------------------------

def test_load_audit_config_and_overrides(tmp_path):
    cfg = tmp_path / "a.yaml"
    cfg.write_text("model: oracle\nsubjects: world\nlangs: en,DE\nformulations: [direct, star]\n"
                   "classifiers: [world]\nn: 5\n", encoding="utf-8")
    spec = A.load_audit_config(cfg, n=7, langs=None)
    assert spec.name == "a" and spec.n == 7 and spec.langs == ["en", "de"]
    assert spec.formulations == ["direct", "gender_star"] and spec.classifiers[0].name == "world"
    assert A.load_audit_config(cfg, langs="fr").langs == ["fr"]


@pytest.mark.parametrize("text, match", [
    ("model: [unclosed\n", r"not valid YAML at line"),
    ("- just\n- a list\n", r"must be a YAML mapping"),
    ("colour: red\n", r"unknown field 'colour' \(allowed: name, model"),
    ("n: 0\n", r"n = 0: Input should be greater than or equal to 1"),
    ("face_policy: sometimes\n", r"face_policy = 'sometimes'"),
    ("classifiers: [{name: world, opts: {}}]\n", r"unknown field 'opts'"),
    ("langs: [en, klingon]\n", r"unknown language"),
    ("formulations: [direct, polite]\n", r"unknown formulation 'polite'"),
    ("size: big\n", r"size = 'big'"),
    ("classifiers: [world, world]\n", r"two classifiers are named 'world'"),
])
def test_bad_configs_are_one_line_input_errors(tmp_path, text, match):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=match) as e:
        A.load_audit_config(cfg)
    assert "\n" not in str(e.value)


def test_bad_inputs_fail_before_generating(tmp_path):
    with pytest.raises(InputError, match="unknown classifier 'fairface'"):
        A.run_audit(_spec(classifiers=[{"name": "fairface"}]), tmp_path / "r1", progress=False)
    with pytest.raises(InputError, match="no prompts"):
        A.run_audit(_spec(langs=["en"], formulations=["gender_star"]), tmp_path / "r2", progress=False)
    with pytest.raises(InputError, match="oracle' has no planted share"):
        A.run_audit(_spec(subjects=["accountant"]), tmp_path / "r3", progress=False)
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r3" / "images").exists()
    with pytest.raises(InputError, match="not found"):
        A.report(tmp_path / "nowhere")


# -- selftest -------------------------------------------------------------------------------

def test_selftest_coverage_small():
    res = selftest(150, 30, seed=1, render_pool=6, n_boot=300)
    assert res["reader_agreement"] == 1.0  # the world reader saw what the oracle drew
    assert res["images"] == 4500 and res["wilson"]["cells"] == 150 and res["bootstrap"]["groups"] == 12
    assert 0.85 <= res["wilson"]["coverage"] <= 1.0
    assert 0.6 <= res["bootstrap"]["coverage"] <= 1.0
    # abs_dev, l1 and the default two-stage scheme are checked too, estimate inside each interval
    groups = res["group_intervals"]
    assert set(groups) == {"images/mean_abs_dev", "images/mean_l1", "two_stage/mean_p_female",
                           "two_stage/mean_abs_dev", "two_stage/mean_l1"}
    assert all(g["groups"] == 12 and g["estimate_inside"] for g in groups.values())
    assert all(0.6 <= g["coverage"] <= 1.0 for g in groups.values())
    # too-narrow intervals are caught: nominal 50% covers about half the cells
    narrow = selftest(150, 30, seed=1, render_pool=6, n_boot=300, confidence=0.5)
    assert narrow["wilson"]["coverage"] < 0.7
    assert narrow["wilson"]["coverage"] < res["wilson"]["coverage"] - 0.2
    assert (narrow["group_intervals"]["two_stage/mean_abs_dev"]["coverage"]
            < groups["two_stage/mean_abs_dev"]["coverage"])


def test_an_audit_says_once_how_many_prompts_the_model_cuts(caplog):
    from neobabel.pipeline import BabelPipeline
    from neobabel.preflight import warn_truncated

    pipe = BabelPipeline.from_pretrained("world")
    long_text = "ein Foto vom Gesicht einer Ärztin " * 60
    with caplog.at_level("WARNING", logger="neobabel.preflight"):
        assert warn_truncated(pipe, [long_text, long_text, "ein Foto vom Gesicht einer Ärztin"]) == 1
    assert len(caplog.records) == 1 and "1 prompt(s) are longer than" in caplog.records[0].getMessage()
    caplog.clear()
    with caplog.at_level("WARNING", logger="neobabel.preflight"):
        assert warn_truncated(pipe, ["ein Foto vom Gesicht einer Ärztin"]) == 0
    assert not caplog.records


def test_planted_prints_no_p_value_for_a_run_with_one_seed_list(e2e_run, tmp_path):
    import json
    import shutil

    from typer.testing import CliRunner

    from magbig.cli import app

    res = CliRunner().invoke(app, ["planted", str(e2e_run)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["fit_to_planted"]["p_value"] is not None  # per-subject seeds: a test
    shared = tmp_path / "shared"
    shutil.copytree(e2e_run, shared)
    info = json.loads((shared / "run.json").read_text())
    info["audit"]["seeds"] = "shared"
    (shared / "run.json").write_text(json.dumps(info))
    out = json.loads(CliRunner().invoke(app, ["planted", str(shared)]).stdout)
    assert out["seeds"] == "shared" and out["fit_to_planted"]["p_value"] is None
    assert "no fit test here is valid" in out["fit_to_planted"]["note"]
    assert all(part["fit_p_value"] is None for part in out["per_formulation"].values())
