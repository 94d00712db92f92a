"""neobabel.tower: MultilingualTower shapes, adapters, save/load, padding invariance, errors."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch
from safetensors import safe_open

from neobabel.errors import InputError
from neobabel.testing import FIXTURE_CORPUS
from neobabel.tower import ADAPTER_WEIGHTS, CONFIG_NAME, MultilingualTower, TowerConfig

TEXTS = ["a photo of the face of a doctor", "ein Foto vom Gesicht einer Ärztin", "医者の顔の写真"]
LONG = "a photo of a blue square left of a green triangle " * 3


def _tower(xlmr_dir, seed=0, **cfg) -> MultilingualTower:
    torch.manual_seed(seed)
    return MultilingualTower.from_encoder(xlmr_dir, TowerConfig(**{"max_length": 24, **cfg})).eval()


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("adapter", ["linear", "mlp"])
def test_encode_shapes_sd_style(xlmr_dir, adapter):
    tower = _tower(xlmr_dir, adapter=adapter, out_dim=48, max_length=20)
    embeds, pooled = tower.encode(TEXTS)
    assert embeds.shape == (3, 20, 48)
    assert embeds.dtype == torch.float32
    assert pooled is None
    assert torch.isfinite(embeds).all()


def test_encode_shapes_sdxl_style_with_pooled(xlmr_dir):
    tower = _tower(xlmr_dir, out_dim=64, pooled_dim=24, max_length=16)
    embeds, pooled = tower.encode(TEXTS[:2])
    assert embeds.shape == (2, 16, 64)
    assert pooled.shape == (2, 24)


def test_resampler_gives_fixed_token_count(xlmr_dir):
    tower = _tower(xlmr_dir, out_dim=32, num_tokens=5, pooled_dim=8)
    embeds, pooled = tower.encode(TEXTS + [LONG])
    assert embeds.shape == (4, 5, 32)
    assert pooled.shape == (4, 8)
    # Different texts still give different conditioning through the resampler.
    assert not torch.allclose(embeds[0], embeds[1])


def test_linear_and_mlp_adapters_differ(xlmr_dir):
    linear = _tower(xlmr_dir, adapter="linear", out_dim=32)
    mlp = _tower(xlmr_dir, adapter="mlp", out_dim=32, hidden_dim=64)
    n_lin = sum(p.numel() for p in linear.adapter.parameters())
    n_mlp = sum(p.numel() for p in mlp.adapter.parameters())
    hidden = linear.encoder.config.hidden_size
    # MLP: in->64->32 plus biases; linear: in->32 plus bias (both share a LayerNorm of 32).
    assert n_mlp - n_lin == (hidden * 64 + 64 + 64 * 32 + 32) - (hidden * 32 + 32)
    a, _ = linear.encode(TEXTS[:1])
    b, _ = mlp.encode(TEXTS[:1])
    assert a.shape == b.shape and not torch.allclose(a, b)


def test_texts_condition_differently(xlmr_dir):
    tower = _tower(xlmr_dir, out_dim=32)
    embeds, _ = tower.encode(TEXTS)
    assert not torch.allclose(embeds[0], embeds[1])
    assert not torch.allclose(embeds[1], embeds[2])


def test_fixture_tokenizer_covers_every_script(xlmr_dir):
    """Item 7: the offline tokenizer does not reduce any supported script to <unk> only."""
    tower = _tower(xlmr_dir)
    tok = tower.tokenizer
    for sentence in FIXTURE_CORPUS:
        ids = tok(sentence, add_special_tokens=False)["input_ids"]
        assert ids and any(i != tok.unk_token_id for i in ids), sentence
    # Accents are kept (never stripped): umlaut and plain spellings tokenize differently.
    assert tok("Ärztin")["input_ids"] != tok("Arztin")["input_ids"]


@pytest.mark.parametrize("cfg", [{"out_dim": 32}, {"out_dim": 32, "num_tokens": 4, "pooled_dim": 8}])
def test_padding_invariance(xlmr_dir, cfg):
    """A prompt's embedding is identical alone or batched with longer prompts (pad to max_length)."""
    tower = _tower(xlmr_dir, **cfg)
    alone, pooled_alone = tower.encode(["a photo"])
    batched, pooled_batched = tower.encode([LONG, "a photo", "ein Foto von drei roten Kreisen"])
    # Always padded to max_length, never to the longest text of the batch.
    assert alone.shape[1] == batched.shape[1] == (cfg.get("num_tokens") or 24)
    # Same values up to float rounding: batched CPU kernels may block differently by batch size
    # in the last bit (BabelPipeline encodes one text a call for bit-exact images); padding
    # leaking into a text's states would change them by orders of magnitude more.
    torch.testing.assert_close(alone[0], batched[1], rtol=1e-5, atol=1e-6)
    if pooled_alone is not None:
        torch.testing.assert_close(pooled_alone[0], pooled_batched[1], rtol=1e-5, atol=1e-6)


