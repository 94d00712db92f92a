"""Offline fixtures: tiny random instances of the real architectures, saved as normal folders.

Nothing here downloads. Each builder writes a folder that the ordinary `from_pretrained` code
paths load, so tests (ours and users' own CI) exercise exactly what real models go through,
the way diffusers' `get_dummy_components()` does. Weights are random: images are noise.
"""

from __future__ import annotations

from pathlib import Path

import torch

# The builders the built-in `tiny-random` model needs live in the library; re-exported here,
# where tests and users' CI look for fixture builders.
from neobabel.builtins import (  # noqa: F401
    FIXTURE_CORPUS, _clip_text_config, _rmtree, build_clip_tokenizer, build_tiny_sd, build_tiny_tower_model,
    build_xlmr_encoder, tiny_scheduler, tiny_unet, tiny_vae,
)


def build_tiny_sdxl(path: str | Path, seed: int = 0) -> Path:
    """A complete SDXL-style pipeline folder: two CLIP text encoders, text_time UNet."""
    # heavy: diffusers (and torch), only when a model is built or loaded
    from diffusers import StableDiffusionXLPipeline
    # heavy: transformers (and torch), only when a model is built or loaded
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
    from diffusers import EulerDiscreteScheduler  # heavy: diffusers (and torch), only when a model is built or loaded

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
    if family == "sd":
        return build_tiny_tower_model(path, build_tiny_sd, family="sd", out_dim=32, adapter=adapter,
                                      num_tokens=num_tokens, seed=seed)
    if family == "sdxl":
        return build_tiny_tower_model(path, build_tiny_sdxl, family="sdxl", out_dim=64, pooled_dim=32,
                                      adapter=adapter, num_tokens=num_tokens, seed=seed)
    raise ValueError(f"family must be 'sd' or 'sdxl', not {family!r}")


def build_tiny_mask2former(path: str | Path, labels: tuple[str, ...] = ("cat", "dog", "person"), seed: int = 0,
                           num_queries: int = 8) -> Path:
    """A tiny random Mask2Former (Swin backbone) + its PIL image processor, saved as a folder."""
    # heavy: transformers, only when a model is built
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessorPil, SwinConfig

    swin = SwinConfig(image_size=64, patch_size=4, embed_dim=32, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                      window_size=4, out_features=["stage1", "stage2", "stage3", "stage4"])
    config = Mask2FormerConfig(
        backbone_config=swin, feature_size=32, mask_feature_size=32, hidden_dim=32, encoder_feedforward_dim=32,
        encoder_layers=1, decoder_layers=2, num_attention_heads=2, dim_feedforward=32, num_queries=num_queries,
        id2label=dict(enumerate(labels)), label2id={c: i for i, c in enumerate(labels)})
    torch.manual_seed(seed)
    Mask2FormerForUniversalSegmentation(config).eval().save_pretrained(path)
    Mask2FormerImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 128}, size_divisor=32).save_pretrained(path)
    return Path(path)


def build_tiny_owlv2(path: str | Path, seed: int = 0) -> Path:
    """A tiny random OWLv2 + its processor (CLIP tokenizer, PIL image processor), saved as a folder."""
    # heavy: transformers, only when a model is built
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessorPil, Owlv2Processor

    path = Path(path)
    tok = build_clip_tokenizer(path / "_tok", model_max_length=16)
    config = Owlv2Config(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                           num_attention_heads=2),
        projection_dim=32)  # OWL's class head maps image embeddings to the text width
    torch.manual_seed(seed)
    Owlv2ForObjectDetection(config).eval().save_pretrained(path)
    Owlv2Processor(image_processor=Owlv2ImageProcessorPil(size={"height": 32, "width": 32}), tokenizer=tok).save_pretrained(path)
    _rmtree(path / "_tok")
    return path


def build_tiny_marian(path: str | Path, seed: int = 0) -> Path:
    """A tiny random Marian (OPUS-MT architecture) translation model with an offline tokenizer.

    Its translations are deterministic nonsense: enough for the translate-mode code paths
    (loading, batching, caching, recording), never for quality."""
    # heavy: transformers (and torch), only when a model is built
    from transformers import MarianConfig, MarianMTModel

    from neobabel.tower import train_subword_tokenizer

    path = Path(path)
    tok = train_subword_tokenizer(FIXTURE_CORPUS, vocab_size=300, model_max_length=64)
    torch.manual_seed(seed)
    config = MarianConfig(
        vocab_size=len(tok), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
        decoder_start_token_id=tok.pad_token_id, forced_eos_token_id=tok.eos_token_id,
        init_std=1.0,  # large random weights: different inputs give different outputs
    )
    MarianMTModel(config).eval().save_pretrained(path)
    tok.save_pretrained(path)
    return path
