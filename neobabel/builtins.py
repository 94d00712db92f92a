"""Embedded models: the world model's weights folder and the `tiny-random` fixture model.

`builtin_model_path(name)` is where the registry finds a preset's `builtin:` component. The
world model ships as package data; `tiny-random` (random weights, noise images: an offline
fixture with the real architectures) is built on first use into ``$NEOBABEL_CACHE``.

The builders write ordinary diffusers/transformers folders that the usual `from_pretrained`
paths load, as diffusers' `get_dummy_components()` does; :mod:`neobabel.testing` builds its
test fixtures from them. torch, diffusers and transformers are imported inside the builders:
the registry imports this module, and listing presets must not load them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from neobabel.errors import InputError, ModelNotAvailableError

BUILTIN_MODELS = ("world", "tiny-random")
TINY_RANDOM_VERSION = "tiny-random-v1"  # bump when the builder's output changes

logger = logging.getLogger(__name__)


# -- where built-in models live ---------------------------------------------------------------

def cache_home() -> Path:
    return Path(os.environ.get("NEOBABEL_CACHE", Path.home() / ".cache" / "neobabel")).expanduser()


def world_weights_path() -> Path:
    return Path(__file__).resolve().parent / "world" / "weights"


def builtin_model_path(name: str) -> Path:
    """The folder of a built-in model; `tiny-random` is built on first use."""
    if name == "world":
        p = world_weights_path()
        if not p.is_dir():
            raise ModelNotAvailableError(
                "the embedded world model is not shipped in this version; use --model tiny-random "
                "(untrained fixture) or a local model folder")
        return p
    if name == "tiny-random":
        p = cache_home() / "fixtures" / TINY_RANDOM_VERSION
        if not (p / "babel_pipeline.json").is_file():
            logger.info("building the tiny-random model (first use: random weights) in %s", p)
            _build_atomically(p, build_tiny_random)
        return p
    raise InputError(f"unknown builtin model {name!r}; known: {BUILTIN_MODELS}")


def _build_atomically(target: Path, build) -> None:
    """Build into a temporary sibling and rename, so a killed build leaves no half folder."""
    from neobabel._logging import quiet_transformers  # imports diffusers: only when building

    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    with quiet_transformers():
        build(tmp)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, target)
    except OSError:  # another process built it first
        shutil.rmtree(tmp, ignore_errors=True)


# -- the tiny-random model ----------------------------------------------------------------------

def build_tiny_random(path: str | Path) -> Path:
    """The `tiny-random` model: a tiny XLM-R tower over a tiny Stable Diffusion 1.x backbone."""
    return build_tiny_tower_model(path, build_tiny_sd, family="sd", out_dim=32)


def build_tiny_tower_model(path: str | Path, build_backbone, *, family: str, out_dim: int,
                           pooled_dim: int = 0, adapter: str = "mlp", num_tokens: int = 0,
                           seed: int = 0) -> Path:
    """A saved tower-mode model: tiny XLM-R tower (random adapter) + the backbone that
    `build_backbone(folder, seed=seed)` writes (a diffusers pipeline folder; its text encoders
    are not used). The helper folders beside `path` are removed."""
    import torch  # heavy: only when building

    from neobabel.backbones import load_backbone  # heavy: torch + diffusers, only when a built-in model is built
    # with the model parts above, only when a built-in model is built
    from neobabel.modelfolder import GenerationDefaults, save_tower_model
    # heavy: torch + transformers, only when a built-in model is built
    from neobabel.tower import MultilingualTower, TowerConfig

    path = Path(path)
    enc_dir = path.parent / f".{path.name}-encoder"
    backbone_dir = path.parent / f".{path.name}-backbone"
    try:
        build_xlmr_encoder(enc_dir, seed=seed)
        build_backbone(backbone_dir, seed=seed)
        torch.manual_seed(seed)  # the adapter's random init
        tower = MultilingualTower.from_encoder(
            enc_dir, TowerConfig(adapter=adapter, out_dim=out_dim, pooled_dim=pooled_dim,
                                 num_tokens=num_tokens, max_length=32))
        pipe, family = load_backbone(backbone_dir, family=family)
        return save_tower_model(path, pipe, tower, name=f"tiny-babel-{family}", family=family,
                                defaults=GenerationDefaults())
    finally:
        _rmtree(enc_dir)
        _rmtree(backbone_dir)


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
    from transformers import CLIPTokenizer  # heavy: transformers (and torch), only when a model is built or loaded

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
    import torch  # heavy: only when building
    # heavy: transformers (and torch), only when a model is built or loaded
    from transformers import XLMRobertaConfig, XLMRobertaModel

    # heavy: torch + transformers, only when a built-in model is built
    from neobabel.tower import train_subword_tokenizer

    path = Path(path)

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
    import torch  # heavy: only when building
    from diffusers import UNet2DConditionModel  # heavy: diffusers (and torch), only when a model is built or loaded

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
    import torch  # heavy: only when building
    from diffusers import AutoencoderKL  # heavy: diffusers (and torch), only when a model is built or loaded

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
    from diffusers import DDIMScheduler  # heavy: diffusers (and torch), only when a model is built or loaded

    return DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        set_alpha_to_one=False, steps_offset=1,
    )


def _clip_text_config(hidden_size: int = 32, **kw):
    from transformers import CLIPTextConfig  # heavy: transformers (and torch), only when a model is built or loaded

    return CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, hidden_size=hidden_size, intermediate_size=37,
        layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=2, pad_token_id=1,
        vocab_size=1000, **kw,
    )


def build_tiny_sd(path: str | Path, seed: int = 0) -> Path:
    """A complete Stable Diffusion 1.x-style pipeline folder (native CLIP text encoder)."""
    import torch  # heavy: only when building
    # heavy: diffusers (and torch), only when a model is built or loaded
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextModel  # heavy: transformers (and torch), only when a model is built or loaded

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


def _rmtree(p: Path) -> None:
    shutil.rmtree(p, ignore_errors=True)


UNTRAINED_NOTICE = ("note: model 'tiny-random' has UNTRAINED random weights (an offline fixture); its images "
                    "are noise. Use --model with a trained model folder or preset.")


def default_model() -> str:
    """The model commands use when none is named: the embedded world model when its weights ship."""
    return "world" if world_weights_path().is_dir() else "tiny-random"