def test_padding_is_masked_out(xlmr_dir):
    """More padding (a larger max_length) changes neither the pooled nor the resampled output."""
    texts = ["a photo", "ein Foto", "医者の顔"]
    tower = _tower(xlmr_dir, out_dim=32, num_tokens=4, pooled_dim=8, max_length=12)
    assert tower.tokenize(texts)["attention_mask"][:, -1].sum() == 0  # all three are padded
    short, pooled_short = tower.encode(texts)
    tower.config.max_length = 36
    long, pooled_long = tower.encode(texts)
    torch.testing.assert_close(short, long, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(pooled_short, pooled_long, rtol=1e-4, atol=1e-5)


def test_zero_padding_zeroes_padded_positions_only(xlmr_dir, tmp_path):
    texts = ["a photo", "ein Foto vom Gesicht einer Ärztin"]
    plain = _tower(xlmr_dir, out_dim=32, max_length=16)
    zeroed = _tower(xlmr_dir, out_dim=32, max_length=16, zero_padding=True)
    mask = zeroed.tokenize(texts)["attention_mask"].bool()
    assert (~mask).any()  # both are padded to 16
    a, _ = plain.encode(texts)
    b, _ = zeroed.encode(texts)
    torch.testing.assert_close(b[mask], a[mask])  # same weights: real tokens untouched
    assert torch.count_nonzero(b[~mask]) == 0 and torch.count_nonzero(a[~mask]) > 0
    zeroed.save_pretrained(tmp_path / "tower")
    assert torch.equal(MultilingualTower.from_pretrained(tmp_path / "tower").encode(texts)[0], b)


def test_long_text_is_truncated_to_max_length(xlmr_dir):
    tower = _tower(xlmr_dir, out_dim=16, max_length=8)
    embeds, _ = tower.encode([LONG * 5])
    assert embeds.shape == (1, 8, 16)


def test_save_load_round_trip_identical_embeddings(xlmr_dir, tmp_path):
    tower = _tower(xlmr_dir, adapter="mlp", out_dim=32, pooled_dim=16, num_tokens=6, hidden_dim=40)
    before, pooled_before = tower.encode(TEXTS)
    tower.save_pretrained(tmp_path / "tower")
    files = _files(tmp_path / "tower")
    assert CONFIG_NAME in files and ADAPTER_WEIGHTS in files
    assert any(f.startswith("encoder/") and f.endswith(".safetensors") for f in files)
    assert any(f.startswith("encoder/tokenizer") for f in files)
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))], files
    cfg = json.loads((tmp_path / "tower" / CONFIG_NAME).read_text())
    assert cfg["num_tokens"] == 6 and cfg["pooled_dim"] == 16 and cfg["hidden_dim"] == 40
    # how this copy was loaded is not saved into the next one's tokenizer config
    tok_cfg = json.loads((tmp_path / "tower" / "encoder" / "tokenizer_config.json").read_text())
    assert not {"local_files_only", "is_local"} & tok_cfg.keys()

    loaded = MultilingualTower.from_pretrained(tmp_path / "tower")
    after, pooled_after = loaded.encode(TEXTS)
    assert torch.equal(before, after)
    assert torch.equal(pooled_before, pooled_after)
    where = {"encoder", "encoder_revision"}  # the encoder's location legitimately differs
    assert {k: v for k, v in asdict(loaded.config).items() if k not in where} == {
        k: v for k, v in asdict(tower.config).items() if k not in where}


def test_save_fp16_keeps_live_tower_fp32(xlmr_dir, tmp_path):
    tower = _tower(xlmr_dir, out_dim=32)
    before, _ = tower.encode(TEXTS)
    tower.save_pretrained(tmp_path / "t16", dtype=torch.float16)
    # The live tower is untouched.
    assert all(p.dtype == torch.float32 for p in tower.parameters())
    assert torch.equal(before, tower.encode(TEXTS)[0])
    # The files are fp16.
    with safe_open(str(tmp_path / "t16" / ADAPTER_WEIGHTS), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    enc_files = list((tmp_path / "t16" / "encoder").glob("*.safetensors"))
    assert enc_files
    with safe_open(str(enc_files[0]), "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert torch.float16 in dtypes and torch.float32 not in dtypes
    # And it loads back (in fp32, the values rounded through fp16).
    loaded = MultilingualTower.from_pretrained(tmp_path / "t16", dtype=torch.float32)
    after, _ = loaded.encode(TEXTS)
    assert after.dtype == torch.float32
    assert torch.allclose(before, after, atol=0.05)


def test_save_without_encoder_points_at_the_encoder(xlmr_dir, tmp_path):
    tower = _tower(xlmr_dir, out_dim=32)
    before, _ = tower.encode(TEXTS)
    tower.save_pretrained(tmp_path / "adapter-only", save_encoder=False)
    assert not (tmp_path / "adapter-only" / "encoder").exists()
    loaded = MultilingualTower.from_pretrained(tmp_path / "adapter-only")
    assert torch.equal(before, loaded.encode(TEXTS)[0])


@pytest.mark.parametrize("bad", ["transformer", "MLP ", "", "resampler"])
def test_bad_adapter_name(bad):
    with pytest.raises(InputError, match="adapter"):
        TowerConfig(adapter=bad)


@pytest.mark.parametrize("field", ["out_dim", "max_length"])
def test_non_positive_dims_rejected(field):
    with pytest.raises(InputError, match=field):
        TowerConfig(**{field: 0})


def test_unknown_config_key_rejected(tmp_path, xlmr_dir):
    tower = _tower(xlmr_dir, out_dim=16)
    tower.save_pretrained(tmp_path / "t")
    cfg_path = tmp_path / "t" / CONFIG_NAME
    cfg = json.loads(cfg_path.read_text())
    cfg["adaptor"] = "mlp"
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="adaptor"):
        MultilingualTower.from_pretrained(tmp_path / "t")


def test_from_pretrained_on_a_non_tower_folder(tmp_path):
    with pytest.raises(InputError, match=CONFIG_NAME):
        MultilingualTower.from_pretrained(tmp_path)
