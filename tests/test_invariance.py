"""Batch invariance: every image equals its batch-of-one image, bit for bit, in every mode.

Compared on the decoder's float output (`output_type="np"`), not on PNG bytes: a last-bit
difference that happens not to flip a pixel here would flip one on another CPU. `.ci/run` runs
this module again under `ATEN_CPU_CAPABILITY=avx2` (torch's vectorised kernels are where
batch-position effects come from; the default suite runs whatever the CPU offers).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from neobabel.invariance import BatchInvariantOps, batch_invariant

pytestmark = pytest.mark.invariance

PROMPTS = [
    "a photo of the face of a doctor",
    "ein Foto vom Gesicht einer Ärztin",
    "一张医生的脸部照片",
    "एक डॉक्टर के चेहरे की तस्वीर",
    "صورة لوجه طبيب",
    "a photo of two red circles",
    "une photo d'un carré bleu",
]
LANGS = ["en", "de", "zh", "hi", "ar", "en", "fr"]
SEEDS = [11, 3, 7, 0, 42, 5, 9]
REFERENCE_DIR = Path(__file__).parent / "data" / "world_reference"


@pytest.fixture(params=["tower-sd", "tower-sdxl", "native-sd", "world"])
def mode_pipe(request, load, babel_sd_dir, babel_sdxl_dir, tiny_sd_dir, fast):
    if request.param == "world":
        return load("world"), {"steps": 4}
    src = {"tower-sd": babel_sd_dir, "tower-sdxl": babel_sdxl_dir, "native-sd": tiny_sd_dir}[request.param]
    return load(src), dict(fast)


def _gen(pipe, order, batch_size, kw):
    return pipe.generate([PROMPTS[i] for i in order], [LANGS[i] for i in order], [SEEDS[i] for i in order],
                         batch_size=batch_size, output_type="np", **kw)


def test_every_image_equals_its_batch_of_one_image(mode_pipe):
    pipe, kw = mode_pipe
    assert pipe.batch_invariant
    alone = [_gen(pipe, [i], 1, kw)[0] for i in range(len(PROMPTS))]
    assert len({a.tobytes() for a in alone}) == len(PROMPTS)  # not a degenerate comparison
    rng = random.Random(0)
    for batch_size in (2, 3, 4, 7):
        for _ in range(3):
            order = list(range(len(PROMPTS)))
            rng.shuffle(order)
            out = _gen(pipe, order, batch_size, kw)
            for image, i in zip(out, order):
                assert np.array_equal(image, alone[i]), (batch_size, order, i, float(np.abs(image - alone[i]).max()))


def test_default_kernels_do_depend_on_the_batch(load, babel_sd_dir, fast):
    """The check has teeth: with the invariant op set off, batched rows differ from lone ones."""
    pipe = load(babel_sd_dir)
    pipe.set_batch_invariant(False)
    assert not pipe.batch_invariant
    alone = [_gen(pipe, [i], 1, fast)[0] for i in range(4)]
    batched = _gen(pipe, [0, 1, 2, 3], 4, fast)
    assert any(not np.array_equal(a, b) for a, b in zip(alone, batched))


# -- the op set itself ---------------------------------------------------------------------

def _rows_alone(fn, x):
    return torch.cat([fn(x[i : i + 1]) for i in range(x.shape[0])])


@pytest.mark.parametrize("fn", [
    torch.sigmoid, torch.nn.functional.silu, torch.nn.functional.gelu, torch.sin, torch.exp,
    lambda x: x * torch.sigmoid(1.702 * x),  # CLIP's QuickGELU, the op that broke native mode
    lambda x: x.tanh(),
])
def test_transcendental_ops_are_computed_per_sample(fn):
    torch.manual_seed(0)
    for shape in [(3, 77, 37), (7, 5, 3), (5, 1027)]:  # sizes that leave a scalar tail
        x = torch.randn(*shape)
        with BatchInvariantOps():
            assert torch.equal(fn(x), _rows_alone(fn, x))


def test_inplace_activation_stays_in_place():
    x = torch.randn(4, 33)
    ref = _rows_alone(torch.nn.functional.silu, x.clone())
    with BatchInvariantOps():
        out = torch.nn.functional.silu(x, inplace=True)
    assert out is x and torch.equal(x, ref)


def test_convolution_rows_do_not_depend_on_the_batch():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    x = torch.randn(17, 64, 8, 8)  # batch >= 16 is where NNPACK would take over
    with torch.no_grad(), batch_invariant("cpu"):
        assert torch.equal(conv(x), _rows_alone(conv, x))
        # Channels-last input (what diffusers' VAE attention hands on for B > 1): same rows.
        assert torch.equal(conv(x.to(memory_format=torch.channels_last))[3], conv(x[3:4])[0])


def test_not_applied_off_cpu_or_when_disabled():
    with batch_invariant("cuda") as on:
        assert on is False
    with batch_invariant("cpu", enabled=False) as on:
        assert on is False and torch.backends.mkldnn.enabled


# -- reference images: drift between CPUs and library versions is caught and described ------

def test_world_images_match_the_shipped_references(load):
    """Fresh world images vs PNGs made when they were shipped (see tests/data/world_reference).

    The same key gives the same bits for every batch on one machine; across CPU kernel families
    (AVX-512, AVX2, scalar) transcendental functions round differently, so the tolerance is the
    largest difference measured between them (benchmarks/RESULTS.md), not zero.
    """
    meta = json.loads((REFERENCE_DIR / "references.json").read_text(encoding="utf-8"))
    pipe = load("world")
    cases = meta["images"]
    fresh = pipe.generate([c["prompt"] for c in cases], [c["lang"] for c in cases], [c["seed"] for c in cases],
                          batch_size=len(cases), **meta["params"])
    report = []
    for case, image in zip(cases, fresh):
        ref = np.asarray(Image.open(REFERENCE_DIR / case["file"]).convert("RGB")).astype(int)
        diff = np.abs(np.asarray(image).astype(int) - ref)
        report.append(f"{case['file']}: max {diff.max()}, {int((diff > 0).sum())} channel values differ")
        assert diff.max() <= meta["max_abs_pixel_diff"], "; ".join(report)
    # The references are not interchangeable: each image is its own.
    assert len({(REFERENCE_DIR / c["file"]).read_bytes() for c in cases}) == len(cases)


@pytest.mark.parametrize("threads", [1, 2])
def test_samples_without_a_scalar_tail_run_batched_and_stay_exact(threads, monkeypatch):
    # A sample of 64 x lcm(1..threads) elements leaves no scalar tail in any thread's chunk, in
    # the batched call or alone: those calls skip the per-sample loop and must still be exact,
    # also where the batch is large enough (> 32768 elements) for ATen to split it across threads.
    from neobabel import invariance

    sliced = []
    per_slice = invariance._per_slice
    monkeypatch.setattr(invariance, "_per_slice", lambda *a: sliced.append(1) or per_slice(*a))
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(1)
        for shape in [(3, 128), (7, 64, 16, 16), (5, 3, 40, 96)]:
            x = torch.randn(*shape)
            for fn in (torch.sigmoid, torch.nn.functional.silu, torch.nn.functional.gelu):
                with BatchInvariantOps():
                    batched = fn(x)
                assert torch.equal(batched, _rows_alone(fn, x)), (shape, fn)
        assert not sliced  # every one of these ran as one batched call
        with BatchInvariantOps():
            torch.sigmoid(torch.randn(3, 130))  # 130 elements: a tail, so per sample
        assert sliced
    finally:
        torch.set_num_threads(old)
