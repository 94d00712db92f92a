"""neobabel.scorers.clip: the one CLIP encoder, against the computation classify and
alignment each did before they shared it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from magbig.testing import build_clip_model
from neobabel.errors import InputError
from neobabel.scorers.clip import ClipEncoder

TEXTS = ["man, male, masculine", "woman, female, feminine", "a photo of the face of a doctor",
         "एक डॉक्टर के चेहरे की तस्वीर"]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return build_clip_model(tmp_path_factory.mktemp("clip") / "tiny-clip", seed=0)


@pytest.fixture(scope="module")
def encoder(clip_dir):
    return ClipEncoder.load(clip_dir, device="cpu")


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (40 + 8 * i, 48, 3), dtype=np.uint8)) for i in range(5)]


def _previous_code_path(clip_dir, images, texts):
    """What ClipClassifier and alignment's scorer computed inline before (transformers
    directly: processor parts, get_*_features, pooler_output, L2 normalization)."""
    import torch
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(clip_dir, local_files_only=True).eval()
    processor = CLIPProcessor.from_pretrained(clip_dir, local_files_only=True)

    def pooled(out):
        return out if hasattr(out, "shape") else out.pooler_output

    with torch.inference_mode():
        pixels = processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
        img = pooled(model.get_image_features(pixel_values=pixels.to(model.dtype))).float()
        tok = processor.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        txt = pooled(model.get_text_features(**tok)).float()
    return img / img.norm(dim=-1, keepdim=True), txt / txt.norm(dim=-1, keepdim=True)


def test_encodings_equal_the_previous_code_path(clip_dir, encoder, images):
    import torch

    img_ref, txt_ref = _previous_code_path(clip_dir, images, TEXTS)
    img, txt = encoder.encode_images(images), encoder.encode_texts(TEXTS)
    assert img.shape == img_ref.shape and txt.shape == txt_ref.shape
    assert torch.equal(img, img_ref) and torch.equal(txt, txt_ref)
    assert torch.allclose(img.norm(dim=-1), torch.ones(len(images)))


def test_batches_give_the_same_rows(encoder, images):
    import torch

    whole = encoder.encode_images(images)
    torch.testing.assert_close(encoder.encode_images(images, batch_size=2), whole, atol=1e-6, rtol=0)
    assert encoder.encode_texts([], batch_size=3).shape == (0, whole.shape[1])


def test_long_texts_are_counted_and_truncated(encoder):
    long = " ".join(["doctor"] * 200)
    assert encoder.max_tokens == 77
    assert encoder.token_counts([long, "a doctor"])[0] > encoder.max_tokens
    assert encoder.encode_texts([long]).shape[0] == 1  # truncated, not an error


def test_loading_errors_name_the_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        ClipEncoder.load(tmp_path / "nope", device="cpu")
    with pytest.raises(InputError, match="unknown device"):
        ClipEncoder.load(tmp_path, device="tpu-please")
