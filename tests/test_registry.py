"""neobabel.registry: shipped presets, user presets, missing weights, builtins, fingerprints."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from neobabel import registry as R
from neobabel.errors import InputError, ModelNotAvailableError
from neobabel.pipeline import BabelPipeline

SHIPPED = R.REPO_ROOT / "configs" / "models"
HEX40 = re.compile(r"^[0-9a-f]{40}$")


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, whatever this machine has downloaded."""
    from huggingface_hub import constants

    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    return home


@pytest.fixture
def user_presets(tmp_path, monkeypatch):
    d = tmp_path / "presets"
    d.mkdir()
    monkeypatch.setenv("NEOBABEL_MODELS_DIR", str(d))
    return d


# -- shipped presets -----------------------------------------------------------------------

def test_shipped_presets_load_and_validate():
    presets = R.list_presets()
    assert {"sd15", "sd15-xlmr", "sdxl", "tiny-random", "world"} <= set(presets)
    for f in sorted(SHIPPED.glob("*.yaml")):
        p = R.load_preset_file(f)
        assert p.name == f.stem
        assert presets[p.name] == p


@pytest.mark.parametrize("name,mode,family", [
    ("sd15", "native", "sd"), ("sd15-xlmr", "tower", "sd"), ("sdxl", "native", "sdxl"),
    ("tiny-random", "tower", "sd"), ("world", "tower", "sd"),
])
def test_preset_contents(name, mode, family):
    p = R.get_preset(name)
    assert (p.mode, p.family) == (mode, family)
    refs = [p.backbone] + ([p.tower.adapter, p.tower.encoder] if p.tower else [])
    for ref in refs:
        if ref is not None and ref.repo:
            assert HEX40.match(ref.revision), (name, ref.revision)  # pinned commit, not a branch
    d = p.defaults if p.defaults is not None else BabelPipeline.from_pretrained(name).defaults
    assert d.steps >= 1 and d.width % 8 == 0 and d.height % 8 == 0
    if d.scheduler is not None:
        from neobabel.backbones import SCHEDULERS

        assert d.scheduler in SCHEDULERS


def test_hub_presets_name_the_real_repos():
    assert R.get_preset("sd15").backbone.repo == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert R.get_preset("sdxl").backbone.repo == "stabilityai/stable-diffusion-xl-base-1.0"
    xlmr = R.get_preset("sd15-xlmr")
    assert xlmr.tower.encoder.repo == "FacebookAI/xlm-roberta-large"
    assert xlmr.backbone == R.get_preset("sd15").backbone


def test_unknown_preset_lists_presets():
    with pytest.raises(InputError) as e:
        R.get_preset("nosuchmodel")
    assert "nosuchmodel" in str(e.value) and "sd15" in str(e.value) and "tiny-random" in str(e.value)


# -- user presets --------------------------------------------------------------------------

@pytest.mark.parametrize("text,match", [
    ("mode: native\nbackbone: [unclosed\n", "not valid YAML"),
    ("- just\n- a list\n", "mapping"),
    ("mode: native\nbackbone:\n  repo: org/model\n", "revision"),
    ("mode: native\nbackbone:\n  repo: org/model\n  revision: abc\n  path: /x\n", "exactly one"),
    ("mode: native\nbackbon:\n  path: /x\n", "backbon"),
    ("mode: tower\nbackbone:\n  path: /x\n", "tower"),
    ("mode: native\nbackbone:\n  builtin: nope\n", "nope"),
    ("mode: sideways\nbackbone:\n  path: /x\n", "mode"),
    ("mode: native\nbackbone:\n  path: /x\ndefaults:\n  stepz: 3\n", "stepz"),
])
def test_malformed_preset_names_the_file(user_presets, text, match):
    bad = user_presets / "broken.yaml"
    bad.write_text(text, encoding="utf-8")
    for call in (R.list_presets, lambda: R.get_preset("broken")):
        with pytest.raises(InputError) as e:
            call()
        msg = str(e.value)
        assert str(bad) in msg
        assert re.search(match, msg), msg
        assert "\n" not in msg


