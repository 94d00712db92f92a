"""CLIP through transformers' ``CLIPModel``: offline loading and batched, normalized encoding.

The one home of CLIP for the project: magbig's zero-shot ``clip`` classifier and its
text-image alignment scores both encode with :class:`ClipEncoder`. transformers' CLIPModel,
not open_clip, because open_clip needs torchvision (design.md); the OpenAI weights are the
same ones GenEval uses.

Nothing downloads: a hub id must already be in the local Hugging Face cache. Weights load from
``model.safetensors`` only, unless ``allow_pickle`` (:mod:`neobabel.weights`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from neobabel._logging import muted_transformers
from neobabel.devices import torch_device
from neobabel.scorers.hub import load_pretrained, resolve_model_folder

CLIP_DEFAULT_MODEL = "openai/clip-vit-large-patch14"
# The snapshot with model.safetensors, as it appears in public Hugging Face caches
# (models--openai--clip-vit-large-patch14/snapshots/32bd6428...). Not re-verified against the
# Hub from here (no network): check with `hf download openai/clip-vit-large-patch14 --revision`.
CLIP_DEFAULT_REVISION = "32bd64288804d66eefd0ccbe215aa642df71cc41"


def resolve_clip_model(model: str | os.PathLike = CLIP_DEFAULT_MODEL, revision: str | None = None) -> Path:
    """The local folder of a CLIP model: ``model`` itself when it is a folder, else the
    snapshot of hub id ``model`` (at ``revision``; pinned for :data:`CLIP_DEFAULT_MODEL`) in
    the local Hugging Face cache. Never downloads: InputError (ModelNotAvailableError) naming
    the model and how to provide it (:func:`neobabel.scorers.hub.resolve_model_folder`).
    """
    return resolve_model_folder(model, "CLIP", revision=revision, pinned={CLIP_DEFAULT_MODEL: CLIP_DEFAULT_REVISION})


def load_clip_model(folder: str | os.PathLike, device: Any = "cpu", allow_pickle: bool = False):
    """``(CLIPModel in eval mode on device, CLIPProcessor)`` from a local folder (see
    :func:`resolve_clip_model`), with local_files_only and transformers' logging muted.
    A folder that does not hold a loadable model is an InputError (ModelNotAvailableError).
    Weights load from ``model.safetensors`` only, unless ``allow_pickle`` (neobabel.weights)."""
    # transformers is heavy; it loads only when a model does.
    from transformers import CLIPModel, CLIPProcessor

    if not hasattr(device, "type"):
        device = torch_device(device)
    # Without torchvision, CLIPProcessor picks the PIL image processor (CLIPImageProcessorPil in
    # transformers 5.x): same resize/crop/normalize.
    return load_pretrained(CLIPModel, CLIPProcessor, Path(folder), "CLIP", device, allow_pickle)


def pooled_output(out):
    """transformers 5 returns a BaseModelOutputWithPooling from get_*_features (projected
    embeddings in ``pooler_output``); 4.x returned the tensor itself."""
    return out if hasattr(out, "shape") else out.pooler_output


class ClipEncoder:
    """One loaded CLIP model: images and texts -> L2-normalized projected embeddings.

    Embeddings are float32 tensors on the model's device, one row per input, in input order.
    Each call (or each ``batch_size`` chunk) is one forward pass; texts are padded to the
    longest in their pass and truncated at :attr:`max_tokens`.
    """

    def __init__(self, model, processor, device):
        self.model, self.processor, self.device = model, processor, device

    @classmethod
    def load(cls, model: str | os.PathLike = CLIP_DEFAULT_MODEL, revision: str | None = None,
             device: str | None = "auto", allow_pickle: bool = False) -> ClipEncoder:
        """A folder or a cached hub id (:func:`resolve_clip_model`) on ``device`` (``auto``:
        CUDA when available)."""
        dev = torch_device(device)
        net, processor = load_clip_model(resolve_clip_model(model, revision), dev, allow_pickle)
        return cls(net, processor, dev)

    @property
    def max_tokens(self) -> int:
        """The longest text the text tower reads: the tokenizer's limit or the position table's."""
        limits = [getattr(self.processor.tokenizer, "model_max_length", None),
                  getattr(self.model.config.text_config, "max_position_embeddings", None)]
        return min(int(v) for v in limits if isinstance(v, int) and 0 < v < 10**6)

    @property
    def logit_scale(self):
        """CLIP's learned temperature, exp(logit_scale), as float32."""
        return self.model.logit_scale.exp().float()

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text before truncation (more than :attr:`max_tokens` means truncated)."""
        with muted_transformers():  # "sequence longer than 77" is the caller's to record, not printed
            return [len(ids) for ids in self.processor.tokenizer(list(texts))["input_ids"]]

    def encode_texts(self, texts: Sequence[str], batch_size: int | None = None):
        """(n, d) normalized text embeddings; one pass per ``batch_size`` texts (all by default)."""
        return self._batched(list(texts), batch_size, self._encode_text_batch)

    def encode_images(self, images: Sequence, batch_size: int | None = None):
        """(n, d) normalized image embeddings of PIL images; one pass per ``batch_size``."""
        return self._batched(list(images), batch_size, self._encode_image_batch)

    def _batched(self, items: list, batch_size: int | None, encode):
        import torch  # heavy: imported with the model, kept out of this module's import

        if not items:
            return torch.zeros((0, self.model.config.projection_dim), device=self.device)
        step = batch_size or len(items)
        with torch.inference_mode():
            parts = [encode(items[i:i + step]) for i in range(0, len(items), step)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _encode_text_batch(self, texts: list[str]):
        enc = self.processor.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens,
                                       return_tensors="pt").to(self.device)
        return _normalized(pooled_output(self.model.get_text_features(**enc)).float())

    def _encode_image_batch(self, images: list):
        pixels = self.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
        pixels = pixels.to(self.device, self.model.dtype)
        return _normalized(pooled_output(self.model.get_image_features(pixel_values=pixels)).float())


def _normalized(feats):
    return feats / feats.norm(dim=-1, keepdim=True)
