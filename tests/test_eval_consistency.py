"""CLC/CSS: image embedders (tiny random CLIP and DINOv2), code-switched captions, pairing,
scores and bootstrap summaries."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from PIL import Image

from eval_fixtures import build_tiny_clip, build_tiny_dinov2
from neobabel.errors import ModelNotAvailableError
from neobabel.eval import consistency as cons
from neobabel.languages import LANGUAGE_CODES
from neobabel.scorers.embed import load_embedder
from neobabel.world.codeswitch import code_switched_caption, code_switched_pair
from neobabel.world.dense import DenseScene, Group, render_dense


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("embed")
    return {"clip": load_embedder("clip", str(build_tiny_clip(root / "clip")), device="cpu"),
            "dinov2": load_embedder("dinov2", str(build_tiny_dinov2(root / "dino")), device="cpu")}


def _noise(seed, size=40):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


@pytest.mark.parametrize("kind", ["clip", "dinov2"])
def test_embeddings_are_normalized_and_batch_invariant(encoders, kind):
    enc = encoders[kind]
    ims = [_noise(0), _noise(1), _noise(0)]
    v = enc.embed(ims)
    assert v.shape[0] == 3 and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[2] == pytest.approx(1.0, abs=1e-5) and v[0] @ v[1] < 0.9999
    enc.batch_size = 1
    np.testing.assert_allclose(enc.embed(ims), v, atol=1e-5)


def test_missing_encoder_is_one_paragraph(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="facebook/dinov2-base@f9e44c8"):
        load_embedder("dinov2", device="cpu")
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        load_embedder("dinov2", str(tmp_path / "none"), device="cpu")


def test_code_switched_captions():
    objs = [("circle", "red", 2), ("square", "blue", 1)]
    assert code_switched_pair("fr", objs, "left of") == {
        "cs_en_first": "a photo of two red circles left of un carré bleu",
        "cs_en_second": "Une photo de deux cercles rouges à gauche de a blue square"}
    # Russian embeds the case its own relation governs; Korean particles follow the English phrase
    assert code_switched_caption("en", "ru", objs, "left of").endswith("синего квадрата")
    assert code_switched_caption("ko", "en", objs, None) == "빨간 원 두 개와 a blue square가 있는 사진"
    for lang in LANGUAGE_CODES:
        if lang == "en":
            continue
        pair = code_switched_pair(lang, objs, "above")
        assert pair["cs_en_first"].startswith("a photo of two red circles above ")
        assert "a blue square" in pair["cs_en_second"] and "red" not in pair["cs_en_second"]


def test_world_prompts_cover_languages_and_variants():
    prompts = cons.world_consistency_prompts(3, ["en", "de", "ja"])
    kinds = {(p.lang, p.variant) for p in prompts}
    assert kinds == {("en", "native"), ("de", "native"), ("ja", "native"), ("de", "cs_en_first"),
                     ("de", "cs_en_second"), ("ja", "cs_en_first"), ("ja", "cs_en_second")}
    assert len(prompts) == 3 * 7


def test_clc_and_parse_agreement_on_world_renders(encoders):
    a = DenseScene((Group("circle", "red", 2), Group("square", "blue", 1)), "left of")
    b = DenseScene((Group("star", "green", 1), Group("cross", "yellow", 1)), "above")
    images = [render_dense(a, 0), render_dense(a, 0), render_dense(b, 0),  # p0: en, de (same), ja (other)
              render_dense(b, 1), render_dense(b, 1), render_dense(b, 1)]  # p1: en, de, ja all the same
    table = pl.DataFrame({"prompt_id": ["p0"] * 3 + ["p1"] * 3, "lang": ["en", "de", "ja"] * 2,
                          "variant": ["native"] * 6, "seed": [0] * 6, "image_index": list(range(6))})
    pairs = cons.pair_images(table)
    assert pairs.height == 4
    scores = cons.score_pairs(pairs, images, {k: v.embed for k, v in encoders.items()}, world_parse=True)
    s = cons.summarize(scores)
    parse = s["CLC"]["world-parse"]
    assert parse["de"]["mean"] == 1.0 and parse["ja"]["mean"] == 0.5 and parse["ja"]["prompts"] == 2
    # p0 ja: {circle, circle, square} vs {star, cross} share nothing; p1 ja: identical
    assert s["CLC"]["world-objects"]["ja"]["mean"] == 0.5
    for enc in ("clip", "dinov2"):
        assert s["CLC"][enc]["de"]["mean"] == pytest.approx(1.0, abs=1e-4)
        ja = s["CLC"][enc]["ja"]
        assert ja["mean"] < 1.0 and ja["lo"] <= ja["mean"] <= ja["hi"]
    assert "| de |" in cons.format_markdown(s)


def test_mean_interval_is_students_t_and_guards_all_agreeing_prompts():
    from scipy import stats

    v = np.array([0.2, 0.4, 0.9, 1.0])
    m, lo, hi = cons.mean_interval(v)
    ref = stats.t.interval(0.95, v.size - 1, loc=v.mean(), scale=stats.sem(v))
    assert m == pytest.approx(0.625) and (lo, hi) == pytest.approx(ref)
    # eight prompts that all agree: not a zero-width interval for a 0/1 metric
    m, lo, hi = cons.mean_interval(np.ones(8), discrete=True)
    assert m == 1.0 and hi == 1.0 and lo < 0.9
    x = np.r_[np.ones(8), 0.0, 1.0]
    assert lo == pytest.approx(x.mean() - stats.t.ppf(0.975, 7) * x.std(ddof=1) / np.sqrt(10))
    assert np.isnan(cons.mean_interval(np.array([0.5]))[1])


def test_objects_jaccard_is_a_multiset_overlap():
    a = [("circle", "red"), ("circle", "red"), ("square", "blue")]
    assert cons.objects_jaccard(a, a) == 1.0 and cons.objects_jaccard([], []) == 1.0
    assert cons.objects_jaccard(a, [("circle", "red"), ("square", "blue")]) == pytest.approx(2 / 3)
    assert cons.objects_jaccard(a, [("star", "red")]) == 0.0


def test_world_parse_does_not_score_images_it_cannot_read():
    """Two images the world detector cannot read (real photos, noise) must not "agree": their
    pair is unscored (null) and counted, not a perfect 1.0."""
    import numpy as np
    import polars as pl
    from PIL import Image

    from neobabel.eval import consistency as cons

    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    flat = Image.new("RGB", (64, 64), (20, 40, 200))
    pairs = pl.DataFrame({"prompt_id": ["p"], "seed": [0], "lang": ["de"], "variant": [cons.NATIVE],
                          "en_index": [0], "other_index": [1]})
    scores = cons.score_pairs(pairs, [noise, flat], world_parse=True)
    assert scores["value"].null_count() == scores.height == 2
    cell = cons.summarize(scores)["CLC"][cons.PARSE_ENCODER]["de"]
    assert cell["mean"] is None and cell["unscored_pairs"] == 1 and cell["prompts"] == 0
