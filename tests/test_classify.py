"""magbig.classifiers: the deepface, clip and world backends, offline, on real code paths.

deepface runs its real gender network (random weights built by magbig.testing into a tmp
DEEPFACE_HOME) behind its real OpenCV detector on a real photo (skimage's astronaut); CLIP is a
tiny random CLIPModel loaded through from_pretrained; world reads rendered world portraits.
Random weights mean the scores say nothing about anyone: tests check statuses, shapes,
batching and bookkeeping, never accuracy.
"""

from __future__ import annotations

import json
import os

import numpy as np
import polars as pl
import pytest
from PIL import Image

skimage_data = pytest.importorskip("skimage.data")

from magbig import classifiers as C  # noqa: E402
from magbig.classifiers.base import scored_result  # noqa: E402
from magbig.testing import build_clip_model, build_deepface_gender_weights  # noqa: E402
from neobabel.errors import InputError, ModelNotAvailableError  # noqa: E402
from neobabel.scorers.clip import CLIP_DEFAULT_REVISION  # noqa: E402
from neobabel.world.detect import Reading  # noqa: E402
from neobabel.world.render import render  # noqa: E402
from neobabel.world.spec import Portrait  # noqa: E402

_INITIAL_DEEPFACE_HOME = os.environ.get("DEEPFACE_HOME")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """These models are tiny or run a handful of images: on a shared 2-core machine one
    intra-op thread is as fast and avoids oversubscription stalls (100x on tiny ops)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# ----------------------------------------------------------------------------- images


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(skimage_data.astronaut())  # 512x512, one face


@pytest.fixture(scope="module")
def two_astronauts(astronaut) -> Image.Image:
    a = np.asarray(astronaut)
    return Image.fromarray(np.concatenate([a, a], axis=1))


@pytest.fixture(scope="module")
def blank() -> Image.Image:
    return Image.new("RGB", (256, 256), (128, 128, 128))


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, astronaut):
    """Unreadable inputs: truncated PNG, random bytes, missing file, a directory, empty file."""
    d = tmp_path_factory.mktemp("bad")
    good = d / "good.png"
    astronaut.save(good)
    data = good.read_bytes()
    (d / "truncated.png").write_bytes(data[: len(data) // 2])
    (d / "random.png").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (d / "empty.png").write_bytes(b"")
    (d / "folder.png").mkdir()
    return {
        "good": good,
        "bad": [d / "truncated.png", d / "random.png", d / "missing.png", d / "folder.png", d / "empty.png"],
    }


def _check_invariants(df: pl.DataFrame) -> None:
    assert df.columns == list(C.LABELS_SCHEMA)
    assert dict(df.schema) == C.LABELS_SCHEMA
    for row in df.iter_rows(named=True):
        assert row["status"] in C.STATUSES
        if row["p_female"] is not None:
            assert row["status"] in ("ok", "uncertain"), row
        assert (row["label"] is not None) == (row["status"] == "ok"), row
        if row["status"] == "ok":
            assert 0.0 <= row["p_female"] <= 1.0
            assert row["label"] == ("female" if row["p_female"] > 0.5 else "male")
        if row["status"] == "error":
            assert row["detail"]


# ----------------------------------------------------------------------------- registry


def test_registry_names_and_bad_options():
    assert set(C.CLASSIFIERS) == {"deepface", "clip", "world"}
    with pytest.raises(InputError, match="unknown classifier 'fairface'.*deepface, clip, world"):
        C.get_classifier("fairface")
    with pytest.raises(InputError, match="unknown option 'detector'.*detector_backend"):
        C.get_classifier("deepface", detector="opencv")
    with pytest.raises(InputError, match="uncertain_margin"):
        C.get_classifier("world", uncertain_margin=0.7)
    with pytest.raises(InputError, match="batch_size"):
        C.get_classifier("world", batch_size=0)


def test_magbig_classify_still_exports_the_public_names():
    from magbig import classify as old  # the compatibility module over magbig.classifiers

    clip_loaders = {"load_clip_model", "resolve_clip_model"}  # from neobabel.scorers.clip
    assert all(getattr(old, name) is getattr(C, name) for name in set(old.__all__) - clip_loaders)
    assert old.read_image is C.read_image and old.ImageRefusedError is C.ImageRefusedError


# ----------------------------------------------------------------------------- world


@pytest.fixture(scope="module")
def world_images():
    out = {}
    for pres in ("feminine", "masculine", "ambiguous"):
        out[pres] = [render(Portrait(occ, pres, tone), seed) for seed, (occ, tone) in
                     enumerate([("doctor", 0), ("nurse", 2), ("firefighter", 4)])]
    return out


def test_world_backend_maps_presentations(world_images):
    clf = C.get_classifier("world")
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    empty = Image.new("RGB", (64, 64), (150, 150, 150))
    images = world_images["feminine"] + world_images["masculine"] + world_images["ambiguous"] + [noise, empty]
    rows = clf.classify(images)
    assert [r.status for r in rows] == ["ok"] * 6 + ["uncertain"] * 3 + ["no_face"] * 2
    assert [r.label for r in rows[:6]] == ["female"] * 3 + ["male"] * 3
    assert [r.p_female for r in rows[:9]] == [1.0] * 3 + [0.0] * 3 + [0.5] * 3
    assert [r.faces for r in rows] == [1] * 9 + [0, 0]
    assert all(r.classifier == "world" for r in rows)
    assert rows[0].key == "#0" and rows[10].key == "#10"
    _check_invariants(C.results_frame(rows))


def test_world_undetermined_presentation_is_uncertain_without_score(monkeypatch, world_images):
    clf = C.get_classifier("world")
    monkeypatch.setattr(clf, "_read", lambda im: Reading("portrait", "presentation_undetermined", (64, 64),
                                                         person_found=True, occupation="doctor"))
    r = clf.classify(world_images["feminine"][:1])[0]
    assert (r.faces, r.status, r.p_female, r.label) == (1, "uncertain", None, None)
    assert "undetermined" in r.detail


def test_classify_paths_turns_unreadable_files_into_error_rows(tmp_path, world_images, bad_files):
    paths = []
    for i, im in enumerate(world_images["feminine"][:2] + world_images["masculine"][:1]):
        p = tmp_path / f"w{i}.png"
        im.save(p)
        paths.append(p)
    # bad files in the middle of a batch must not shift the rows of the good ones
    order = [paths[0], *bad_files["bad"], paths[1], paths[2]]
    df = C.classify_paths(order, "world", batch_size=4)
    _check_invariants(df)
    assert df["key"].to_list() == [str(p) for p in order]
    assert df["status"].to_list() == ["ok"] + ["error"] * 5 + ["ok", "ok"]
    assert df["label"].to_list() == ["female"] + [None] * 5 + ["female", "male"]
    details = df.filter(pl.col("status") == "error")["detail"].to_list()
    assert all(d.startswith("cannot read image:") for d in details)
    assert "truncated" in details[0].lower()
    assert "FileNotFoundError" in details[2]


def test_classify_paths_keys_progress_and_empty(tmp_path, world_images):
    p = tmp_path / "a.png"
    world_images["masculine"][0].save(p)
    seen = []
    df = C.classify_paths([p, p, p], C.get_classifier("world", alias="world-exact"), batch_size=2,
                          keys=["k1", "k2", "k3"], progress=lambda done, total: seen.append((done, total)))
    assert df["key"].to_list() == ["k1", "k2", "k3"]
    assert df["classifier"].unique().to_list() == ["world-exact"]
    assert seen == [(2, 3), (3, 3)]
    empty = C.classify_paths([], "world")
    assert empty.height == 0 and dict(empty.schema) == C.LABELS_SCHEMA
    with pytest.raises(InputError, match="2 keys for 3 paths"):
        C.classify_paths([p, p, p], "world", keys=["a", "b"])


def test_uncertain_margin_rule():
    r = scored_result("k", "x", 1, 0.55, margin=0.1)
    assert (r.status, r.label, r.p_female) == ("uncertain", None, 0.55)
    r = scored_result("k", "x", 1, 0.65, margin=0.1)
    assert (r.status, r.label) == ("ok", "female")
    r = scored_result("k", "x", 1, 0.3, margin=0.0)
    assert (r.status, r.label) == ("ok", "male")
    assert scored_result("k", "x", 1, 0.5, margin=0.0).status == "uncertain"


# ----------------------------------------------------------------------------- CLIP


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return build_clip_model(tmp_path_factory.mktemp("clip") / "tiny-clip", seed=0)


@pytest.fixture(scope="module")
def clip_clf(clip_dir):
    return C.get_classifier("clip", model=str(clip_dir), batch_size=4, device="cpu")


def _clip_reference(clip_dir, images, male="man, male, masculine", female="woman, female, feminine"):
    """p_female computed independently: CLIPModel.forward's logits_per_image, softmax."""
    import torch
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(clip_dir, local_files_only=True).eval()
    proc = CLIPProcessor.from_pretrained(clip_dir, local_files_only=True)
    inputs = proc(text=[male, female], images=images, return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**inputs).logits_per_image
    return logits.softmax(dim=-1)[:, 1].numpy()


