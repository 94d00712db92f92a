"""Diffusers-compatible components of neobabel's own (resolved by `_class_name` on load)."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from torch.nn import functional as F


class PixelShuffleAutoencoder(ModelMixin, ConfigMixin):
    """An exact, almost parameter-free "autoencoder" for small pixel-space models.

    encode = pixel-unshuffle (e.g. 64x64x3 -> 32x32x12), decode = pixel-shuffle followed by a
    3x3 convolution initialised to the identity, which training may use to smooth the faint
    checkerboard unshuffling leaves in flat areas. Diffusers pipelines derive their latent
    scale from `block_out_channels` (2 ** (len - 1)), so the factor is expressed that way and
    the standard Stable Diffusion pipeline code path runs unchanged.
    """

    @register_to_config
    def __init__(self, in_channels: int = 3, block_out_channels: tuple[int, ...] = (3, 3),
                 scaling_factor: float = 1.0, force_upcast: bool = False):
        super().__init__()
        self.factor = 2 ** (len(block_out_channels) - 1)
        self.smooth = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        with torch.no_grad():
            self.smooth.weight.zero_()
            self.smooth.bias.zero_()
            for c in range(in_channels):
                self.smooth.weight[c, c, 1, 1] = 1.0

    @property
    def latent_channels(self) -> int:
        return self.config.in_channels * self.factor**2

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(x, self.factor)

    def decode(self, z: torch.Tensor, return_dict: bool = True, generator=None):
        x = self.smooth(F.pixel_shuffle(z, self.factor))
        return DecoderOutput(sample=x) if return_dict else (x,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x), return_dict=False)[0]

