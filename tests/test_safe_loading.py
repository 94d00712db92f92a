"""Weights load from safetensors only; pickled weights only with --allow-pickle (weights_only).

Fixtures are copies of the session's tiny models with one component's weights turned into a
pickle (`torch.save` of its state dict under the name the libraries look for), or removed.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest

from neobabel.errors import InputError
from neobabel.weights import pickle_files, weights_file, weights_kwargs

UNET_BIN = "unet/diffusion_pytorch_model.bin"
ENCODER_BIN = "tower/encoder/pytorch_model.bin"


def _to_pickle(component: Path) -> Path:
    """Replace a component folder's .safetensors weights by a pickled .bin of the same tensors."""
    import torch
    from safetensors.torch import load_file

    (safe,) = [p for p in component.glob("*.safetensors")]
    target = component / ("diffusion_pytorch_model.bin" if safe.name.startswith("diffusion") else "pytorch_model.bin")
    torch.save(load_file(str(safe)), target)
    safe.unlink()
    return target


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    return lines[0]


# -- the rule, folder by folder ---------------------------------------------------------------

def test_weights_kwargs_follow_the_files(babel_sd_dir, tmp_path):
    assert weights_kwargs(babel_sd_dir / "unet", "diffusers") == {"use_safetensors": True}
    assert weights_kwargs(babel_sd_dir / "tower" / "encoder", "transformers") == {"use_safetensors": True}
    model = _copy(babel_sd_dir, tmp_path / "m")
    pickled = _to_pickle(model / "unet")
    with pytest.raises(InputError, match="diffusion_pytorch_model.bin holds pickled weights.*--allow-pickle"):
        weights_kwargs(model / "unet", "diffusers")
    assert weights_kwargs(model / "unet", "diffusers", allow_pickle=True) == {"use_safetensors": False}
    assert weights_file(model / "unet", "diffusers", allow_pickle=True) == pickled
    assert pickle_files([model]) == [str(pickled.resolve())]
    pickled.unlink()
    with pytest.raises(InputError, match=r"unet/diffusion_pytorch_model\.safetensors is missing") as e:
        weights_kwargs(model / "unet", "diffusers", allow_pickle=True)
    assert ".bin" not in str(e.value)


def test_every_weight_load_asks_for_safetensors(babel_sd_dir, tiny_sd_dir, monkeypatch, load):
    """diffusers' and transformers' from_pretrained get use_safetensors=True on every call."""
    from diffusers.models.modeling_utils import ModelMixin
    from transformers import PreTrainedModel

    seen = []
    for cls in (ModelMixin, PreTrainedModel):
        original = cls.from_pretrained.__func__

        def spy(klass, *args, _original=original, **kw):
            seen.append((klass.__name__, kw.get("use_safetensors")))
            return _original(klass, *args, **kw)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    load(babel_sd_dir)
    load(tiny_sd_dir)
    names = {name for name, _ in seen}
    assert {"UNet2DConditionModel", "AutoencoderKL", "CLIPTextModel"} <= names
    assert any(n.startswith("XLMRoberta") for n in names), names
    assert all(flag is True for _, flag in seen), seen


# -- neobabel generate -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pickled_babel(babel_sd_dir, tmp_path_factory) -> Path:
    model = _copy(babel_sd_dir, tmp_path_factory.mktemp("pickled") / "babel-pickled-unet")
    _to_pickle(model / "unet")
    return model


def test_generate_refuses_a_pickled_unet_naming_it(cli, pickled_babel, tmp_path, fast):
    out = tmp_path / "run"
    code, _, err = cli("generate", "a cat", "--model", pickled_babel, "--out", out, "--steps", "2",
                       "--size", "64x64", "--no-progress")
    line = _one_line(err)
    assert code == 2, err
    assert UNET_BIN in line and "--allow-pickle" in line and ".safetensors only" in line
    assert "Defaulting to unsafe serialization" not in err
    assert not out.exists()