def test_clip_matches_clipmodel_forward_and_is_deterministic(clip_dir, clip_clf, astronaut, blank):
    images = [astronaut, blank, Image.fromarray(skimage_data.coffee()), Image.fromarray(skimage_data.chelsea())]
    rows = clip_clf.classify(images)
    p = np.array([r.p_female for r in rows])
    assert p.shape == (4,) and np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(p, _clip_reference(clip_dir, images), atol=1e-5)
    assert np.ptp(p) > 1e-3  # the scores depend on the image
    assert all(r.faces is None and r.status == "ok" for r in rows)  # no face detection by default
    again = C.get_classifier("clip", model=str(clip_dir), device="cpu").classify(images)
    assert [r.p_female for r in again] == pytest.approx(list(p), abs=1e-6)


def test_clip_batched_equals_one_at_a_time(clip_clf, astronaut, blank, world_images):
    images = [astronaut, blank, *world_images["feminine"], *world_images["masculine"]]
    batched = [r.p_female for r in clip_clf.classify(images, batch_size=8)]
    single = [clip_clf.classify([im], batch_size=1)[0].p_female for im in images]
    np.testing.assert_allclose(batched, single, atol=1e-5)
    odd = [r.p_female for r in clip_clf.classify(images, batch_size=3)]
    np.testing.assert_allclose(odd, single, atol=1e-5)


