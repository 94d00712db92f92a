"""m-GenEval backends: tiny random Mask2Former, OWLv2 and CLIP saved with save_pretrained and
loaded back through the real loading code; GenEval's colour rule; missing models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from neobabel.errors import InputError, ModelNotAvailableError
from neobabel.eval.geneval import evaluate_detections
from neobabel.scorers.detection import Detection
from neobabel.scorers.detector import (
    COLOR_TEMPLATES, MASK2FORMER_DEFAULT_MODEL, OWLV2_DEFAULT_MODEL, ClipColorClassifier, Mask2FormerDetector,
    Owlv2Detector, mask_to_box,
)
from neobabel.testing import build_tiny_mask2former, build_tiny_owlv2


def _images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)),
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))]


@pytest.fixture(scope="module")
def m2f_dir(tmp_path_factory):
    return build_tiny_mask2former(tmp_path_factory.mktemp("m2f"), labels=("a", "b", "c"))


def test_mask2former_gives_the_detection_contract_with_masks_at_image_size(m2f_dir):
    det = Mask2FormerDetector.load(m2f_dir, device="cpu", class_names=("cat", "dog", "person"))
    images = _images()
    out = det.detect(images)
    assert len(out) == 2
    for im, dets in zip(images, out):
        assert len(dets) == 8 * 3  # mmdet: top-k over queries x classes (k = min(100, Q*C))
        for d in dets:
            assert d.label in {"cat", "dog", "person"}  # GenEval's names, by class index
            assert d.mask.shape == (im.size[1], im.size[0]) and d.mask.dtype == bool
            assert d.box == mask_to_box(d.mask) and 0.0 <= d.score <= 1.0
    assert "non-reference backend" in det.note and not det.reference


def test_mask2former_batched_equals_one_at_a_time(m2f_dir):
    det = Mask2FormerDetector.load(m2f_dir, device="cpu")
    images = _images() + [_images()[0].rotate(180), _images()[1].rotate(90)]  # two sizes, two of each
    batched = det.detect(images, batch_size=2)
    single = [det.detect([im], batch_size=1)[0] for im in images]
    for a, b in zip(batched, single):
        assert [d.label for d in a] == [d.label for d in b]
        np.testing.assert_allclose([d.score for d in a], [d.score for d in b], atol=1e-4)


def test_mask2former_without_class_names_uses_the_configs_labels(m2f_dir):
    det = Mask2FormerDetector.load(m2f_dir, device="cpu")
    assert det.labels == ["a", "b", "c"]


def test_owlv2_detects_the_queried_classes(tmp_path):
    det = Owlv2Detector.load(build_tiny_owlv2(tmp_path / "owl"), device="cpu", min_score=0.0)
    out = det.detect(_images(), labels=["cat", "dog"])
    assert len(out) == 2 and all(len(d) > 0 for d in out)
    assert {d.label for dets in out for d in dets} <= {"cat", "dog"}
    assert all(d.mask is None for dets in out for d in dets)
    with pytest.raises(InputError, match="class names"):
        det.detect(_images())


def test_mask_to_box_is_mmdets_mask2bbox():
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    assert mask_to_box(m) == (3.0, 2.0, 9.0, 5.0)
    assert mask_to_box(np.zeros((4, 4), bool)) == (0.0, 0.0, 0.0, 0.0)


class _ColourWordEncoder:
    """Text embedding = one-hot of the colour word in the text; image embedding = one-hot of
    the reference colour nearest the crop's mean pixel (so a red crop reads red)."""

    REF = {"red": (220, 30, 30), "blue": (30, 70, 220), "green": (30, 160, 50)}

    def __init__(self):
        self.texts = []

    def encode_texts(self, texts):
        self.texts += list(texts)
        names = list(self.REF)
        return torch.stack([torch.eye(3)[[i for i, c in enumerate(names) if c in t][0]] for t in texts])

    def encode_images(self, images):
        names = list(self.REF)
        rows = []
        for im in images:
            mean = np.asarray(im, float).reshape(-1, 3).mean(0)
            k = int(np.argmin([np.linalg.norm(mean - np.array(self.REF[c])) for c in names]))
            rows.append(torch.eye(3)[k])
        return torch.stack(rows)