def test_generate_with_allow_pickle_loads_and_records_it(cli, pickled_babel, babel_sd_dir, tmp_path):
    args = ("generate", "a cat", "--steps", "2", "--size", "64x64", "--no-progress")
    code, _, err = cli(*args, "--model", pickled_babel, "--out", tmp_path / "pickled", "--allow-pickle")
    assert code == 0, err
    assert "unsafe serialization" not in err
    weights = json.loads((tmp_path / "pickled" / "run.json").read_text())["weights"]
    assert weights == {"allow_pickle": True, "pickle_files": [str((pickled_babel / UNET_BIN).resolve())]}
    # the same tensors as the safetensors original: the same pixels
    code, _, err = cli(*args, "--model", babel_sd_dir, "--out", tmp_path / "safe")
    assert code == 0, err
    assert json.loads((tmp_path / "safe" / "run.json").read_text())["weights"] == {
        "allow_pickle": False, "pickle_files": []}
    png = lambda run: sorted((run / "images").glob("*.png"))[0]  # noqa: E731
    from PIL import Image
    import numpy as np

    a, b = (np.asarray(Image.open(png(tmp_path / d))) for d in ("pickled", "safe"))
    assert np.array_equal(a, b)


def test_pickled_tower_encoder_is_refused_too(cli, babel_sd_dir, tmp_path):
    model = _copy(babel_sd_dir, tmp_path / "m")
    _to_pickle(model / "tower" / "encoder")
    code, _, err = cli("generate", "a cat", "--model", model, "--out", tmp_path / "run", "--no-progress")
    assert code == 2 and ENCODER_BIN in _one_line(err)
    assert not (tmp_path / "run").exists()


