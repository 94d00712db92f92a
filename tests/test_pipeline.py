"""neobabel.pipeline / backbones: tower and native modes, reproducibility, params, backends."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from neobabel.backbones import SCHEDULERS
from neobabel.errors import InputError
from neobabel.invariance import batch_invariant
from neobabel.pipeline import PIPELINE_CONFIG, BabelPipeline, GenerationParams, parse_size
from neobabel.registry import folder_fingerprint
from neobabel.tower import MultilingualTower, TowerConfig

PROMPTS = [
    "a photo of the face of a doctor",
    "ein Foto vom Gesicht einer Ärztin",
    "一张医生的脸部照片",
    "एक डॉक्टर के चेहरे की तस्वीर",
    "صورة لوجه طبيب",
]
LANGS = ["en", "de", "zh", "hi", "ar"]
SEEDS = [11, 3, 7, 0, 42]


def arrays(images) -> list[np.ndarray]:
    return [np.asarray(im) for im in images]


def same(a, b) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b))


@pytest.fixture(params=["tower-sd", "tower-sdxl", "native-sd"])
def any_pipe(request, load, babel_sd_dir, babel_sdxl_dir, tiny_sd_dir):
    src = {"tower-sd": babel_sd_dir, "tower-sdxl": babel_sdxl_dir, "native-sd": tiny_sd_dir}[request.param]
    return load(src)


# -- modes -------------------------------------------------------------------------------

def test_tower_sd_generates_images_of_the_asked_size(load, babel_sd_dir, fast):
    pipe = load(babel_sd_dir)
    assert (pipe.mode, pipe.family, pipe.attention) == ("tower", "sd", "sdpa")
    images = pipe.generate(PROMPTS[:2], LANGS[:2], SEEDS[:2], **{**fast, "width": 64, "height": 48})
    assert len(images) == 2
    for im in images:
        assert isinstance(im, Image.Image)
        assert im.size == (64, 48)  # (width, height)
        assert im.mode == "RGB"
    # The tower replaces the backbone's text encoder: diffusers has none to fall back on.
    assert pipe.pipe.text_encoder is None and pipe.pipe.tokenizer is None


def test_tower_sdxl_generates_images_of_the_asked_size(load, babel_sdxl_dir, fast):
    pipe = load(babel_sdxl_dir)
    assert (pipe.mode, pipe.family) == ("tower", "sdxl")
    assert pipe.pipe.text_encoder is None and pipe.pipe.text_encoder_2 is None
    images = pipe.generate(PROMPTS[:2], LANGS[:2], SEEDS[:2], **{**fast, "width": 48, "height": 64})
    assert [im.size for im in images] == [(48, 64), (48, 64)]


def test_native_sd_and_sdxl_folders_load(load, tiny_sd_dir, tiny_sdxl_dir, fast):
    sd = load(tiny_sd_dir)
    assert (sd.mode, sd.family) == ("native", "sd")
    assert sd.pipe.text_encoder is not None
    xl = load(tiny_sdxl_dir)
    assert (xl.mode, xl.family) == ("native", "sdxl")
    for pipe in (sd, xl):
        images = pipe.generate(["a photo of a cat"], "en", 0, **fast)
        assert images[0].size == (64, 64)


def test_tower_over_a_native_folder_ignores_its_clip(tiny_sd_dir, xlmr_dir, fast):
    """SD backbone + XLM-R tower: the composition the sd15-xlmr preset describes."""
    torch.manual_seed(0)
    tower = MultilingualTower.from_encoder(xlmr_dir, TowerConfig(out_dim=32, max_length=32))
    pipe = BabelPipeline.from_components(tiny_sd_dir, tower=tower, name="sd+xlmr")
    assert pipe.mode == "tower" and pipe.pipe.text_encoder is None
    a = arrays(pipe.generate(["ein Foto"], "de", [1], **fast))
    b = arrays(pipe.generate(["एक तस्वीर"], "hi", [1], **fast))
    assert a[0].shape == (64, 64, 3)
    assert not same(a, b)  # the tower's text conditions the image


def test_sdxl_backbone_needs_pooled_tower(babel_sdxl_dir, xlmr_dir, fast):
    tower = MultilingualTower.from_encoder(xlmr_dir, TowerConfig(out_dim=64, pooled_dim=0, max_length=32))
    pipe = BabelPipeline.from_components(babel_sdxl_dir, tower=tower)
    assert pipe.family == "sdxl"
    with pytest.raises(InputError, match="pooled"):
        pipe.generate(["a photo"], "en", 0, **fast)


# -- the diffusers-style equivalence test (native mode) ---------------------------------

@pytest.mark.parametrize("negative", [None, "blurry, low quality"])
def test_native_prompt_embeds_equal_prompt(load, tiny_sd_dir, fast, negative):
    """Passing prompt_embeds from encode_prompt to diffusers == BabelPipeline with the text."""
    pipe = load(tiny_sd_dir)
    text, seed = "a photo of a cat", 7
    ours = pipe.generate([text], "en", [seed], negative_prompt=negative or "", **fast)[0]

    dp = pipe.pipe
    embeds, neg_embeds = dp.encode_prompt(text, torch.device("cpu"), 1, True, negative_prompt=negative)
    ref = dp(prompt_embeds=embeds, negative_prompt_embeds=neg_embeds,
             generator=torch.Generator("cpu").manual_seed(seed), num_inference_steps=fast["steps"],
             guidance_scale=fast["guidance"], width=fast["width"], height=fast["height"]).images[0]
    assert np.array_equal(np.asarray(ours), np.asarray(ref))
    # And the check has teeth: another seed gives another image.
    other = dp(prompt_embeds=embeds, negative_prompt_embeds=neg_embeds,
               generator=torch.Generator("cpu").manual_seed(seed + 1), num_inference_steps=fast["steps"],
               guidance_scale=fast["guidance"], width=fast["width"], height=fast["height"]).images[0]
    assert not np.array_equal(np.asarray(ours), np.asarray(other))


def test_native_batch_equals_diffusers_per_image(load, tiny_sd_dir, fast):
    pipe = load(tiny_sd_dir)
    texts = ["a photo of a cat", "a photo of two red circles", "the face"]
    ours = arrays(pipe.generate(texts, "en", [5, 6, 7], batch_size=3, **fast))
    dp = pipe.pipe

    def reference(text, seed):
        embeds, neg = dp.encode_prompt(text, torch.device("cpu"), 1, True)
        return np.asarray(dp(prompt_embeds=embeds, negative_prompt_embeds=neg,
                             generator=torch.Generator("cpu").manual_seed(seed),
                             num_inference_steps=fast["steps"], guidance_scale=fast["guidance"],
                             width=64, height=64).images[0])

    for text, seed, img in zip(texts, [5, 6, 7], ours):
        # Same pipeline under the same op set: the same bits.
        with batch_invariant("cpu"):
            assert np.array_equal(img, reference(text, seed)), text
        # Plain diffusers rounds its vectorised ops differently, never by more than a grey level.
        plain = reference(text, seed).astype(int)
        assert np.abs(img.astype(int) - plain).max() <= 1, text


# -- reproducibility -----------------------------------------------------------------------

def test_images_identical_whatever_the_batch_size(any_pipe, fast):
    results = {b: arrays(any_pipe.generate(PROMPTS, LANGS, SEEDS, batch_size=b, **fast)) for b in (1, 3, 5)}
    assert same(results[1], results[3])
    assert same(results[1], results[5])
    # Not a degenerate comparison: the five images are not all alike.
    assert len({im.tobytes() for im in results[1]}) == 5


def test_seed_changes_image_and_order_does_not_matter(any_pipe, fast):
    base = arrays(any_pipe.generate(PROMPTS[:3], LANGS[:3], [1, 2, 3], batch_size=3, **fast))
    again = arrays(any_pipe.generate(PROMPTS[:3], LANGS[:3], [1, 2, 3], batch_size=3, **fast))
    assert same(base, again)  # deterministic across calls
    reseeded = arrays(any_pipe.generate(PROMPTS[:3], LANGS[:3], [101, 2, 3], batch_size=3, **fast))
    assert not np.array_equal(base[0], reseeded[0])
    assert same(base[1:], reseeded[1:])  # other images in the batch unaffected
    perm = [2, 0, 1]
    permuted = arrays(any_pipe.generate([PROMPTS[i] for i in perm], [LANGS[i] for i in perm],
                                        [[1, 2, 3][i] for i in perm], batch_size=3, **fast))
    assert same(permuted, [base[i] for i in perm])


def test_base_seed_means_consecutive_seeds(load, babel_sd_dir, fast):
    pipe = load(babel_sd_dir)
    a = arrays(pipe.generate(PROMPTS[:3], "en", 10, batch_size=2, **fast))
    b = arrays(pipe.generate(PROMPTS[:3], ["en"] * 3, [10, 11, 12], **fast))
    assert same(a, b)


def test_text_changes_image_in_tower_mode(load, babel_sd_dir, fast):
    pipe = load(babel_sd_dir)
    a, b = arrays(pipe.generate(PROMPTS[:2], LANGS[:2], [0, 0], **fast))
    assert not np.array_equal(a, b)


# -- negative prompts come from the tower ---------------------------------------------------

class _Spy:
    """Wraps the diffusers pipeline and records the kwargs of each call."""

    def __init__(self, inner):
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "calls", [])

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def __setattr__(self, name, value):
        setattr(self._inner, name, value)

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return self._inner(**kwargs)


@pytest.mark.parametrize("src", ["babel_sd_dir", "babel_sdxl_dir"])
def test_negative_prompt_is_encoded_by_the_tower(load, request, fast, src):
    pipe = load(request.getfixturevalue(src))
    spy = _Spy(pipe.pipe)
    pipe.pipe = spy
    plain = arrays(pipe.generate(PROMPTS[:2], LANGS[:2], [4, 5], batch_size=2, **fast))
    neg = arrays(pipe.generate(PROMPTS[:2], LANGS[:2], [4, 5], batch_size=2, negative_prompt="blurry, ugly",
                               **fast))
    assert not np.array_equal(plain[0], neg[0])  # guidance > 1: the negative prompt matters

    empty_call, neg_call = spy.calls
    assert "prompt" not in empty_call and "negative_prompt" not in empty_call
    empty_embeds, empty_pooled = pipe.tower.encode([""])
    blurry_embeds, blurry_pooled = pipe.tower.encode(["blurry, ugly"])
    # The unconditional branch is the tower's encoding of "" (not zeros, not a CLIP of its own).
    torch.testing.assert_close(empty_call["negative_prompt_embeds"], empty_embeds.expand(2, -1, -1),
                               rtol=1e-5, atol=1e-6)
    assert empty_call["negative_prompt_embeds"].abs().sum() > 0
    torch.testing.assert_close(neg_call["negative_prompt_embeds"], blurry_embeds.expand(2, -1, -1),
                               rtol=1e-5, atol=1e-6)
    if pipe.family == "sdxl":
        torch.testing.assert_close(empty_call["negative_pooled_prompt_embeds"], empty_pooled.expand(2, -1),
                                   rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(neg_call["negative_pooled_prompt_embeds"], blurry_pooled.expand(2, -1),
                                   rtol=1e-5, atol=1e-6)
        assert neg_call["pooled_prompt_embeds"].shape == (2, pipe.tower.config.pooled_dim)


def test_negative_prompt_irrelevant_without_guidance(load, babel_sd_dir, fast):
    pipe = load(babel_sd_dir)
    kw = {**fast, "guidance": 1.0}  # diffusers runs no unconditional branch at guidance <= 1
    a = arrays(pipe.generate(PROMPTS[:1], "en", [3], **kw))
    b = arrays(pipe.generate(PROMPTS[:1], "en", [3], negative_prompt="blurry", **kw))
    assert same(a, b)


def test_native_negative_prompt_changes_image(load, tiny_sd_dir, fast):
    pipe = load(tiny_sd_dir)
    a = arrays(pipe.generate(["a cat"], "en", [3], **fast))
    b = arrays(pipe.generate(["a cat"], "en", [3], negative_prompt="blurry", **fast))
    assert not same(a, b)


# -- save / load ---------------------------------------------------------------------------------

@pytest.mark.parametrize("src", ["babel_sd_dir", "babel_sdxl_dir", "tiny_sd_dir"])
def test_save_load_round_trip(load, request, tmp_path, fast, src):
    pipe = load(request.getfixturevalue(src))
    before = arrays(pipe.generate(PROMPTS[:2], LANGS[:2], [1, 2], **fast))
    pipe.save_pretrained(tmp_path / "saved")
    cfg = json.loads((tmp_path / "saved" / PIPELINE_CONFIG).read_text())
    assert (cfg["mode"], cfg["family"]) == (pipe.mode, pipe.family)
    files = [p.name for p in (tmp_path / "saved").rglob("*") if p.is_file()]
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".ckpt"))]
    assert any(f.endswith(".safetensors") for f in files)

    again = load(tmp_path / "saved")
    assert (again.mode, again.family, again.name) == (pipe.mode, pipe.family, pipe.name)
    assert again.revision == folder_fingerprint(tmp_path / "saved")
    assert same(before, arrays(again.generate(PROMPTS[:2], LANGS[:2], [1, 2], **fast)))


def test_save_fp16_keeps_live_pipeline_fp32(load, babel_sd_dir, tmp_path, fast):
    pipe = load(babel_sd_dir)
    before = arrays(pipe.generate(PROMPTS[:1], "en", [1], **fast))
    pipe.save_pretrained(tmp_path / "half", dtype=torch.float16)
    assert pipe.dtype == torch.float32 and pipe.tower.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in pipe.pipe.vae.parameters())
    assert same(before, arrays(pipe.generate(PROMPTS[:1], "en", [1], **fast)))
    half = load(tmp_path / "half")  # loads (upcast to fp32 on CPU) and runs
    assert half.generate(PROMPTS[:1], "en", [1], **fast)[0].size == (64, 64)


def test_revision_follows_weights(load, babel_sd_dir, tmp_path):
    import shutil

    shutil.copytree(babel_sd_dir, tmp_path / "m")
    r1 = load(tmp_path / "m").revision
    assert r1 == load(babel_sd_dir).revision  # content, not location
    (tmp_path / "m" / "scheduler" / "scheduler_config.json").write_text(
        (tmp_path / "m" / "scheduler" / "scheduler_config.json").read_text().replace("0.012", "0.013"))
    assert load(tmp_path / "m").revision != r1


def test_not_a_model_folder(load, tmp_path):
    with pytest.raises(InputError, match="neither"):
        load(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        load(tmp_path / "missing")


# -- parameters ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kw,match", [
    ({"width": 63}, "width"), ({"height": 60}, "height"), ({"width": 0}, "width"),
    ({"steps": 0}, "steps"), ({"steps": -3}, "steps"),
    ({"guidance": -1.0}, "guidance"), ({"guidance": float("nan")}, "guidance"),
])
def test_generation_params_validation(kw, match):
    base = {"steps": 2, "guidance": 3.0, "width": 64, "height": 64}
    GenerationParams(**base)  # the base is valid
    with pytest.raises(InputError, match=match):
        GenerationParams(**{**base, **kw})


def test_generate_validates_before_work(load, babel_sd_dir, fast):
    pipe = load(babel_sd_dir)
    with pytest.raises(InputError, match="steps"):
        pipe.generate(["a"], "en", 0, **{**fast, "steps": 0})
    with pytest.raises(InputError, match="xx"):
        pipe.generate(["a", "b"], ["en", "xx"], 0, **fast)
    with pytest.raises(InputError, match="languages"):
        pipe.generate(["a", "b"], ["en", "de", "fr"], 0, **fast)
    with pytest.raises(InputError, match="seeds"):
        pipe.generate(["a", "b"], "en", [1], **fast)
    with pytest.raises(InputError, match="batch-size"):
        pipe.generate(["a"], "en", 0, batch_size=0, **fast)


def test_model_defaults_apply(load, tiny_random_dir):
    from neobabel.registry import get_preset

    pipe = load("tiny-random")
    preset = get_preset("tiny-random")
    params = pipe.resolve_params()
    assert (params.steps, params.width, params.height, params.scheduler) == (
        preset.defaults.steps, preset.defaults.width, preset.defaults.height, preset.defaults.scheduler)
    assert pipe.resolve_params(steps=3).steps == 3


@pytest.mark.parametrize("value,expected", [
    ("512x512", (512, 512)), ("640x480", (640, 480)), ("512", (512, 512)), ("768X512", (768, 512)),
    ("64×48", (64, 48)), ("63x64", (63, 64)),
])
def test_parse_size(value, expected):
    assert parse_size(value) == expected


@pytest.mark.parametrize("bad", ["abc", "1x2x3", "", "x", "512x", "12.5x8"])
def test_parse_size_rejects(bad):
    with pytest.raises(InputError, match="size"):
        parse_size(bad)


# -- attention and schedulers --------------------------------------------------------------------

def test_attention_backends(load, babel_sd_dir):
    pipe = load(babel_sd_dir, attention="sdpa")
    assert pipe.attention == "sdpa"
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="sdpa"):
            load(babel_sd_dir, attention="xformers")
        with pytest.raises(InputError, match="cuda"):
            load(babel_sd_dir, device="cuda")
    with pytest.raises(InputError, match="flash"):
        load(babel_sd_dir, attention="flash")


def test_unknown_scheduler(load, babel_sd_dir, fast):
    pipe = load(babel_sd_dir)
    with pytest.raises(InputError) as e:
        pipe.generate(["a"], "en", 0, scheduler="bogus", **fast)
    assert "bogus" in str(e.value) and "dpm++" in str(e.value)


@pytest.mark.parametrize("name,cls", [("dpm++", "DPMSolverMultistepScheduler"),
                                      ("euler", "EulerDiscreteScheduler"),
                                      ("unipc", "UniPCMultistepScheduler")])
def test_scheduler_swap(load, babel_sd_dir, fast, name, cls):
    pipe = load(babel_sd_dir)
    ddim = arrays(pipe.generate(PROMPTS[:1], "en", [0], **fast))
    swapped = arrays(pipe.generate(PROMPTS[:1], "en", [0], scheduler=name, **fast))
    assert type(pipe.pipe.scheduler).__name__ == cls == SCHEDULERS[name].split(".")[-1]
    assert swapped[0].shape == (64, 64, 3)
    assert not same(ddim, swapped)
    # Swapping back by name restores the original sampler exactly.
    assert same(ddim, arrays(pipe.generate(PROMPTS[:1], "en", [0], scheduler="ddim", **fast)))


def test_pndm_below_its_warm_up_is_refused_before_generating(load, babel_sd_dir, fast):
    pipe = load(babel_sd_dir)
    with pytest.raises(InputError, match=r"PNDMScheduler sampler needs --steps >= 4, got 3"):
        pipe.generate(PROMPTS[:1], "en", [0], **{**fast, "steps": 3}, scheduler="pndm")
    assert arrays(pipe.generate(PROMPTS[:1], "en", [0], **{**fast, "steps": 4}, scheduler="pndm"))[0].shape == (64, 64, 3)


def test_default_scheduler_after_a_swap(load, babel_sd_dir, fast):
    pipe = load(babel_sd_dir)
    first = arrays(pipe.generate(PROMPTS[:1], "en", [0], **fast))
    pipe.generate(PROMPTS[:1], "en", [0], scheduler="dpm++", **fast)
    assert same(first, arrays(pipe.generate(PROMPTS[:1], "en", [0], **fast)))
