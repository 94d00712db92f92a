"""Offline fixtures: tiny random instances of the real architectures, saved as normal folders.

Nothing here downloads. Each builder writes a folder that the ordinary `from_pretrained` code
paths load, so tests (ours and users' own CI) exercise exactly what real models go through,
the way diffusers' `get_dummy_components()` does. Weights are random: images are noise.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

# A small multilingual corpus for training fixture tokenizers offline: every script we
# support appears, so no language falls back to <unk> only.
FIXTURE_CORPUS = [
    "a photo of the face of a doctor",
    "a photo of two red circles",
    "a photo of a blue square left of a green triangle",
    "ein Foto vom Gesicht einer Ärztin",
    "ein Foto von drei roten Kreisen",
    "une photo du visage d'un médecin",
    "una foto de la cara de una enfermera",
    "una foto del volto di un cuoco",
    "een foto van het gezicht van een leraar",
    "фотография лица врача",
    "一张医生的脸部照片",
    "医者の顔の写真",
    "의사의 얼굴 사진",
    "صورة لوجه طبيب",
    "एक डॉक्टर के चेहरे की तस्वीर",
    "عکسی از چهره یک پزشک",
]


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2/CLIP's reversible byte -> printable-unicode table.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def build_clip_tokenizer(path: str | Path, model_max_length: int = 77):
    """Write a CLIP BPE tokenizer from a local vocabulary (bytes + a few merges)."""
    from transformers import CLIPTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    vocab_list = chars + [c + "</w>" for c in chars]
    merges = ["p h", "ph o", "pho t", "phot o</w>", "o f</w>", "t h", "th e</w>"]
    for merge in merges:
        merged = merge.replace(" ", "")
        if merged not in vocab_list:
            vocab_list.append(merged)
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    (path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    tok = CLIPTokenizer(
        vocab=str(path / "vocab.json"), merges=str(path / "merges.txt"), model_max_length=model_max_length
    )
    tok.save_pretrained(path)
    return tok


def build_xlmr_encoder(path: str | Path, hidden_size: int = 32, seed: int = 0):
    """Save a tiny XLMRobertaModel and a BPE tokenizer trained on FIXTURE_CORPUS."""
    from transformers import XLMRobertaConfig, XLMRobertaModel

    path = Path(path)
    from neobabel.tower import train_subword_tokenizer

    tok = train_subword_tokenizer(FIXTURE_CORPUS, vocab_size=300, model_max_length=32)
    torch.manual_seed(seed)
    config = XLMRobertaConfig(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=40,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    model = XLMRobertaModel(config).eval()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def tiny_unet(cross_attention_dim: int = 32, sample_size: int = 16, seed: int = 0, **overrides):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    kwargs = dict(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        norm_num_groups=2,
        attention_head_dim=2,
    )
    kwargs.update(overrides)
    return UNet2DConditionModel(**kwargs).eval()


def tiny_vae(seed: int = 0):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        block_out_channels=[4, 8],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=2,
    ).eval()


def tiny_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        set_alpha_to_one=False, steps_offset=1,
    )


def _clip_text_config(hidden_size: int = 32, **kw):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, hidden_size=hidden_size, intermediate_size=37,
        layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=2, pad_token_id=1,
        vocab_size=1000, **kw,
    )


def build_tiny_sd(path: str | Path, seed: int = 0) -> Path:
    """A complete Stable Diffusion 1.x-style pipeline folder (native CLIP text encoder)."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextModel

    path = Path(path)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(_clip_text_config()).eval()
    tokenizer = build_clip_tokenizer(path / "_tok")
    pipe = StableDiffusionPipeline(
        vae=tiny_vae(seed), text_encoder=text_encoder, tokenizer=tokenizer,
        unet=tiny_unet(32, seed=seed), scheduler=tiny_scheduler(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(path)
    _rmtree(path / "_tok")
    return path


def build_tiny_sdxl(path: str | Path, seed: int = 0) -> Path:
    """A complete SDXL-style pipeline folder: two CLIP text encoders, text_time UNet."""
    from diffusers import StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    path = Path(path)
    unet = tiny_unet(
        cross_attention_dim=64, sample_size=16, seed=seed,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(8, 16), norm_num_groups=4,
        addition_embed_type="text_time", addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80,
        attention_head_dim=(2, 4), use_linear_projection=True,
    )
    torch.manual_seed(seed)
    te1 = CLIPTextModel(_clip_text_config(hidden_act="gelu", projection_dim=32)).eval()
    te2 = CLIPTextModelWithProjection(_clip_text_config(hidden_act="gelu", projection_dim=32)).eval()
    tok = build_clip_tokenizer(path / "_tok")
    from diffusers import EulerDiscreteScheduler

    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, steps_offset=1, beta_schedule="scaled_linear",
        timestep_spacing="leading",
    )
    pipe = StableDiffusionXLPipeline(
        vae=tiny_vae(seed), text_encoder=te1, text_encoder_2=te2, tokenizer=tok, tokenizer_2=tok,
        unet=unet, scheduler=scheduler, force_zeros_for_empty_prompt=False,
    )
    pipe.save_pretrained(path)
    _rmtree(path / "_tok")
    return path


def build_tiny_babel(path: str | Path, family: str = "sd", adapter: str = "mlp",
                     num_tokens: int = 0, seed: int = 0) -> Path:
    """A saved BabelPipeline: tiny XLM-R tower + tiny SD or SDXL backbone (no text encoder)."""
    from neobabel.pipeline import BabelPipeline
    from neobabel.tower import MultilingualTower, TowerConfig

    path = Path(path)
    enc_dir = path.parent / f".{path.name}-encoder"
    build_xlmr_encoder(enc_dir, seed=seed)
    if family == "sd":
        backbone = build_tiny_sd(path.parent / f".{path.name}-backbone", seed=seed)
        out_dim, pooled_dim = 32, 0
    elif family == "sdxl":
        backbone = build_tiny_sdxl(path.parent / f".{path.name}-backbone", seed=seed)
        out_dim, pooled_dim = 64, 32
    else:
        raise ValueError(f"family must be 'sd' or 'sdxl', not {family!r}")
    torch.manual_seed(seed)
    tower = MultilingualTower.from_encoder(
        enc_dir,
        TowerConfig(adapter=adapter, out_dim=out_dim, pooled_dim=pooled_dim, num_tokens=num_tokens,
                    max_length=32),
    )
    pipe = BabelPipeline.from_components(backbone, tower=tower, family=family,
                                         name=f"tiny-babel-{family}")
    pipe.save_pretrained(path)
    _rmtree(enc_dir)
    _rmtree(backbone)
    return path


def _rmtree(p: Path) -> None:
    import shutil

    shutil.rmtree(p, ignore_errors=True)
