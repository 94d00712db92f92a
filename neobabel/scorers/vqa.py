"""Visual question answering backends: a batch of (image, yes/no question) -> P(yes).

The contract (:class:`VqaBackend`): ``p_yes(images, questions)`` returns one probability per
pair, in input order; "yes" is the answer when P(yes) >= 0.5. ``p_yes_questions`` takes objects
with a ``question`` attribute (m-DPG's questions) and is what :mod:`neobabel.eval.dpg` calls.

P(yes) for the generative models is read from the first answer token, as the model would
generate it: softmax over the two logits of the first token of "yes" and of "no" at the first
decoding step (BLIP: the answer decoder after its start token; PaliGemma: the next token after
the prompt). Greedy decoding would answer "yes" exactly when that P(yes) > 0.5 and yes/no are
the two likeliest tokens; reading the probability keeps the model's confidence.

Backends (transformers only, no torchvision):

- ``blip``: BLIP VQA (:class:`transformers.BlipForQuestionAnswering`), default
  ``Salesforce/blip-vqa-base``. The answer decoder reads each question unpadded (transformers
  drops BLIP's cross-attention mask, see ``_first_token_logits``), so a question's answer does not
  depend on the batch it is in.
- ``paligemma``: PaliGemma (:class:`transformers.PaliGemmaForConditionalGeneration`), default
  ``google/paligemma-3b-mix-224``, prompt ``"answer en <question>"`` (its VQA task prefix),
  left padding.

Neither is DPG-Bench's own VQA model (mPLUG-large through modelscope): results say
"non-reference backend".
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from neobabel._logging import muted_transformers
from neobabel.devices import torch_device
from neobabel.scorers.hub import load_failure, load_pretrained, resolve_model_folder

BLIP_VQA_MODEL = "Salesforce/blip-vqa-base"
PALIGEMMA_MODEL = "google/paligemma-3b-mix-224"
# Snapshots as they appear in public Hugging Face caches (models--<org>--<name>/snapshots/<rev>);
# not re-verified against the Hub from here (no network).
PINNED_REVISIONS = {
    BLIP_VQA_MODEL: "787b3d35d57e49572baabd22884b3d5a05acf072",
    PALIGEMMA_MODEL: "2e5297fcd60e2dd9b5a890a1421a93485921b277",
}
DPG_REFERENCE_VQA = "mPLUG-large (damo/mplug_visual-question-answering_coco_large_en, modelscope)"


class VqaBackend(Protocol):
    name: str
    reference: bool  # is this DPG-Bench's own VQA model?

    def p_yes(self, images: Sequence[Any], questions: Sequence[str]) -> np.ndarray: ...

    def p_yes_questions(self, images: Sequence[Any], questions: Sequence[Any]) -> np.ndarray: ...


class _TextVqa:
    """Shared by the transformers backends: batching, the yes/no token ids, the softmax."""

    name = "vqa"
    reference = False

    def __init__(self, model, processor, device, batch_size: int = 16):
        self.model, self.processor, self.device, self.batch_size = model, processor, device, batch_size
        tok = processor.tokenizer
        ids = [tok.encode(w, add_special_tokens=False) for w in ("yes", "no")]
        if not ids[0] or not ids[1] or ids[0][0] == ids[1][0]:
            raise load_failure(self.name, getattr(model, "name_or_path", "?"),
                               ValueError("the tokenizer has no distinct first tokens for 'yes' and 'no'"))
        self.yes_id, self.no_id = ids[0][0], ids[1][0]

    def p_yes(self, images: Sequence[Any], questions: Sequence[str]) -> np.ndarray:
        if len(images) != len(questions):
            raise ValueError(f"{len(images)} images but {len(questions)} questions")
        import torch  # heavy: with the model

        out = []
        with torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                logits = self._first_token_logits([im.convert("RGB") for im in images[i:i + self.batch_size]],
                                                  list(questions[i:i + self.batch_size])).float()
                pair = torch.stack([logits[:, self.yes_id], logits[:, self.no_id]], dim=-1)
                out.append(pair.softmax(-1)[:, 0].cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def p_yes_questions(self, images: Sequence[Any], questions: Sequence[Any]) -> np.ndarray:
        return self.p_yes(images, [q.question for q in questions])

    def _first_token_logits(self, images: list, questions: list[str]):  # pragma: no cover
        raise NotImplementedError


class BlipVqa(_TextVqa):
    name = "blip"

    @classmethod
    def load(cls, model: str | os.PathLike = BLIP_VQA_MODEL, revision: str | None = None,
             device: str | None = "auto", allow_pickle: bool = False, batch_size: int = 16) -> "BlipVqa":
        from transformers import AutoProcessor, BlipForQuestionAnswering  # heavy: only when a model loads

        folder = resolve_model_folder(model, "BLIP VQA", revision=revision, pinned=PINNED_REVISIONS)
        dev = torch_device(device)
        net, processor = load_pretrained(BlipForQuestionAnswering, AutoProcessor, folder, "BLIP VQA", dev, allow_pickle)
        backend = cls(net, processor, dev, batch_size)
        backend.name = f"blip ({model})"
        return backend

    def _first_token_logits(self, images, questions):
        import torch

        enc = self.processor(images=images, text=questions, return_tensors="pt", padding=True).to(self.device)
        m = self.model
        image_embeds = m.vision_model(pixel_values=enc["pixel_values"].to(m.dtype)).last_hidden_state
        image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=self.device)
        q = m.text_encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                           encoder_hidden_states=image_embeds, encoder_attention_mask=image_mask).last_hidden_state
        # transformers 5.23's BLIP text attention drops the cross-attention mask (it reads
        # encoder_attention_mask, which its caller passes as attention_mask), so padded question
        # tokens would be attended. Run the one-step decoder per question length, unpadded.
        lengths = enc["attention_mask"].sum(-1)
        logits = [None] * q.shape[0]
        for n in lengths.unique().tolist():
            rows = (lengths == n).nonzero().flatten()
            start = torch.full((len(rows), 1), m.decoder_start_token_id, device=self.device)
            out = m.text_decoder(input_ids=start, encoder_hidden_states=q[rows, :n])
            for r, lg in zip(rows.tolist(), out.logits[:, -1, :]):
                logits[r] = lg
        return torch.stack(logits)


class PaliGemmaVqa(_TextVqa):
    name = "paligemma"
    prompt = "answer en {question}"

    @classmethod
    def load(cls, model: str | os.PathLike = PALIGEMMA_MODEL, revision: str | None = None,
             device: str | None = "auto", allow_pickle: bool = False, batch_size: int = 8) -> "PaliGemmaVqa":
        from transformers import AutoProcessor, PaliGemmaForConditionalGeneration  # heavy

        folder = resolve_model_folder(model, "PaliGemma", revision=revision, pinned=PINNED_REVISIONS)
        dev = torch_device(device)
        net, processor = load_pretrained(PaliGemmaForConditionalGeneration, AutoProcessor, folder, "PaliGemma", dev, allow_pickle)
        processor.tokenizer.padding_side = "left"  # the next token is read at the last position
        backend = cls(net, processor, dev, batch_size)
        backend.name = f"paligemma ({model})"
        return backend

    def _first_token_logits(self, images, questions):
        texts = [f"<image>{self.prompt.format(question=q)}" for q in questions]
        with muted_transformers():
            enc = self.processor(images=images, text=texts, return_tensors="pt", padding="longest")
        enc = {k: v.to(self.device) for k, v in enc.items() if k != "labels"}
        enc["pixel_values"] = enc["pixel_values"].to(self.model.dtype)
        return self.model(**enc).logits[:, -1, :]


VQA_BACKENDS = ("blip", "paligemma", "world")


def load_vqa(kind: str, model: str | None = None, device: str | None = "auto", **kw) -> VqaBackend:
    """A VQA backend by name: ``blip`` or ``paligemma`` (``model`` = folder or cached hub id).
    The world's exact oracle lives with the world (:mod:`neobabel.eval.dpgworld`)."""
    if kind == "blip":
        return BlipVqa.load(model or BLIP_VQA_MODEL, device=device, **kw)
    if kind == "paligemma":
        return PaliGemmaVqa.load(model or PALIGEMMA_MODEL, device=device, **kw)
    from neobabel.errors import InputError

    raise InputError(f"unknown VQA backend {kind!r}; use one of: blip, paligemma (or world for world prompts)")


__all__ = ["BLIP_VQA_MODEL", "PALIGEMMA_MODEL", "PINNED_REVISIONS", "DPG_REFERENCE_VQA", "VqaBackend",
           "BlipVqa", "PaliGemmaVqa", "VQA_BACKENDS", "load_vqa"]
