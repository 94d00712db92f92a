"""The world model's parts, built from a training config: tokenizer, tower, UNet, pixel-shuffle
autoencoder, the training noise schedule and the sampler it is exported with."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaModel

from neobabel.components import PixelShuffleAutoencoder
from neobabel.tower import MultilingualTower, TowerConfig, train_subword_tokenizer
from neobabel.world.data import caption_corpus
from neobabel.world.spec import PRESENTATIONS
from neobabel.world.trainconfig import WorldTrainConfig


def world_tokenizer(cfg: WorldTrainConfig, bias, out: Path):
    """Train (or reload) the tokenizer on the 13-language caption corpus, deterministically."""
    tok_dir = out / "tokenizer"
    if (tok_dir / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(tok_dir)
    tok = train_subword_tokenizer(caption_corpus(bias, seed=cfg.seed), vocab_size=cfg.tower.vocab_size,
                                  model_max_length=cfg.tower.max_length)
    tok.save_pretrained(tok_dir)
    return tok


def build_models(cfg: WorldTrainConfig, tokenizer):
    """(tower, unet, pixel-shuffle autoencoder, DDPM training scheduler), seeded by the config."""
    torch.manual_seed(cfg.seed)
    t = cfg.tower
    enc = XLMRobertaModel(XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=t.hidden, num_hidden_layers=t.layers,
        num_attention_heads=t.heads, intermediate_size=t.intermediate,
        max_position_embeddings=t.max_length + 2, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    ), add_pooling_layer=False)
    tower = MultilingualTower(enc, tokenizer, TowerConfig(adapter="linear", out_dim=cfg.unet.cross_attention_dim,
                                                          max_length=t.max_length, zero_padding=t.zero_padding))
    levels = int(math.log2(cfg.unshuffle))
    vae = PixelShuffleAutoencoder(in_channels=3, block_out_channels=(3,) * (levels + 1))
    latent_ch = 3 * cfg.unshuffle**2
    n = len(cfg.unet.block_out_channels)
    attn = cfg.unet.cross_attention_levels or (True,) * (n - 1) + (False,)
    unet = UNet2DConditionModel(
        sample_size=cfg.size // cfg.unshuffle, in_channels=latent_ch, out_channels=latent_ch,
        block_out_channels=cfg.unet.block_out_channels, layers_per_block=cfg.unet.layers_per_block,
        down_block_types=tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn),
        up_block_types=tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)),
        cross_attention_dim=cfg.unet.cross_attention_dim, attention_head_dim=cfg.unet.attention_heads,
        norm_num_groups=32,
        addition_embed_type="text" if cfg.unet.text_time_embedding else None,
        addition_embed_type_num_heads=cfg.unet.attention_heads,
    )
    # Cosine schedule: linear betas waste most steps at tiny resolutions (design.md notes).
    noise_scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                                    prediction_type=cfg.prediction_type, clip_sample=False)
    return tower, unet, vae, noise_scheduler


def presentation_head(cfg: WorldTrainConfig, dev: torch.device):
    """(head, its optimizer) for the finetune phase's auxiliary loss, or None. Initialised from
    the seed alone, so a run resumed at the phase boundary starts it as a straight run does."""
    if cfg.finetune is None or not cfg.finetune.presentation_head:
        return None
    head = torch.nn.Linear(cfg.unet.cross_attention_dim, len(PRESENTATIONS))
    gen = torch.Generator().manual_seed(cfg.seed + 17)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=gen) * 0.02)
        head.bias.zero_()
    head.to(dev)
    return head, torch.optim.AdamW(head.parameters(), lr=cfg.finetune.lr, weight_decay=cfg.weight_decay)


def sampling_scheduler(prediction_type: str):
    """The DDIM sampler a world model is exported with."""
    # The cosine schedule's alpha-bar is ~0 at t=999, so an epsilon or v model's x0 estimate
    # (x - sigma*eps)/alpha amplifies errors ~1000x on the first step; for those, x0 is clipped to
    # [-1, 1] (diffusers' thresholding with sample_max_value=1, carried into any scheduler
    # swapped in with --scheduler that supports it). An x0 ("sample") model's estimate is its own
    # output, with nothing amplified, and is left alone: clipping it after classifier-free
    # guidance clips each RGB channel separately, which turns guided colours into other hues
    # (orange -> green; v7 at guidance 4 drew the named colour 30% of the time clipped, 100% not).
    #
    # "trailing" spacing starts sampling at t=999 (pure noise, where the model was trained on
    # pure noise). diffusers' default "leading" spacing with 20 steps starts at t=951, where the
    # model expects ~8% signal in its input (alpha-bar 0.006) and so reads a head-and-shoulders
    # layout, and with it a presentation, out of the starting noise; the caption never got to
    # decide (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed";
    # RESULTS §7f: the same seeds gave the same presentation for "Arztes" and "Ärztin").
    clip = prediction_type != "sample"
    return DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type=prediction_type,
                         clip_sample=clip, thresholding=clip, sample_max_value=1.0, steps_offset=1,
                         timestep_spacing="trailing")
