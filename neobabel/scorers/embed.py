"""Image embedders for cross-lingual consistency: PIL images -> L2-normalized vectors.

- ``clip``: CLIP's projected image features (transformers ``CLIPModel.get_image_features``,
  through :class:`neobabel.scorers.clip.ClipEncoder`), default ``openai/clip-vit-large-patch14``.
  Semantic: two images of the same content in different layouts stay close.
- ``dinov2``: DINOv2's CLS token (transformers ``Dinov2Model``, the layer-normed
  ``pooler_output``), default ``facebook/dinov2-base``. More sensitive to layout and appearance.

Both are offline: a local folder or a hub id already in the Hugging Face cache (pinned
revisions); anything else is a one-paragraph ModelNotAvailableError.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from neobabel.devices import torch_device
from neobabel.scorers.hub import load_pretrained, resolve_model_folder

DINOV2_MODEL = "facebook/dinov2-base"
# As it appears in public Hugging Face caches; not re-verified against the Hub from here.
DINOV2_REVISION = "f9e44c814b77203eaa57a6bdbbd535f21ede1415"
EMBEDDERS = ("clip", "dinov2")


class ImageEmbedder(Protocol):
    name: str

    def embed(self, images: Sequence[Any]) -> np.ndarray: ...


class ClipImageEmbedder:
    def __init__(self, encoder, name: str, batch_size: int = 32):
        self.encoder, self.name, self.batch_size = encoder, name, batch_size

    @classmethod
    def load(cls, model: str | os.PathLike | None = None, device: str | None = "auto",
             allow_pickle: bool = False, batch_size: int = 32) -> "ClipImageEmbedder":
        from neobabel.scorers.clip import CLIP_DEFAULT_MODEL, ClipEncoder

        model = model or CLIP_DEFAULT_MODEL
        return cls(ClipEncoder.load(model, device=device, allow_pickle=allow_pickle), f"clip ({model})", batch_size)

    def embed(self, images: Sequence[Any]) -> np.ndarray:
        rgb = [im.convert("RGB") for im in images]
        return self.encoder.encode_images(rgb, batch_size=self.batch_size).cpu().numpy()


class Dinov2Embedder:
    def __init__(self, model, processor, device, name: str, batch_size: int = 32):
        self.model, self.processor, self.device, self.name, self.batch_size = model, processor, device, name, batch_size

    @classmethod
    def load(cls, model: str | os.PathLike | None = None, device: str | None = "auto",
             allow_pickle: bool = False, batch_size: int = 32) -> "Dinov2Embedder":
        from transformers import AutoImageProcessor, Dinov2Model  # heavy: only when a model loads

        model = model or DINOV2_MODEL
        folder = resolve_model_folder(model, "DINOv2", pinned={DINOV2_MODEL: DINOV2_REVISION})
        dev = torch_device(device)
        net, processor = load_pretrained(Dinov2Model, AutoImageProcessor, folder, "DINOv2", dev, allow_pickle)
        return cls(net, processor, dev, f"dinov2 ({model})", batch_size)

    def embed(self, images: Sequence[Any]) -> np.ndarray:
        import torch  # heavy: with the model

        parts = []
        with torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                chunk = [im.convert("RGB") for im in images[i:i + self.batch_size]]
                pixels = self.processor(images=chunk, return_tensors="pt")["pixel_values"].to(self.device, self.model.dtype)
                cls_token = self.model(pixel_values=pixels).pooler_output.float()  # CLS after the final layer norm
                parts.append((cls_token / cls_token.norm(dim=-1, keepdim=True)).cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, self.model.config.hidden_size), np.float32)


def load_embedder(kind: str, model: str | None = None, device: str | None = "auto", **kw) -> ImageEmbedder:
    if kind == "clip":
        return ClipImageEmbedder.load(model, device=device, **kw)
    if kind == "dinov2":
        return Dinov2Embedder.load(model, device=device, **kw)
    from neobabel.errors import InputError

    raise InputError(f"unknown image encoder {kind!r}; use one of: {', '.join(EMBEDDERS)}")


__all__ = ["DINOV2_MODEL", "DINOV2_REVISION", "EMBEDDERS", "ImageEmbedder", "ClipImageEmbedder", "Dinov2Embedder",
           "load_embedder"]
