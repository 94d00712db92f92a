"""VQA backends: tiny random BLIP VQA and PaliGemma saved and loaded back through the real code."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from eval_fixtures import build_tiny_blip_vqa, build_tiny_paligemma
from neobabel.errors import ModelNotAvailableError
from neobabel.scorers import vqa


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("vqa")
    return {"blip": build_tiny_blip_vqa(root / "blip"), "paligemma": build_tiny_paligemma(root / "pg")}


def _images():
    # structured pixels: a tiny random vision tower barely separates flat colours
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (s, s, 3), dtype=np.uint8)) for s in (40, 24, 40)]


QUESTIONS = ["is there a red circle?", "are there two squares left of the blue circle?", "is there a square?"]


@pytest.mark.parametrize("kind", ["blip", "paligemma"])
def test_p_yes_is_a_probability_and_batch_invariant(models, kind):
    backend = vqa.load_vqa(kind, str(models[kind]), device="cpu")
    assert backend.reference is False and kind in backend.name
    p = backend.p_yes(_images(), QUESTIONS)
    assert p.shape == (3,) and np.all((p > 0) & (p < 1))
    # one at a time gives the same answers as the padded batch
    backend.batch_size = 1
    single = backend.p_yes(_images(), QUESTIONS)
    np.testing.assert_allclose(single, p, atol=1e-5)


@pytest.mark.parametrize("kind", ["blip", "paligemma"])
def test_p_yes_is_the_softmax_of_the_yes_and_no_logits(models, kind):
    import torch

    backend = vqa.load_vqa(kind, str(models[kind]), device="cpu")
    with torch.inference_mode():
        logits = backend._first_token_logits(_images()[:1], QUESTIONS[:1])[0]
    want = torch.softmax(torch.stack([logits[backend.yes_id], logits[backend.no_id]]), 0)[0].item()
    assert backend.p_yes(_images()[:1], QUESTIONS[:1])[0] == pytest.approx(want, abs=1e-6)
    assert backend.yes_id != backend.no_id


def test_blip_answer_changes_with_the_question_and_image(models):
    backend = vqa.load_vqa("blip", str(models["blip"]), device="cpu")
    p = backend.p_yes([_images()[0]] * 3, QUESTIONS)
    assert len(set(np.round(p, 6))) > 1
    q = backend.p_yes(_images(), [QUESTIONS[0]] * 3)
    assert len(set(np.round(q, 6))) > 1


def test_missing_model_is_one_paragraph(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="not in the local Hugging Face cache") as e:
        vqa.load_vqa("blip", device="cpu")  # the pinned hub id, never downloaded
    assert "hf download Salesforce/blip-vqa-base --revision" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        vqa.load_vqa("paligemma", str(tmp_path / "nope"), device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotAvailableError, match="cannot load"):
        vqa.load_vqa("blip", str(tmp_path / "empty"), device="cpu")