def test_clip_texts_template_and_margin(clip_dir, clip_clf, astronaut):
    base = clip_clf.classify([astronaut])[0].p_female
    swapped = C.get_classifier("clip", model=str(clip_dir), device="cpu",
                               male_texts="woman, female, feminine", female_texts="man, male, masculine")
    assert swapped.classify([astronaut])[0].p_female == pytest.approx(1 - base, abs=1e-6)
    templ = C.get_classifier("clip", model=str(clip_dir), device="cpu", template="a photo of a {}")
    assert templ.classify([astronaut])[0].p_female != pytest.approx(base, abs=1e-6)
    margin = abs(base - 0.5) + 0.01
    r = C.get_classifier("clip", model=str(clip_dir), device="cpu", uncertain_margin=margin).classify([astronaut])[0]
    assert (r.status, r.label) == ("uncertain", None) and r.p_female == pytest.approx(base)
    with pytest.raises(InputError, match="template"):
        C.get_classifier("clip", model=str(clip_dir), template="no placeholder")


def test_clip_face_filter(clip_dir, astronaut, two_astronauts, blank):
    clf = C.get_classifier("clip", model=str(clip_dir), device="cpu", face_filter=True)
    rows = clf.classify([astronaut, two_astronauts, blank])
    assert [(r.faces, r.status) for r in rows] == [(1, "ok"), (2, "multiple_faces"), (0, "no_face")]
    _check_invariants(C.results_frame(rows))