def test_user_preset_overrides_shipped_one(user_presets):
    (user_presets / "tiny-random.yaml").write_text(
        "description: my override\nmode: native\nbackbone:\n  path: /nowhere\n", encoding="utf-8")
    assert R.get_preset("tiny-random").description == "my override"
    assert R.get_preset("sd15").mode == "native"  # the others still load


def test_user_preset_with_local_paths_loads(user_presets, babel_sd_dir, tiny_sd_dir, fast):
    (user_presets / "mine.yaml").write_text(
        f"mode: tower\nfamily: sd\nbackbone:\n  path: {babel_sd_dir}\n"
        f"tower:\n  adapter:\n    path: {babel_sd_dir / 'tower'}\n"
        "defaults:\n  steps: 3\n  width: 64\n  height: 48\n  guidance: 2.0\n", encoding="utf-8")
    (user_presets / "mine-native.yaml").write_text(
        f"mode: native\nbackbone:\n  path: {tiny_sd_dir}\n", encoding="utf-8")
    pipe = BabelPipeline.from_pretrained("mine")
    assert (pipe.name, pipe.mode, pipe.family) == ("mine", "tower", "sd")
    assert pipe.revision == R.preset_revision(R.get_preset("mine"))
    params = pipe.resolve_params()
    assert (params.steps, params.width, params.height, params.guidance) == (3, 64, 48, 2.0)
    assert pipe.generate(["ein Foto"], "de", 0, steps=2)[0].size == (64, 48)
    native = BabelPipeline.from_pretrained("mine-native")
    assert (native.name, native.mode) == ("mine-native", "native")