def test_colour_rule_composites_the_mask_over_999_and_crops_to_the_box():
    img = np.full((20, 20, 3), 255, np.uint8)
    img[5:10, 5:15] = (220, 30, 30)
    mask = np.zeros((20, 20), bool)
    mask[5:10, 5:12] = True
    clf = ClipColorClassifier(_ColourWordEncoder(), ("red", "blue", "green"))
    (crop,) = clf.crops(Image.fromarray(img), [Detection("cat", 0.9, (4.0, 5.0, 15.0, 10.0), mask)])
    arr = np.asarray(crop)
    assert crop.size == (11, 5)
    assert tuple(arr[0, 0]) == (153, 153, 153)  # outside the mask: #999
    assert tuple(arr[0, 2]) == (220, 30, 30) and tuple(arr[0, 9]) == (153, 153, 153)


def test_colour_classifier_uses_genevals_three_templates_per_colour_and_the_argmax():
    enc = _ColourWordEncoder()
    clf = ClipColorClassifier(enc, ("red", "blue", "green"))
    img = np.full((20, 40, 3), 150, np.uint8)
    img[:, :20] = (30, 70, 220)
    img[:, 20:] = (220, 30, 30)
    dets = [Detection("cat", 0.9, (0.0, 0.0, 20.0, 20.0)), Detection("cat", 0.8, (20.0, 0.0, 40.0, 20.0))]
    assert clf(Image.fromarray(img), dets) == ["blue", "red"]
    assert enc.texts == [t.format(c=c, cls="cat") for c in ("red", "blue", "green") for t in COLOR_TEMPLATES]
    spec = {"tag": "colors", "include": [{"class": "cat", "count": 1, "color": "blue"}]}
    assert evaluate_detections(spec, dets, Image.fromarray(img), clf).correct
    clf(Image.fromarray(img), dets)
    assert len(enc.texts) == 9  # one head per class, built once


def test_tiny_clip_colour_classifier_loads_through_the_real_code(tmp_path):
    from magbig.testing import build_clip_model

    clf = ClipColorClassifier.load(build_clip_model(tmp_path / "clip"), device="cpu",
                                   colors=("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown",
                                           "black", "white"))
    dets = [Detection("cat", 0.9, (0.0, 0.0, 40.0, 30.0), np.ones((48, 80), bool)),
            Detection("cat", 0.5, (10.0, 10.0, 60.0, 40.0))]
    colours = clf(_images()[0], dets)
    assert len(colours) == 2 and set(colours) <= set(clf.colors)
    assert colours == clf(_images()[0], dets)


@pytest.mark.parametrize("loader,model", [(Mask2FormerDetector.load, MASK2FORMER_DEFAULT_MODEL),
                                          (Owlv2Detector.load, OWLV2_DEFAULT_MODEL)])
def test_a_model_not_in_the_cache_is_a_one_paragraph_error(monkeypatch, tmp_path, loader, model):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelNotAvailableError) as exc:
        loader(model, device="cpu")
    msg = str(exc.value)
    assert model in msg and "hf download" in msg and "\n" not in msg


def test_a_folder_without_weights_is_a_one_paragraph_error(tmp_path):
    (tmp_path / "m").mkdir()
    with pytest.raises(ModelNotAvailableError, match="cannot load a Mask2Former model") as exc:
        Mask2FormerDetector.load(tmp_path / "m", device="cpu")
    assert "\n" not in str(exc.value)
    with pytest.raises(InputError, match="does not exist"):
        Owlv2Detector.load(str(tmp_path / "nope" / "x.bin"), device="cpu")