def test_clip_errors_name_the_model(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelNotAvailableError) as e:
        C.get_classifier("clip")
    msg = str(e.value)
    assert "openai/clip-vit-large-patch14" in msg and CLIP_DEFAULT_REVISION in msg and "hf download" in msg
    with pytest.raises(InputError, match="does not exist"):
        C.get_classifier("clip", model=str(tmp_path / "nope"))
    (tmp_path / "half").mkdir()
    with pytest.raises(InputError, match="cannot load a CLIP model"):
        C.get_classifier("clip", model=str(tmp_path / "half"))


def test_clip_config_is_provenance(clip_dir, clip_clf):
    cfg = clip_clf.config()
    assert cfg["backend"] == "clip" and cfg["model"] == str(clip_dir)
    assert cfg["male_texts"] == ["man, male, masculine"] and cfg["female_texts"] == ["woman, female, feminine"]
    assert len(cfg["model_fingerprint"]) == 16
    json.dumps(cfg)


# ----------------------------------------------------------------------------- deepface


@pytest.fixture(scope="module")
def deepface_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("deepface-home")
    build_deepface_gender_weights(home, seed=0)
    return home


@pytest.fixture()
def no_network(monkeypatch):
    """Record any attempt by deepface to reach the internet (and make it fail)."""
    from deepface.commons import weight_utils

    calls = []

    def refuse(*args, **kwargs):
        calls.append((args, kwargs))
        raise RuntimeError("network access attempted")

    monkeypatch.setattr(weight_utils.gdown, "download", refuse)
    monkeypatch.setattr(weight_utils.requests, "head", refuse)
    monkeypatch.setattr(weight_utils.requests, "get", refuse)
    return calls


@pytest.fixture(scope="module")
def deepface_clf(deepface_home):
    return C.get_classifier("deepface", home=deepface_home, device="cpu", batch_size=8)


def test_deepface_missing_weights_names_the_file(tmp_path, no_network):
    home = tmp_path / "empty-home"
    with pytest.raises(ModelNotAvailableError) as e:
        C.get_classifier("deepface", home=home)
    expected = str(home / ".deepface" / "weights" / "gender_model_weights.pth")
    assert expected in str(e.value)
    assert "gender_model_weights.pth" in str(e.value) and "DEEPFACE_HOME" in str(e.value)
    assert not home.exists()  # nothing created, nothing fetched
    assert no_network == []


def test_deepface_detector_weights_are_never_downloaded(deepface_home, no_network):
    # ssd needs two files deepface would fetch from the internet; here it must fail up front
    with pytest.raises(ModelNotAvailableError, match=r"deploy\.prototxt"):
        C.get_classifier("deepface", home=deepface_home, detector_backend="ssd")
    assert no_network == []
    with pytest.raises(InputError, match="unknown deepface detector 'haar'"):
        C.get_classifier("deepface", home=deepface_home, detector_backend="haar")


def test_deepface_corrupt_weights_are_an_input_error(tmp_path):
    w = C.deepface_gender_weights_path(tmp_path)
    w.parent.mkdir(parents=True)
    w.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot load deepface's gender weights"):
        C.get_classifier("deepface", home=tmp_path)


@pytest.fixture(scope="module")
def astro_row(deepface_clf, astronaut):
    return deepface_clf.classify([astronaut], keys=["astronaut"])[0]


def test_deepface_statuses_on_real_photos(deepface_clf, astro_row, two_astronauts, blank, no_network):
    assert (astro_row.key, astro_row.faces, astro_row.status) == ("astronaut", 1, "ok")
    assert astro_row.label in ("female", "male") and 0 < astro_row.p_female < 1
    rows = deepface_clf.classify([two_astronauts, blank], keys=["two", "blank"])
    assert [(r.key, r.faces, r.status) for r in rows] == [("two", 2, "multiple_faces"), ("blank", 0, "no_face")]
    assert rows[0].p_female is None and rows[1].p_female is None
    _check_invariants(C.results_frame([astro_row, *rows]))
    assert no_network == []