def test_path_preset_revision_follows_weights(user_presets, babel_sd_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(babel_sd_dir, model)
    (user_presets / "local.yaml").write_text(
        f"mode: tower\nbackbone:\n  path: {model}\ntower:\n  adapter:\n    path: {model / 'tower'}\n",
        encoding="utf-8")
    r1 = BabelPipeline.from_pretrained("local").revision
    weights = model / "tower" / "adapter.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # retrained adapter: same size, different weights
    weights.write_bytes(bytes(data))
    assert BabelPipeline.from_pretrained("local").revision != r1


def test_missing_local_path_names_it(user_presets, tmp_path):
    missing = tmp_path / "no-such-adapter"
    (user_presets / "gone.yaml").write_text(
        f"mode: native\nbackbone:\n  path: {missing}\n", encoding="utf-8")
    with pytest.raises(ModelNotAvailableError) as e:
        BabelPipeline.from_pretrained("gone")
    assert str(missing) in str(e.value) and "--model PATH" in str(e.value)


def test_neobabel_cache_expands_in_paths(user_presets, babel_sd_dir, monkeypatch, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(babel_sd_dir, cache / "adapters" / "mine")
    monkeypatch.setenv("NEOBABEL_CACHE", str(cache))
    ref = R.ComponentRef(path="${NEOBABEL_CACHE}/adapters/mine")
    assert R.resolve_ref(ref, "backbone", "x") == cache / "adapters" / "mine"


# -- missing hub weights -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["sd15", "sdxl", "sd15-xlmr"])
def test_missing_weights_message(empty_hf_cache, name):
    preset = R.get_preset(name)
    with pytest.raises(ModelNotAvailableError) as e:
        BabelPipeline.from_pretrained(name)
    msg = str(e.value)
    assert isinstance(e.value, InputError)  # the CLI maps it to exit 2
    assert preset.backbone.repo in msg
    assert preset.backbone.revision in msg  # the full pinned revision
    assert "HF_HOME" in msg and "--model PATH" in msg
    assert str(empty_hf_cache) in msg  # where it looked
    assert "\n" not in msg


def test_is_available(empty_hf_cache):
    ok, detail = R.is_available(R.get_preset("sd15"))
    assert not ok and "stable-diffusion-v1-5/stable-diffusion-v1-5" in detail
    assert R.is_available(R.get_preset("tiny-random")) == (True, "local")
    world_ok, _ = R.is_available(R.get_preset("world"))
    assert world_ok == R.world_weights_path().is_dir()


def test_available_when_in_the_hf_cache(empty_hf_cache, tiny_sd_dir):
    """A snapshot in the (offline) HF cache layout is found, loaded and named by the preset."""
    preset = R.get_preset("sd15")
    repo_dir = Path(empty_hf_cache) / "hub" / ("models--" + preset.backbone.repo.replace("/", "--"))
    shutil.copytree(tiny_sd_dir, repo_dir / "snapshots" / preset.backbone.revision)
    (repo_dir / "refs").mkdir()
    assert R.is_available(preset) == (True, "local")
    pipe = BabelPipeline.from_pretrained("sd15")
    assert (pipe.name, pipe.mode, pipe.revision) == ("sd15", "native", R.preset_revision(preset))


def test_models_command_json(empty_hf_cache, tiny_random_dir):
    from neobabel.cli import app

    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["sd15"]["available"] is False and "stable-diffusion-v1-5" in rows["sd15"]["detail"]
    assert rows["tiny-random"]["available"] is True
    assert rows["sdxl"]["family"] == "sdxl" and rows["sd15-xlmr"]["mode"] == "tower"


# -- builtins and fingerprints -------------------------------------------------------------

def test_tiny_random_builds_into_neobabel_cache(tiny_random_dir):
    import os

    cache = Path(os.environ["NEOBABEL_CACHE"])
    assert cache in tiny_random_dir.parents
    assert (tiny_random_dir / "babel_pipeline.json").is_file()
    assert R.builtin_model_path("tiny-random") == tiny_random_dir  # second call: same folder
    assert not [p for p in tiny_random_dir.parent.iterdir() if ".tmp-" in p.name]


def test_builtin_preset_keeps_its_name(tiny_random_dir):
    pipe = BabelPipeline.from_pretrained("tiny-random")
    assert pipe.name == "tiny-random"
    assert pipe.identity()["model"] == "tiny-random"


def test_builtin_preset_uses_preset_defaults(tiny_random_dir):
    pipe = BabelPipeline.from_pretrained("tiny-random")
    d = R.get_preset("tiny-random").defaults
    assert pipe.defaults == d
    assert pipe.revision == R.folder_fingerprint(tiny_random_dir)


def test_builtin_preset_without_defaults_uses_the_folders_own():
    """The world preset names no defaults: the shipped weights' recorded size and guidance apply
    (v2's preset pinned 64x64 and guidance 2, which a 32x32 model must not inherit)."""
    assert R.get_preset("world").defaults is None
    recorded = json.loads((R.world_weights_path() / "babel_pipeline.json").read_text())["defaults"]
    trained = json.loads((R.world_weights_path() / "training.json").read_text())["config"]
    pipe = BabelPipeline.from_pretrained("world")
    assert pipe.defaults.model_dump() == recorded
    assert (pipe.defaults.width, pipe.defaults.guidance) == (trained["size"], trained["sample_guidance"])


def test_unknown_builtin():
    with pytest.raises(InputError, match="nope"):
        R.builtin_model_path("nope")


def test_folder_fingerprint(babel_sd_dir, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(babel_sd_dir, a)
    shutil.copytree(babel_sd_dir, b)
    fp = R.folder_fingerprint(a)
    assert re.fullmatch(r"[0-9a-f]{16}", fp)
    assert fp == R.folder_fingerprint(b)  # content, not location
    # Hidden files (locks, caches) do not count.
    (a / ".cache").mkdir()
    (a / ".cache" / "x.lock").write_text("lock")
    assert R.folder_fingerprint(a) == fp
    # A weight byte changed in place (same size) changes it.
    w = next(a.rglob("*.safetensors"))
    data = bytearray(w.read_bytes())
    data[len(data) // 2] ^= 0xFF
    w.write_bytes(bytes(data))
    fp2 = R.folder_fingerprint(a)
    assert fp2 != fp
    # A new file changes it.
    (b / "extra.json").write_text("{}")
    assert R.folder_fingerprint(b) not in (fp, fp2)
