"""Tests for magbig.stats against closed forms, scipy/statsmodels and the Fair-Diffusion data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from scipy import stats as sps
from statsmodels.stats.inter_rater import cohens_kappa as sm_cohens_kappa
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from magbig import stats
from neobabel.errors import InputError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
Z95 = sps.norm.ppf(0.975)


# ----------------------------------------------------------------------------- Wilson


def test_wilson_matches_statsmodels():
    k = np.array([0, 1, 3, 17, 50, 99, 100, 7])
    n = np.array([10, 10, 10, 40, 100, 100, 100, 7])
    low, high = stats.wilson_interval(k, n)
    sm_low, sm_high = proportion_confint(k, n, alpha=0.05, method="wilson")
    np.testing.assert_allclose(low, sm_low, atol=1e-12)
    np.testing.assert_allclose(high, sm_high, atol=1e-12)
    low90, high90 = stats.wilson_interval(k, n, confidence=0.9)
    sm_low90, sm_high90 = proportion_confint(k, n, alpha=0.1, method="wilson")
    np.testing.assert_allclose(low90, sm_low90, atol=1e-12)
    np.testing.assert_allclose(high90, sm_high90, atol=1e-12)


def test_wilson_closed_form_edges_and_empty():
    n = 20
    # k = 0: [0, z²/(n + z²)]; k = n: [n/(n + z²), 1].
    low, high = stats.wilson_interval(0, n)
    assert low == 0.0 and high == pytest.approx(Z95**2 / (n + Z95**2), abs=1e-12)
    low, high = stats.wilson_interval(n, n)
    assert low == pytest.approx(n / (n + Z95**2), abs=1e-12) and high == 1.0
    low, high = stats.wilson_interval(np.array([0, 2]), np.array([0, 4]))
    assert np.isnan(low[0]) and np.isnan(high[0])
    assert low[1] < 0.5 < high[1] and low[1] + high[1] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- noise floor


def test_noise_floor_closed_form():
    assert round(stats.noise_floor(100), 3) == 0.040
    assert stats.noise_floor(100) == pytest.approx(0.0398, abs=5e-5)
    # n = 1: always 0.5 away; n = 2: 0.5 with probability 1/2.
    np.testing.assert_allclose(stats.noise_floor([1, 2]), [0.5, 0.25])
    assert np.isnan(stats.noise_floor([0])[0])
    # Shrinks like 1/sqrt(n): sqrt(2/(pi n)) / 2 for large n.
    assert stats.noise_floor(10_000) == pytest.approx(0.5 * math.sqrt(2 / (math.pi * 10_000)), rel=1e-3)


def test_noise_floor_matches_monte_carlo():
    rng = np.random.default_rng(1)
    for n, p in [(100, 0.5), (37, 0.3)]:
        draws = np.abs(rng.binomial(n, p, size=400_000) / n - 0.5)
        se = draws.std() / math.sqrt(draws.size)
        assert stats.noise_floor(n, p=p) == pytest.approx(draws.mean(), abs=4 * se)


def test_rogan_gladen_closed_form():
    # True share 0.3, sensitivity 0.9, specificity 0.8: observed 0.3*0.9 + 0.7*0.2 = 0.41.
    assert stats.rogan_gladen(0.41, 0.9, 0.8) == pytest.approx(0.3)
    np.testing.assert_allclose(stats.rogan_gladen(np.array([0.2, 0.9, 0.1]), 0.9, 0.8),
                               [0.0, 1.0, 0.0])  # (0.2-0.2)/0.7, clipped above, clipped below
    assert stats.rogan_gladen(0.5, 1.0, 1.0) == 0.5  # a perfect classifier changes nothing
    with pytest.raises(ValueError):
        stats.rogan_gladen(0.4, 0.5, 0.5)


# ----------------------------------------------------------------------------- per prompt


def _image_rows():
    rows = []
    # prompt A: 3 female + 2 male ok, one of every failure status (labels there don't count).
    for label in ["female", "Female", "woman", "male", "male"]:
        rows.append(("doctor", "en", "direct", "ok", label))
    rows += [
        ("doctor", "en", "direct", "no_face", None),
        ("doctor", "en", "direct", "multiple_faces", "female"),
        ("doctor", "en", "direct", "uncertain", None),
        ("doctor", "en", "direct", "error", None),
    ]
    # prompt B: nothing labelled.
    rows += [("nurse", "en", "direct", "no_face", None)] * 2
    return pl.DataFrame(rows, schema=["subject", "lang", "formulation", "status", "label"],
                        orient="row")


def test_per_prompt_denominators_from_images():
    pp = stats.per_prompt(_image_rows())
    assert "model" not in pp.columns  # absent group column skipped
    a = pp.filter(pl.col("subject") == "doctor").to_dicts()[0]
    assert (a["n_images"], a["n_ok"], a["n_no_face"], a["n_multiple_faces"],
            a["n_uncertain"], a["n_error"]) == (9, 5, 1, 1, 1, 1)
    assert (a["n_female"], a["n_male"], a["n_labelled"]) == (3, 2, 5)
    assert a["p_female"] == pytest.approx(0.6)
    assert a["abs_dev"] == pytest.approx(0.1) and a["l1"] == pytest.approx(0.2)
    low, high = proportion_confint(3, 5, method="wilson")
    assert (a["ci_low"], a["ci_high"]) == pytest.approx((low, high))
    assert a["noise_floor"] == pytest.approx(stats.noise_floor(5))
    b = pp.filter(pl.col("subject") == "nurse").to_dicts()[0]
    assert b["n_images"] == 2 and b["n_no_face"] == 2 and b["n_labelled"] == 0
    assert b["p_female"] is None and b["ci_low"] is None and b["abs_dev"] is None


def test_per_prompt_counts_equal_images():
    from_images = stats.per_prompt(_image_rows())
    counts = pl.DataFrame({"subject": ["doctor", "doctor"], "lang": ["en", "en"],
                           "formulation": ["direct"] * 2, "n_female": [1, 2], "n_male": [2, 0]})
    from_counts = stats.per_prompt(counts)
    a = from_images.filter(pl.col("subject") == "doctor")
    cols = ["n_female", "n_male", "n_labelled", "p_female", "ci_low", "ci_high", "abs_dev", "l1"]
    assert_frame_equal(from_counts.select(cols), a.select(cols))
    assert from_counts["n_images"][0] == 5 and from_counts["n_ok"][0] == 5


def test_per_prompt_counts_split_by_status():
    counts = pl.DataFrame({"subject": ["x", "x", "x"], "status": ["ok", "no_face", "multiple_faces"],
                           "n_female": [4, 0, 2], "n_male": [6, 3, 1]})
    row = stats.per_prompt(counts).to_dicts()[0]
    assert (row["n_female"], row["n_male"], row["n_no_face"], row["n_multiple_faces"]) == (4, 6, 3, 3)
    assert row["n_images"] == 16 and row["p_female"] == pytest.approx(0.4)


def test_per_prompt_rejects_bad_input():
    rows = _image_rows()
    with pytest.raises(InputError, match="unknown label"):
        stats.per_prompt(rows.with_columns(pl.lit("robot").alias("label")))
    with pytest.raises(InputError, match="unknown status"):
        stats.per_prompt(rows.with_columns(pl.lit("fine").alias("status")))
    with pytest.raises(InputError, match="n_female"):
        stats.per_prompt(rows.drop("label"))
    with pytest.raises(ValueError, match="classifier"):
        stats.per_prompt(pl.concat([rows.with_columns(classifier=pl.lit("clip")),
                                    rows.with_columns(classifier=pl.lit("deepface"))]))


# ----------------------------------------------------------------------------- aggregate


def _simulated_counts(n_sims, n_subjects, n_images, true_p_sampler, seed):
    rng = np.random.default_rng(seed)
    p = true_p_sampler(rng, (n_sims, n_subjects))
    k = rng.binomial(n_images, p)
    return pl.DataFrame({
        "sim": np.repeat(np.arange(n_sims), n_subjects),
        "subject": np.tile([f"occ{j}" for j in range(n_subjects)], n_sims),
        "n_female": k.ravel(),
        "n_male": (n_images - k).ravel(),
    })


def test_aggregate_bootstrap_coverage_of_mean_share():
    # Subjects are a sample from a population of occupations with shares ~ Beta(2, 3); the
    # aggregate's target is that population's mean share, 0.4.
    counts = _simulated_counts(200, 30, 50, lambda rng, size: rng.beta(2, 3, size), seed=11)
    agg = stats.aggregate(stats.per_prompt(counts, group_cols=("sim", "subject")),
                          by=("sim",), n_boot=400, seed=3)
    assert agg.height == 200 and (agg["n_subjects"] == 30).all()
    covered = ((agg["mean_p_female_low"] <= 0.4) & (agg["mean_p_female_high"] >= 0.4)).mean()
    assert 0.88 <= covered <= 0.99, covered
    # The confidence level is honoured, not just "wide": 50% intervals cover about half.
    half = stats.aggregate(stats.per_prompt(counts, group_cols=("sim", "subject")),
                           by=("sim",), n_boot=400, seed=3, confidence=0.5)
    covered = ((half["mean_p_female_low"] <= 0.4) & (half["mean_p_female_high"] >= 0.4)).mean()
    assert 0.38 <= covered <= 0.62, covered


def test_aggregate_bootstrap_coverage_of_mean_abs_dev():
    # Shares kept away from parity, where |p̂ - 0.5| is nearly unbiased: |p - 0.5| ~ U(0.15, 0.45).
    def sampler(rng, size):
        dev = rng.uniform(0.15, 0.45, size)
        return 0.5 + np.where(rng.random(size) < 0.5, -dev, dev)

    counts = _simulated_counts(200, 30, 100, sampler, seed=12)
    agg = stats.aggregate(stats.per_prompt(counts, group_cols=("sim", "subject")),
                          by=("sim",), n_boot=400, seed=4)
    covered = ((agg["mean_abs_dev_low"] <= 0.30) & (agg["mean_abs_dev_high"] >= 0.30)).mean()
    assert 0.88 <= covered <= 0.99, covered
    np.testing.assert_allclose(agg["mean_l1_low"], 2 * agg["mean_abs_dev_low"])
    np.testing.assert_allclose(agg["mean_l1"], 2 * agg["mean_abs_dev"])


def test_aggregate_images_scheme_covers_fixed_set_mean():
    # A fixed set of occupations with known shares: the target is their own mean share, and
    # only image sampling varies. scheme="images" is the interval for that; the default
    # two-stage interval (a population-of-occupations target) is far wider here.
    rng = np.random.default_rng(21)
    true_p = rng.uniform(0.05, 0.95, (200, 30))
    k = rng.binomial(50, true_p)
    counts = pl.DataFrame({"sim": np.repeat(np.arange(200), 30),
                           "subject": np.tile([f"occ{j}" for j in range(30)], 200),
                           "n_female": k.ravel(), "n_male": (50 - k).ravel()})
    pp = stats.per_prompt(counts, group_cols=("sim", "subject"))
    target = true_p.mean(axis=1)
    fixed = stats.aggregate(pp, by=("sim",), n_boot=400, seed=5, scheme="images")
    covered = ((fixed["mean_p_female_low"].to_numpy() <= target)
               & (fixed["mean_p_female_high"].to_numpy() >= target)).mean()
    assert 0.88 <= covered <= 0.99, covered
    two_stage = stats.aggregate(pp, by=("sim",), n_boot=400, seed=5)
    width = lambda a: (a["mean_p_female_high"] - a["mean_p_female_low"]).mean()  # noqa: E731
    assert width(two_stage) > 2 * width(fixed)
    with pytest.raises(ValueError, match="scheme"):
        stats.aggregate(pp, by=("sim",), scheme="bogus")


def _two_groups():
    counts = _simulated_counts(2, 12, 40, lambda rng, size: rng.uniform(0.1, 0.9, size), seed=5)
    return stats.per_prompt(
        counts.with_columns(pl.when(pl.col("sim") == 0).then(pl.lit("en")).otherwise(pl.lit("de"))
                            .alias("lang")).drop("sim"))


def test_aggregate_values_and_determinism():
    pp = _two_groups()
    agg = stats.aggregate(pp, by=("model", "lang", "formulation"), n_boot=300, seed=7)
    assert agg["lang"].to_list() == ["de", "en"]  # absent by-columns skipped, sorted groups
    en = pp.filter(pl.col("lang") == "en")
    row = agg.filter(pl.col("lang") == "en").to_dicts()[0]
    assert row["n_subjects"] == 12 and row["n_labelled"] == 12 * 40 == row["n_images"]
    assert row["mean_p_female"] == pytest.approx(en["p_female"].mean())
    assert row["mean_abs_dev_raw"] == pytest.approx(en["abs_dev"].mean())
    assert row["mean_abs_dev"] == pytest.approx(min(max(en["abs_dev_bc"].mean(), 0.0), 0.5))
    assert row["mean_noise_floor"] == pytest.approx(stats.noise_floor(40))
    assert row["mean_p_female_low"] < row["mean_p_female"] < row["mean_p_female_high"]
    # Same seed -> identical; another seed -> different bounds; a group ignores its neighbours.
    assert_frame_equal(agg, stats.aggregate(pp, n_boot=300, seed=7))
    other = stats.aggregate(pp, n_boot=300, seed=8)
    assert other["mean_p_female_low"].to_list() != agg["mean_p_female_low"].to_list()
    alone = stats.aggregate(en, n_boot=300, seed=7)
    assert_frame_equal(alone, agg.filter(pl.col("lang") == "en"))


def test_aggregate_refuses_mixed_clusters():
    pp = _two_groups()
    with pytest.raises(ValueError, match="lang"):
        stats.aggregate(pp, by=(), n_boot=10)


# ----------------------------------------------------------------------------- paired tests


def test_holm_matches_statsmodels():
    rng = np.random.default_rng(2)
    p = np.concatenate([rng.uniform(0, 0.1, 8), rng.uniform(0, 1, 7), [0.01, 0.01]])
    expected = multipletests(p, method="holm")[1]
    np.testing.assert_allclose(stats.holm(p), expected, atol=1e-12)
    with_nan = stats.holm(np.array([0.01, np.nan, 0.04]))
    assert np.isnan(with_nan[1])
    np.testing.assert_allclose(with_nan[[0, 2]], multipletests([0.01, 0.04], method="holm")[1])


def _paired_frame(shifts, n_subjects=40, seed=0, against="lang", reference="en"):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.05, 0.45, n_subjects)
    frames = [pl.DataFrame({"subject": [f"s{j}" for j in range(n_subjects)],
                            against: reference, "abs_dev": base})]
    for level, shift in shifts.items():
        frames.append(pl.DataFrame({"subject": [f"s{j}" for j in range(n_subjects)],
                                    against: level,
                                    "abs_dev": base + shift + rng.normal(0, 0.05, n_subjects)}))
    return pl.concat(frames)


def test_paired_tests_detects_shift_not_null_and_holm():
    df = _paired_frame({"de": 0.06, "fr": 0.0, "ja": 0.0}, seed=3)
    res = stats.paired_tests(df, n_perm=1999, n_boot=500, seed=0)
    assert res["lang"].to_list() == ["de", "fr", "ja"]
    de = res.filter(pl.col("lang") == "de").to_dicts()[0]
    assert de["n_pairs"] == 40 and de["p_value"] < 0.001 and de["p_holm"] < 0.01
    assert de["diff_low"] < 0.06 < de["diff_high"]
    assert (res.filter(pl.col("lang") != "de")["p_value"] > 0.05).all()
    np.testing.assert_allclose(res["p_holm"], multipletests(res["p_value"], method="holm")[1])
    assert_frame_equal(res, stats.paired_tests(df, n_perm=1999, n_boot=500, seed=0))


def test_paired_tests_null_calibration():
    # 300 null comparisons (symmetric differences): the rejection rate at 0.05 stays near 5%.
    rng = np.random.default_rng(4)
    n_sims, m = 300, 20
    d = rng.normal(0, 1, (n_sims, m))
    subjects = [f"s{j}" for j in range(m)]
    df = pl.concat([
        pl.DataFrame({"sim": np.repeat(np.arange(n_sims), m), "subject": subjects * n_sims,
                      "formulation": "direct", "abs_dev": np.zeros(n_sims * m)}),
        pl.DataFrame({"sim": np.repeat(np.arange(n_sims), m), "subject": subjects * n_sims,
                      "formulation": "indirect", "abs_dev": d.ravel()}),
    ])
    res = stats.paired_tests(df, against="formulation", reference="direct", by=("sim",),
                             n_perm=199, n_boot=10, seed=1)
    assert res.height == n_sims
    rate = (res["p_value"] <= 0.05).mean()
    assert 0.015 <= rate <= 0.09, rate


def test_sign_flip_exact_small_sample():
    # Five positive differences: only the all-plus and all-minus patterns are as extreme.
    df = _paired_frame({"de": 0.2}, n_subjects=5, seed=1)
    df = df.with_columns(
        pl.when(pl.col("lang") == "de").then(pl.col("abs_dev").abs() + 1).otherwise(0.0)
        .alias("abs_dev"))
    res = stats.paired_tests(df, n_perm=9999, n_boot=10)
    assert res["p_value"][0] == pytest.approx(2 / 32)


def test_paired_tests_pairs_only_shared_subjects():
    df = _paired_frame({"de": 0.1}, n_subjects=10, seed=2)
    df = df.filter(~((pl.col("lang") == "de") & pl.col("subject").is_in(["s0", "s1", "s2"])))
    res = stats.paired_tests(df, n_perm=99, n_boot=10)
    assert res["n_pairs"][0] == 7


# ----------------------------------------------------------------------------- MAGBIG E(max)


def _exact_expected_max_l1(p, n_images, n_draws):
    k = np.arange(n_images + 1)
    dev = np.abs(2 * k / n_images - 1)
    values = np.unique(dev)
    pmf = np.array([sps.binom.pmf(k[dev == v], n_images, p).sum() for v in values])
    cdf = np.cumsum(pmf)
    prev = np.concatenate([[0.0], cdf[:-1]])
    return float(np.sum(values * (cdf**n_draws - prev**n_draws)))


def test_expected_max_unfairness_closed_form():
    # Every subject at p: the max over 10 draws is the max of 10 iid binomial deviations.
    subjects = [f"s{j}" for j in range(25)]
    pp = stats.per_prompt(pl.DataFrame({"subject": subjects, "n_female": [30] * 25,
                                        "n_male": [70] * 25}))
    res = stats.expected_max_unfairness(pp, n_samples=20_000, seed=0).to_dicts()[0]
    exact = _exact_expected_max_l1(0.3, 10, 10)
    assert res["exp_max_l1"] == pytest.approx(exact, abs=4 * res["exp_max_l1_std"] / math.sqrt(20_000))
    # One fully skewed occupation among fair ones: the max is 1 whenever it is drawn (10/25).
    skewed = stats.per_prompt(pl.DataFrame({"subject": subjects,
                                            "n_female": [0] + [50] * 24, "n_male": [100] + [50] * 24}))
    res = stats.expected_max_unfairness(skewed, n_samples=20_000, seed=1).to_dicts()[0]
    fair_part = _exact_expected_max_l1(0.5, 10, 10)
    assert res["exp_max_l1"] == pytest.approx(0.4 + 0.6 * fair_part, abs=0.01)
    few = stats.expected_max_unfairness(pp.head(3), n_samples=50).to_dicts()[0]
    assert few["n_subjects_drawn"] == 3


# ----------------------------------------------------------------------------- consistency


def _two_language_frame(seed=0, n=30):
    rng = np.random.default_rng(seed)
    n_female_en = rng.integers(0, 21, n)
    n_female_de = np.clip(n_female_en + rng.integers(-4, 5, n), 0, 20)
    subjects = [f"s{j}" for j in range(n)]
    return stats.per_prompt(pl.DataFrame({
        "subject": subjects * 2, "lang": ["en"] * n + ["de"] * n, "formulation": "direct",
        "n_female": np.concatenate([n_female_en, n_female_de]),
        "n_male": np.concatenate([20 - n_female_en, 20 - n_female_de]),
    }))


def test_spearman_matches_scipy():
    pp = _two_language_frame()
    res = stats.spearman_between_languages(pp).to_dicts()
    assert len(res) == 1 and (res[0]["lang_a"], res[0]["lang_b"]) == ("de", "en")
    de = pp.filter(pl.col("lang") == "de").sort("subject")["p_female"].to_numpy()
    en = pp.filter(pl.col("lang") == "en").sort("subject")["p_female"].to_numpy()
    expected = sps.spearmanr(de, en)  # ties present: counts are 0..20
    assert res[0]["n_subjects"] == 30
    assert res[0]["rho"] == pytest.approx(expected.statistic, abs=1e-12)
    assert res[0]["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)


def test_language_spread():
    pp = stats.per_prompt(pl.DataFrame({
        "subject": ["a", "a", "a", "b", "b"], "lang": ["en", "de", "fr", "en", "de"],
        "formulation": "direct", "n_female": [2, 8, 5, 5, 5], "n_male": [8, 2, 5, 5, 5]}))
    res = stats.language_spread(pp)
    a = res.filter(pl.col("subject") == "a").to_dicts()[0]
    assert a["n_langs"] == 3 and a["spread"] == pytest.approx(0.6)
    assert (a["lang_min"], a["lang_max"]) == ("en", "de")
    assert a["p_std"] == pytest.approx(np.std([0.2, 0.8, 0.5]))
    assert res.filter(pl.col("subject") == "b")["spread"][0] == 0


# ----------------------------------------------------------------------------- kappa


def test_cohen_kappa_by_hand_and_statsmodels():
    a = ["f", "f", "m", "m", "f", "m"]
    b = ["f", "m", "m", "m", "f", "f"]
    assert stats.cohen_kappa(a, b) == pytest.approx(1 / 3)  # p_o = 2/3, p_e = 1/2
    assert stats.cohen_kappa(a + [None], b + ["f"]) == pytest.approx(1 / 3)  # missing dropped
    assert stats.cohen_kappa(a, a) == pytest.approx(1.0)
    rng = np.random.default_rng(6)
    x = rng.choice(["female", "male", "unsure"], 300, p=[0.45, 0.45, 0.1])
    y = np.where(rng.random(300) < 0.8, x, rng.choice(["female", "male", "unsure"], 300))
    cats = ["female", "male", "unsure"]
    table = np.array([[np.sum((x == r) & (y == c)) for c in cats] for r in cats])
    assert stats.cohen_kappa(x.tolist(), y.tolist()) == pytest.approx(
        sm_cohens_kappa(table).kappa, abs=1e-12)


# ----------------------------------------------------------------------------- files


def test_parse_fairface_counts(tmp_path):
    f = tmp_path / "counts.txt"
    f.write_text("  nurse \nman: 10, woman: 240, except: 0\n\nchief executive officer\n"
                 "man: 250, woman: 0, except: 3")
    df = stats.parse_fairface_counts(f)
    assert df.to_dicts() == [
        {"subject": "nurse", "n_male": 10, "n_female": 240, "n_except": 0},
        {"subject": "chief executive officer", "n_male": 250, "n_female": 0, "n_except": 3},
    ]
    assert stats.per_prompt(df)["n_images"].to_list() == [253, 250]
    f.write_text("nurse\nmen=10 women=240\n")
    with pytest.raises(InputError, match=":2:"):
        stats.parse_fairface_counts(f)


def test_read_labels_table_and_summary(tmp_path):
    rows = _image_rows().with_columns(model=pl.lit("m1"))
    rows = pl.concat([rows, rows.with_columns(lang=pl.lit("de"))])
    csv = tmp_path / "labels.csv"
    rows.write_csv(csv)
    df = stats.read_labels_table(csv)
    parquet = tmp_path / "labels.parquet"
    rows.write_parquet(parquet)
    assert_frame_equal(stats.read_labels_table(parquet), df)
    summary = stats.summarize_labels_table(df, n_boot=50, seed=0)
    json.dumps(summary, allow_nan=False)
    assert [(s["model"], s["lang"], s["formulation"]) for s in summary] == [
        ("m1", "de", "direct"), ("m1", "en", "direct")]
    for key in ["n_subjects", "n_images", "mean_p_female", "mean_abs_dev", "mean_l1",
                "mean_p_female_low", "mean_p_female_high", "mean_abs_dev_low",
                "mean_abs_dev_high", "mean_l1_low", "mean_l1_high", "mean_noise_floor"]:
        assert key in summary[0]
    assert summary[0]["n_subjects"] == 1 and summary[0]["n_labelled"] == 5
    assert summary[0]["mean_p_female"] == pytest.approx(0.6)
    assert summary[0]["n_images"] == 11 and summary[0]["n_no_face"] == 3


def test_read_labels_table_errors(tmp_path):
    bad = tmp_path / "labels.csv"
    pl.DataFrame({"subject": ["a"], "formulation": ["direct"], "label": ["female"]}).write_csv(bad)
    with pytest.raises(InputError, match="'lang'"):
        stats.read_labels_table(bad)
    pl.DataFrame({"subject": ["a"], "lang": ["en"], "formulation": ["direct"],
                  "n_female": [3]}).write_csv(bad)
    with pytest.raises(InputError, match="n_male"):
        stats.read_labels_table(bad)
    with pytest.raises(InputError, match="not found"):
        stats.read_labels_table(tmp_path / "missing.csv")
    other = tmp_path / "labels.xlsx"
    other.write_text("x")
    with pytest.raises(InputError, match=".csv or .parquet"):
        stats.read_labels_table(other)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not a parquet file")
    with pytest.raises(InputError, match="cannot read"):
        stats.read_labels_table(broken)


# ----------------------------------------------------------------------------- conformance


def test_conformance_fair_diffusion_sd15():
    folder = SHARED_DATA / "fair-diffusion"
    occupations_csv = SHARED_DATA / "magbig-official" / "prompts" / "occ_english.csv"
    if not folder.is_dir() or not occupations_csv.is_file():
        pytest.skip(f"reference data absent: {folder}")
    counts = stats.parse_fairface_counts(folder / "results_fairface_generated_1-5.txt")
    names = pl.read_csv(occupations_csv)["name"].str.strip_chars().str.to_lowercase()
    counts = counts.with_columns(pl.col("subject").str.strip_chars().str.to_lowercase())
    magbig = counts.filter(pl.col("subject").is_in(names.implode()))
    assert magbig.height == 151 == names.n_unique()  # every MAGBIG occupation found once
    agg = stats.aggregate(stats.per_prompt(magbig), by=(), n_boot=200, seed=0).to_dicts()[0]
    assert agg["n_subjects"] == 151
    assert round(agg["mean_p_female"], 3) == 0.441
    assert round(agg["mean_abs_dev_raw"], 3) == 0.309  # the published scale: mean |p̂ − 0.5|
    assert round(agg["mean_l1_raw"], 3) == 0.618
    # At n = 250 the raw mean is almost unbiased: the corrected estimate agrees within its noise.
    assert abs(agg["mean_abs_dev"] - agg["mean_abs_dev_raw"]) < 0.01
    assert agg["mean_abs_dev_low"] < agg["mean_abs_dev_raw"] < agg["mean_abs_dev_high"]
    assert agg["mean_abs_dev_low"] < agg["mean_abs_dev"] < agg["mean_abs_dev_high"]
    assert agg["mean_p_female_low"] < 0.441 < agg["mean_p_female_high"]


# ----------------------------------------------------------------------------- issue 18 checks

def _cells(n_female, n_male, **extra):
    size = len(n_female)
    return pl.DataFrame({"subject": [f"s{i}" for i in range(size)], "lang": "en", "formulation": "direct",
                         "n_female": n_female, "n_male": n_male, **extra})


def test_fractional_and_inconsistent_counts_are_errors_naming_the_row():
    with pytest.raises(InputError, match=r"'n_female', row 2: 2.5 is not a count"):
        stats.per_prompt(_cells([1.0, 2.5], [3, 3]))
    with pytest.raises(InputError, match=r"row 3: n_images 9 differs from 8"):
        stats.per_prompt(_cells([1, 2, 2], [3, 3, 3], n_images=[8, 8, 9]))
    with pytest.raises(InputError, match=r"row 1: n_images 3 is less than"):
        stats.per_prompt(_cells([1, 2], [3, 3], n_images=[3, 8]))
    assert stats.per_prompt(_cells([1, 2], [3, 3], n_images=[8, 8]))["n_images"].to_list() == [8, 8]


def test_abs_dev_estimator_is_unbiased_at_parity_and_near_the_edges():
    for n in (8, 20, 100):
        k = np.arange(n + 1)
        h = stats.abs_dev_estimator(k, np.full(n + 1, n))
        assert sps.binom.pmf(k, n, 0.5) @ h == pytest.approx(0.0, abs=1e-10)
        # the raw term is biased by the whole noise floor at parity; h removes it
        assert sps.binom.pmf(k, n, 0.5) @ np.abs(k / n - 0.5) == pytest.approx(stats.noise_floor(n))
        assert sps.binom.pmf(k, n, 0.02) @ h == pytest.approx(0.48, abs=0.005)


def test_binomial_pmf_rows_match_scipy_including_p_at_0_and_1():
    from magbig.stats.shares import binom_pmf_rows
    p = np.array([0.0, 1e-9, 0.03, 0.5, 0.77, 1.0])
    for n in (1, 2, 7, 128, 500):
        expected = sps.binom.pmf(np.arange(n + 1)[None, :], n, p[:, None])
        np.testing.assert_allclose(binom_pmf_rows(n, p), expected, rtol=1e-9, atol=1e-13)


def test_bootstrap_binomial_draws_follow_binomial_n_p_per_subject():
    # The cluster bootstrap's stage 2 draws k* by inverse CDF through a guide table: each
    # subject's draws must be Binomial(n_i, k_i / n_i) (chi-square goodness of fit and moments),
    # including p̂ = 0 and 1, and never leave 0..n_i.
    from magbig.stats.aggregates import _binomial_by_inverse_cdf
    k, n = np.array([0, 3, 64, 127, 128, 5, 2]), np.array([128, 128, 128, 128, 128, 10, 3])
    idx = np.random.default_rng(4).integers(0, len(n), size=(60_000, len(n)))
    draws = _binomial_by_inverse_cdf(k, n, idx, np.random.default_rng(5))
    for i in range(len(n)):
        x = draws[idx == i]
        assert x.min() >= 0 and x.max() <= n[i]
        if k[i] in (0, n[i]):
            assert (x == k[i]).all()
            continue
        expected = sps.binom.pmf(np.arange(n[i] + 1), n[i], k[i] / n[i]) * len(x)
        observed = np.bincount(x, minlength=n[i] + 1)
        keep = expected > 5  # pool the thin tails into one cell
        obs = np.append(observed[keep], observed[~keep].sum())
        exp = np.append(expected[keep], expected[~keep].sum())
        obs, exp = (obs, exp) if exp[-1] > 0 else (obs[:-1], exp[:-1])
        chi2 = ((obs - exp) ** 2 / exp).sum()
        assert sps.chi2.sf(chi2, len(exp) - 1) > 1e-3, (i, chi2)
        assert x.mean() == pytest.approx(k[i], abs=4 * math.sqrt(k[i] * (1 - k[i] / n[i]) / len(x)))
    # Draw by draw: the same uniforms (the sampler's first use of its generator) through each
    # subject's exact CDF give the same k* = min{j : F(j) > u}, guide-table shortcut or not.
    u = np.random.default_rng(5).random(idx.shape)
    cdfs = [sps.binom.cdf(np.arange(m + 1), m, j / m) for j, m in zip(k, n, strict=True)]
    expected = np.array([np.searchsorted(cdfs[i], ui, side="right") for i, ui in zip(idx.ravel(), u.ravel())])
    np.testing.assert_array_equal(draws.ravel(), expected)


def test_no_zero_width_interval_is_printed_as_certainty():
    one = stats.aggregate(stats.per_prompt(_cells([3], [5])), n_boot=200).row(0, named=True)
    assert one["mean_abs_dev_low"] < one["mean_abs_dev_high"] and one["mean_p_female_low"] < one["mean_p_female_high"]
    assert "one subject" in one["interval_note"]
    extreme = stats.aggregate(stats.per_prompt(_cells([0, 0, 8], [8, 8, 0])), n_boot=200).row(0, named=True)
    assert extreme["mean_abs_dev_low"] < extreme["mean_abs_dev"] == 0.5
    assert "same estimate" in extreme["interval_note"]
    for row in (one, extreme):
        for name in ("p_female", "abs_dev", "l1"):
            assert row[f"mean_{name}_low"] <= row[f"mean_{name}"] <= row[f"mean_{name}_high"]
    normal = stats.aggregate(stats.per_prompt(_cells([1, 2, 5, 7], [7, 6, 3, 1])), n_boot=200)
    assert normal["interval_note"].to_list() == [None]


def test_paired_tests_unknown_reference_is_an_error():
    pp = stats.per_prompt(pl.concat([_cells([1, 2], [3, 3]), _cells([2, 2], [2, 3]).with_columns(lang=pl.lit("de"))]))
    with pytest.raises(InputError, match=r"reference 'fr' is not a value of 'lang'.*de, en"):
        stats.paired_tests(pp, against="lang", reference="fr")
    assert stats.paired_tests(pp, against="lang", reference="fr", missing_reference="empty").height == 0


def test_paired_abs_dev_is_compared_at_a_common_n():
    # Same true shares, n = 100 vs 25: compared at n = 25, the terms agree in expectation.
    rng = np.random.default_rng(3)
    p = rng.uniform(0.3, 0.7, 2000)
    k_en, k_fr = rng.binomial(100, p), rng.binomial(25, p)
    df = pl.concat([_cells(k_en, 100 - k_en), _cells(k_fr, 25 - k_fr).with_columns(lang=pl.lit("fr"))])
    res = stats.paired_tests(stats.per_prompt(df), against="lang", reference="en", n_perm=999, n_boot=200)
    row = res.row(0, named=True)
    assert "common n" in row["metric_column"]
    assert abs(row["mean_diff"]) < 0.006  # about 3 standard errors at 2,000 pairs
    plain = stats.paired_tests(stats.per_prompt(df).drop("n_labelled"), against="lang", reference="en",
                               n_perm=999, n_boot=200).row(0, named=True)
    assert plain["mean_diff"] > 0.01  # the noise floor at n = 25 alone makes fr look more skewed


def test_kappa_maps_label_aliases():
    assert stats.cohen_kappa(["woman", "Man", "female", "male"], ["female", "male", "woman", "man"]) == 1.0


def test_expected_max_unfairness_reports_draws_and_monte_carlo_error():
    pp = stats.per_prompt(_cells([1, 2, 5, 7], [7, 6, 3, 1]))
    row = stats.expected_max_unfairness(pp, n_samples=400).row(0, named=True)
    assert row["n_subjects_drawn"] == 4
    assert row["exp_max_l1_mcse"] == pytest.approx(row["exp_max_l1_std"] / math.sqrt(400), rel=0.01)


@pytest.mark.slow
@pytest.mark.parametrize("scenario,truth", [("all 0.5", 0.0), ("spread", 0.15)])
def test_mean_abs_dev_interval_covers_by_simulation(scenario, truth):
    rng = np.random.default_rng(7)
    shares = (np.full((300, 50), 0.5) if scenario == "all 0.5" else rng.uniform(0.2, 0.8, (300, 50)))
    k = rng.binomial(20, shares)
    counts = pl.DataFrame({"sim": np.repeat(np.arange(300), 50), "subject": np.tile([f"s{j}" for j in range(50)], 300),
                           "n_female": k.ravel(), "n_male": (20 - k).ravel()})
    agg = stats.aggregate(stats.per_prompt(counts, group_cols=("sim", "subject")), by=("sim",), n_boot=50)
    lo, hi, est = agg["mean_abs_dev_low"].to_numpy(), agg["mean_abs_dev_high"].to_numpy(), agg["mean_abs_dev"].to_numpy()
    assert 0.91 <= np.mean((lo <= truth) & (truth <= hi)) <= 0.98
    assert np.all((lo <= est) & (est <= hi))


def test_prompts_with_one_labelled_image_are_left_out_of_abs_dev_and_said_so():
    # h_1 is 0 whatever the label: one image cannot tell a prompt's distance from parity, so it
    # must not pull the mean towards 0 nor make a zero-width interval look certain.
    ones = pl.DataFrame({"subject": [f"s{i}" for i in range(30)], "n_female": [1] * 30, "n_male": [0] * 30})
    row = stats.aggregate(stats.per_prompt(ones), by=(), n_boot=200).row(0, named=True)
    assert row["mean_abs_dev"] is None and row["mean_abs_dev_low"] is None and row["mean_l1"] is None
    assert "one labelled image" in row["interval_note"] and row["mean_abs_dev_raw"] == 0.5
    rng = np.random.default_rng(3)
    k = rng.binomial(20, 0.9, 20)
    mixed = pl.DataFrame({"subject": [f"s{i}" for i in range(30)],
                          "n_female": [1] * 10 + k.tolist(), "n_male": [0] * 10 + (20 - k).tolist()})
    only_many = mixed.filter(pl.col("n_female") + pl.col("n_male") > 1)
    got = stats.aggregate(stats.per_prompt(mixed), by=(), n_boot=200).row(0, named=True)
    want = stats.aggregate(stats.per_prompt(only_many), by=(), n_boot=200).row(0, named=True)
    assert got["mean_abs_dev"] == pytest.approx(want["mean_abs_dev"])
    assert got["mean_abs_dev_high"] == pytest.approx(want["mean_abs_dev_high"])
    assert "10 prompt(s) with one labelled image left out" in got["interval_note"]