def test_deepface_matches_deepface_analyze(deepface_home, deepface_clf, astronaut, astro_row, monkeypatch, no_network):
    """Our batched path gives DeepFace.analyze's own numbers (same detector, same network)."""
    monkeypatch.setenv("DEEPFACE_HOME", str(deepface_home))
    from deepface import DeepFace

    darker = Image.fromarray((np.asarray(astronaut) * 0.7).astype(np.uint8))
    ours = [astro_row, deepface_clf.classify([darker])[0]]
    for im, row in zip([astronaut, darker], ours):
        bgr = np.asarray(im)[:, :, ::-1].copy()
        ref = DeepFace.analyze(bgr, actions=["gender"], detector_backend="opencv", enforce_detection=False, silent=True)
        assert len(ref) == row.faces == 1
        woman = float(ref[0]["gender"]["Woman"]) / 100
        assert row.p_female == pytest.approx(woman, abs=1e-5)
        assert row.label == ("female" if ref[0]["dominant_gender"] == "Woman" else "male")
    assert abs(ours[0].p_female - ours[1].p_female) > 1e-3  # the weights make scores depend on the face
    assert no_network == []


def test_deepface_batched_equals_one_at_a_time(deepface_clf, astronaut, blank, bad_files):
    a = np.asarray(astronaut)
    images = [astronaut, blank, bad_files["bad"][0], Image.fromarray(a[:, ::-1].copy())]
    keys = ["astro", "blank", "truncated", "mirrored"]
    batched = deepface_clf.classify(images, keys=keys, batch_size=4)
    single = [deepface_clf.classify([im], keys=[k], batch_size=1)[0] for im, k in zip(images, keys)]
    assert [r.status for r in batched] == ["ok", "no_face", "error", "ok"]
    assert [r.key for r in batched] == keys
    for b, s in zip(batched, single):
        assert (b.key, b.faces, b.status, b.label) == (s.key, s.faces, s.status, s.label)
        if b.p_female is not None:
            assert b.p_female == pytest.approx(s.p_female, abs=1e-5)
    assert abs(batched[0].p_female - batched[3].p_female) > 1e-4  # rows were not mixed up


def test_deepface_label_follows_the_woman_output(deepface_clf, astronaut, astro_row):
    """Pushing deepface's "Woman" output up must give label female and p_female near 1:
    catches a swapped Woman/Man index (the unbiased weights score the astronaut < 0.5)."""
    import torch
    from deepface.models.demography.DemographyUtils import GENDER_LABELS

    assert astro_row.p_female < 0.5
    bias = deepface_clf._client.model.predictions.bias
    saved = bias.detach().clone()
    try:
        with torch.no_grad():
            bias[GENDER_LABELS.index("Woman")] += 10.0
        r = deepface_clf.classify([astronaut])[0]
    finally:
        with torch.no_grad():
            bias.copy_(saved)
    assert (r.status, r.label) == ("ok", "female") and r.p_female > 0.99


def test_deepface_margin_and_config(deepface_home, deepface_clf, astronaut, astro_row):
    p = astro_row.p_female
    clf = C.get_classifier("deepface", home=deepface_home, device="cpu", uncertain_margin=abs(p - 0.5) + 0.01)
    assert clf._client is deepface_clf._client  # the 0.5 GB network is loaded once
    r = clf.classify([astronaut])[0]
    assert (r.status, r.label, r.faces) == ("uncertain", None, 1) and r.p_female == pytest.approx(p)
    cfg = deepface_clf.config()
    assert cfg["deepface_version"] == "0.0.103" and cfg["engine"] == "pytorch"
    assert cfg["detector_backend"] == "opencv" and cfg["weights"].startswith(str(deepface_home))
    assert len(cfg["weights_fingerprint"]) == 16
    # the backend points deepface at its home only while it runs
    assert os.environ.get("DEEPFACE_HOME") == _INITIAL_DEEPFACE_HOME


def test_deepface_min_face_confidence_filters_detections(deepface_home, astronaut):
    clf = C.get_classifier("deepface", home=deepface_home, device="cpu", min_face_confidence=0.999)
    r = clf.classify([astronaut])[0]
    assert (r.faces, r.status) == (0, "no_face")