def test_missing_weights_name_the_safetensors_file(cli, babel_sd_dir, tmp_path):
    model = _copy(babel_sd_dir, tmp_path / "m")
    (model / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    code, _, err = cli("generate", "a cat", "--model", model, "--out", tmp_path / "run", "--no-progress")
    line = _one_line(err)
    assert code == 2, err
    assert "vae/diffusion_pytorch_model.safetensors is missing" in line and ".bin" not in line
    (model / "tower" / "adapter.safetensors").unlink()
    shutil.copy(babel_sd_dir / "vae" / "diffusion_pytorch_model.safetensors", model / "vae")
    code, _, err = cli("generate", "a cat", "--model", model, "--out", tmp_path / "run", "--no-progress")
    assert code == 2 and "tower/adapter.safetensors is missing" in _one_line(err)
    assert not (tmp_path / "run").exists()


def test_native_pipeline_with_a_pickled_text_encoder(load, tiny_sd_dir, tmp_path):
    model = _copy(tiny_sd_dir, tmp_path / "sd")
    pickled = _to_pickle(model / "text_encoder")
    with pytest.raises(InputError, match=r"text_encoder/pytorch_model\.bin holds pickled weights"):
        load(model)
    pipe = load(model, allow_pickle=True)
    assert pipe.mode == "native" and pipe.weights["pickle_files"] == [str(pickled.resolve())]
    pickled.unlink()
    with pytest.raises(InputError, match=r"text_encoder/model\.safetensors is missing") as e:
        load(model, allow_pickle=True)
    assert "\n" not in str(e.value)


def test_allow_pickle_still_refuses_a_pickle_that_runs_code(cli, babel_sd_dir, tmp_path):
    """--allow-pickle means torch.load(weights_only=True): a pickle with code is not run."""
    model = _copy(babel_sd_dir, tmp_path / "m")
    (model / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (model / UNET_BIN).write_bytes(pickle.dumps(Payload()))
    code, _, err = cli("generate", "a cat", "--model", model, "--out", tmp_path / "run", "--no-progress",
                       "--allow-pickle")
    line = _one_line(err)
    assert code == 2, err
    assert "weights_only=True" in line and "unet" in line
    assert not marker.exists() and not (tmp_path / "run").exists()


# -- magbig: CLIP classifier and alignment -----------------------------------------------------

@pytest.fixture(scope="module")
def clip_dirs(tmp_path_factory):
    from magbig.testing import build_clip_model

    root = tmp_path_factory.mktemp("clip-pickle")
    safe = build_clip_model(root / "safe")
    pickled = _copy(safe, root / "pickled")
    _to_pickle(pickled)
    return safe, pickled


@pytest.fixture
def magbig_main(monkeypatch, capsys):
    import signal

    from conftest import run_in_process

    from magbig import cli as magbig_cli

    old = signal.getsignal(signal.SIGTERM)
    yield run_in_process(monkeypatch, capsys, "magbig", magbig_cli.main)
    signal.signal(signal.SIGTERM, old)


def _tiny_run(path: Path) -> Path:
    import numpy as np
    import polars as pl
    from PIL import Image

    from neobabel.runs import GENERATION_SCHEMA

    (path / "images").mkdir(parents=True)
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(path / "images" / "k1.png")
    pl.DataFrame([{"key": "k1", "prompt_id": "pilot/en/direct", "lang": "en", "formulation": "direct",
                   "subject": "pilot", "text": "a photo of the face of a pilot", "seed": 0,
                   "path": "images/k1.png", "sha256": None, "seconds": 0.0, "model": "hand-made"}],
                 schema=GENERATION_SCHEMA).write_parquet(path / "generations.parquet")
    return path


def test_classify_clip_refuses_pickled_weights_unless_allowed(magbig_main, clip_dirs, tmp_path):
    _, pickled = clip_dirs
    run = _tiny_run(tmp_path / "run")
    args = ("classify", run, "--classifier", "clip", "--option", f"model={pickled}", "--option", "device=cpu",
            "--no-progress")
    code, _, err = magbig_main(*args)
    assert code == 2 and f"{pickled}/pytorch_model.bin holds pickled weights" in _one_line(err)
    assert not (run / "labels.parquet").exists()
    code, out, err = magbig_main(*args, "--allow-pickle")
    assert code == 0, err
    recorded = json.loads((run / "run.json").read_text())["classifiers"][0]
    assert recorded["pickle_weights"] == [str((pickled / "pytorch_model.bin").resolve())]
    (pickled / "pytorch_model.bin").rename(pickled / "elsewhere.bin")
    try:
        code, _, err = magbig_main(*args, "--allow-pickle", "--overwrite")
    finally:
        (pickled / "elsewhere.bin").rename(pickled / "pytorch_model.bin")
    assert code == 2 and f"{pickled}/model.safetensors is missing" in _one_line(err)


def test_audit_refuses_a_pickled_model_before_writing_anything(magbig_main, pickled_babel, tmp_path):
    cfg = tmp_path / "a.yaml"
    cfg.write_text("subjects: [pilot]\nlangs: [en]\nformulations: [direct]\nn: 1\nsteps: 2\n"
                   "size: 64x64\nclassifiers: [world]\nn_boot: 100\n", encoding="utf-8")
    out = tmp_path / "run"
    args = ("audit", "--config", cfg, "--model", pickled_babel, "--out", out, "--no-progress")
    code, _, err = magbig_main(*args)
    assert code == 2 and UNET_BIN in _one_line(err) and not out.exists()
    code, _, err = magbig_main(*args, "--allow-pickle")
    assert code == 0, err
    info = json.loads((out / "run.json").read_text())
    assert info["audit"]["allow_pickle"] is True
    assert info["weights"]["pickle_files"] == [str((pickled_babel / UNET_BIN).resolve())]


def test_align_refuses_pickled_weights_unless_allowed(magbig_main, clip_dirs, tmp_path):
    safe, pickled = clip_dirs
    run = _tiny_run(tmp_path / "run")
    code, _, err = magbig_main("align", run, "--model", pickled, "--device", "cpu", "--no-progress")
    assert code == 2 and "pytorch_model.bin holds pickled weights" in _one_line(err)
    assert not (run / "alignment.parquet").exists()
    code, _, err = magbig_main("align", run, "--model", pickled, "--device", "cpu", "--no-progress",
                               "--allow-pickle")
    assert code == 0, err
    weights = json.loads((run / "run.json").read_text())["alignment"]["weights"]
    assert weights["allow_pickle"] is True and weights["pickle_files"][0].endswith("pytorch_model.bin")


def test_audit_spec_carries_allow_pickle(tmp_path):
    from magbig.audit import load_audit_config

    cfg = tmp_path / "a.yaml"
    cfg.write_text("model: oracle\nclassifiers: [world]\n", encoding="utf-8")
    assert load_audit_config(cfg).allow_pickle is False
    assert load_audit_config(cfg, allow_pickle=True).allow_pickle is True


def test_preset_downloads_skip_pickled_files_unless_allowed(monkeypatch, tmp_path):
    import huggingface_hub

    from neobabel.registry import ComponentRef, resolve_ref

    calls = []

    def snapshot_download(repo, **kw):
        calls.append(kw)
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    ref = ComponentRef(repo="owner/model", revision="a" * 40)
    resolve_ref(ref, "backbone", "p", allow_download=True)
    resolve_ref(ref, "backbone", "p", allow_download=True, allow_pickle=True)
    assert {"*.bin", "*.ckpt", "*.pt", "*.pth"} <= set(calls[0]["ignore_patterns"])
    assert calls[1]["ignore_patterns"] is None
