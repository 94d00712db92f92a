"""Detection backends for m-GenEval, through transformers only (no mmdet, no torchvision).

- :class:`Mask2FormerDetector` (default): Mask2Former Swin-S COCO instance segmentation, the
  reference detector's architecture. GenEval itself runs mmdet 2.x's
  ``mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco`` checkpoint; this is the same architecture
  with Meta's released weights (converted to transformers by the Hub's
  ``facebook/mask2former-swin-small-coco-instance``), preprocessed by that repository's image
  processor (mmdet's test pipeline resizes to 1333x800 with keep-ratio) and post-processed the
  way mmdet does it (top 100 query x class scores, mask score times class score, boxes from the masks).
  So its numbers are close to, not equal to, GenEval's: results say "non-reference backend".
- :class:`Owlv2Detector`: OWLv2 open-vocabulary detection; the class names are the text
  queries, so any vocabulary works. No masks (colour crops then use the box only).
- :class:`ClipColorClassifier`: GenEval's colour rule: zero-shot CLIP ViT-L/14 over the 10
  colours x 3 templates, on the object's mask composited over #999 and cropped to its box.

Nothing downloads: hub ids must already be in the local Hugging Face cache (pinned revisions
below), or pass a folder saved with ``save_pretrained``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from neobabel.devices import torch_device
from neobabel.errors import InputError
from neobabel.scorers.detection import Detection
from neobabel.scorers.hub import load_pretrained, resolve_model_folder

MASK2FORMER_DEFAULT_MODEL = "facebook/mask2former-swin-small-coco-instance"
# No snapshot hash of this repository could be checked from here (no network, none in the
# public caches we can read): None loads the cache's `main`. Pin with --detector-revision.
MASK2FORMER_DEFAULT_REVISION: str | None = None
OWLV2_DEFAULT_MODEL = "google/owlv2-base-patch16-ensemble"
# The snapshot seen in public Hugging Face caches (models--google--owlv2-base-patch16-ensemble/
# snapshots/cfd3195b...); not re-verified against the Hub from here.
OWLV2_DEFAULT_REVISION = "cfd3195ba4ea9592eec887ded089f4c08eff231d"

REFERENCE_BACKEND = "mmdet Mask2Former Swin-S (mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco)"
NON_REFERENCE = "non-reference backend"

#: GenEval's colour prompts (evaluate_images.py) and background for the composite.
COLOR_TEMPLATES = ("a photo of a {c} {cls}", "a photo of a {c}-colored {cls}", "a photo of a {c} object")
COLOR_BACKGROUND = "#999"


def resolve_model(model: str | os.PathLike, revision: str | None, what: str, default_model: str,
                  default_revision: str | None) -> Path:
    """The local folder of a detector (neobabel.scorers.hub), the default model at its pin."""
    return resolve_model_folder(model, what, revision=revision, pinned={default_model: default_revision}
                                if default_revision else None)


def mask_to_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """mmdet's mask2bbox: (x0, y0, x_last + 1, y_last + 1); zeros for an empty mask."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if not len(xs):
        return (0.0, 0.0, 0.0, 0.0)
    return (float(xs[0]), float(ys[0]), float(xs[-1] + 1), float(ys[-1] + 1))


def _rgb(image) -> Image.Image:
    from PIL import ImageOps

    return ImageOps.exif_transpose(image).convert("RGB")


class Mask2FormerDetector:
    """Mask2Former instance segmentation -> the detection contract (boxes, scores, masks)."""

    reference = False

    def __init__(self, model, processor, device, class_names: Sequence[str] | None = None,
                 max_per_image: int = 100, source: str = ""):
        self.model, self.processor, self.device = model, processor, device
        id2label = {int(k): v for k, v in model.config.id2label.items()}
        n = len(id2label)
        # GenEval names classes by the detector's class index (object_names.txt in mmdet's
        # COCO order); the Hub's names differ in places ("mouse" vs "computer mouse").
        if class_names is not None and len(class_names) == n:
            self.labels = list(class_names)
        else:
            self.labels = [id2label[i] for i in range(n)]
        self.max_per_image = max_per_image
        self.name = f"transformers Mask2Former ({source or 'local folder'})"
        self.note = (f"{NON_REFERENCE}: same architecture as GenEval's {REFERENCE_BACKEND} through transformers; "
                     "Meta's released weights, the Hub processor's resize, mmdet's instance post-processing")

    @classmethod
    def load(cls, model: str | os.PathLike = MASK2FORMER_DEFAULT_MODEL, revision: str | None = None,
             device: str | None = "auto", class_names: Sequence[str] | None = None,
             allow_pickle: bool = False) -> Mask2FormerDetector:
        from transformers import AutoImageProcessor, Mask2FormerForUniversalSegmentation

        folder = resolve_model(model, revision, "Mask2Former", MASK2FORMER_DEFAULT_MODEL, MASK2FORMER_DEFAULT_REVISION)
        dev = torch_device(device)
        net, proc = load_pretrained(Mask2FormerForUniversalSegmentation, AutoImageProcessor, folder, "Mask2Former", dev,
                          allow_pickle)
        return cls(net, proc, dev, class_names, source=os.fspath(model))

    def detect(self, images: Sequence[Any], labels: Sequence[str] | None = None,
               batch_size: int | None = None) -> list[list[Detection]]:
        # Batches hold images of one size only: padding to a batch's largest image would make a
        # detection depend on its batch mates. batch_size None: the images given are one batch
        # (the caller, score_images, already cuts them to --score-batch-size).
        rgb = [_rgb(im) for im in images]
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(rgb):
            by_size.setdefault(im.size, []).append(i)
        out: list[list[Detection] | None] = [None] * len(rgb)
        for idx in by_size.values():
            step = batch_size or len(idx)
            for j in range(0, len(idx), step):
                chunk = idx[j:j + step]
                for i, dets in zip(chunk, self._detect_batch([rgb[i] for i in chunk])):
                    out[i] = dets
        return out  # type: ignore[return-value]

    def _detect_batch(self, images: list[Image.Image]) -> list[list[Detection]]:
        import torch
        import torch.nn.functional as F

        enc = self.processor(images=images, return_tensors="pt")
        with torch.inference_mode():
            outputs = self.model(pixel_values=enc["pixel_values"].to(self.device, self.model.dtype),
                                 pixel_mask=enc["pixel_mask"].to(self.device))
        padded = enc["pixel_values"].shape[-2:]
        results = []
        for b, image in enumerate(images):
            cls_logits = outputs.class_queries_logits[b].float()  # (Q, C+1)
            mask_logits = outputs.masks_queries_logits[b].float()  # (Q, h, w)
            # mmdet: upsample to the padded input, crop the valid part, resize to the original
            masks = F.interpolate(mask_logits[None], size=padded, mode="bilinear", align_corners=False)[0]
            valid = enc["pixel_mask"][b].bool()
            h_valid = int(valid.any(dim=1).sum())
            w_valid = int(valid.any(dim=0).sum())
            masks = masks[:, :h_valid, :w_valid]
            w, h = image.size
            masks = F.interpolate(masks[None], size=(h, w), mode="bilinear", align_corners=False)[0]
            scores = cls_logits.softmax(-1)[:, :-1]
            n_q, n_c = scores.shape
            k = min(self.max_per_image, n_q * n_c)
            top_scores, top_idx = scores.flatten().topk(k)  # sorted: a stable order of detections
            labels = top_idx % n_c
            queries = top_idx // n_c
            m = masks[queries]
            binary = m > 0
            mask_scores = (m.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
            det_scores = (top_scores * mask_scores).cpu().numpy()
            binary_np = binary.cpu().numpy()
            dets = [Detection(self.labels[int(lab)], float(s), mask_to_box(mb), mb)
                    for lab, s, mb in zip(labels.tolist(), det_scores, binary_np)]
            results.append(dets)
        return results


class Owlv2Detector:
    """OWLv2 open-vocabulary detection: the class names are the text queries; boxes only."""

    reference = False

    def __init__(self, model, processor, device, min_score: float = 0.05, source: str = "",
                 query_template: str = "a photo of a {}"):
        self.model, self.processor, self.device = model, processor, device
        self.min_score = min_score
        self.query_template = query_template
        self.name = f"transformers OWLv2 ({source or 'local folder'})"
        self.note = (f"{NON_REFERENCE}: open-vocabulary OWLv2, not GenEval's {REFERENCE_BACKEND}; sigmoid "
                     "box scores (lower than Mask2Former's), no masks (colour on the box crop)")

    @classmethod
    def load(cls, model: str | os.PathLike = OWLV2_DEFAULT_MODEL, revision: str | None = None,
             device: str | None = "auto", allow_pickle: bool = False, min_score: float = 0.05) -> Owlv2Detector:
        from transformers import Owlv2ForObjectDetection, Owlv2Processor

        folder = resolve_model(model, revision, "OWLv2", OWLV2_DEFAULT_MODEL, OWLV2_DEFAULT_REVISION)
        dev = torch_device(device)
        net, proc = load_pretrained(Owlv2ForObjectDetection, Owlv2Processor, folder, "OWLv2", dev, allow_pickle)
        return cls(net, proc, dev, min_score, source=os.fspath(model))

    def detect(self, images: Sequence[Any], labels: Sequence[str] | None = None,
               batch_size: int | None = None) -> list[list[Detection]]:
        import torch

        if not labels:
            raise InputError("OWLv2 needs the class names to look for (its text queries)")
        labels = list(labels)
        queries = [self.query_template.format(c) for c in labels]
        out: list[list[Detection]] = []
        step = batch_size or max(1, len(images))  # None: the images given are one batch (see Mask2Former)
        for i in range(0, len(images), step):
            batch = [_rgb(im) for im in images[i:i + step]]
            enc = self.processor(text=[queries] * len(batch), images=batch, return_tensors="pt", padding=True)
            enc = {k: v.to(self.device) for k, v in enc.items()}
            with torch.inference_mode():
                outputs = self.model(**enc)
            sizes = [(im.size[1], im.size[0]) for im in batch]
            post = self.processor.image_processor.post_process_object_detection(
                outputs, threshold=self.min_score, target_sizes=sizes)
            for r in post:
                out.append([Detection(labels[int(lab)], float(s), tuple(float(v) for v in box))
                            for s, lab, box in zip(r["scores"].tolist(), r["labels"].tolist(), r["boxes"].tolist())])
        return out


class ClipColorClassifier:
    """GenEval's colour classifier: per class, a zero-shot head over the colours (3 templates,
    mean of normalized text embeddings, renormalized); each object's crop is its mask pasted
    on #999, cropped to its box; the colour is the argmax."""

    def __init__(self, encoder, colors: Sequence[str], templates: Sequence[str] = COLOR_TEMPLATES,
                 background: str = COLOR_BACKGROUND):
        self.encoder = encoder
        self.colors = tuple(colors)
        self.templates = tuple(templates)
        self.background = background
        self._heads: dict[str, Any] = {}
        self.name = "CLIP zero-shot colour (transformers CLIPModel)"

    @classmethod
    def load(cls, model: str | os.PathLike | None = None, device: str | None = "auto", colors: Sequence[str] = (),
             allow_pickle: bool = False) -> ClipColorClassifier:
        from neobabel.scorers.clip import CLIP_DEFAULT_MODEL, ClipEncoder

        return cls(ClipEncoder.load(model or CLIP_DEFAULT_MODEL, device=device, allow_pickle=allow_pickle), colors)

    def head(self, cls_name: str):
        if cls_name not in self._heads:
            texts = [t.format(c=c, cls=cls_name) for c in self.colors for t in self.templates]
            emb = self.encoder.encode_texts(texts).reshape(len(self.colors), len(self.templates), -1)
            head = emb.mean(dim=1)  # each row is normalized already (ClipEncoder)
            self._heads[cls_name] = head / head.norm(dim=-1, keepdim=True)
        return self._heads[cls_name]

    def crops(self, image, detections: Sequence[Detection]) -> list[Image.Image]:
        image = _rgb(image)
        blank = Image.new("RGB", image.size, color=self.background)
        out = []
        for d in detections:
            im = image
            if d.mask is not None:
                mask = Image.fromarray(np.asarray(d.mask, dtype=np.uint8) * 255)
                im = Image.composite(image, blank, mask)
            out.append(im.crop(tuple(d.box[:4])))
        return out

    def __call__(self, image, detections: Sequence[Detection]) -> list[str]:
        if not detections:
            return []
        feats = self.encoder.encode_images(self.crops(image, detections))
        logits = feats @ self.head(detections[0].label).T
        return [self.colors[int(i)] for i in logits.argmax(dim=1).tolist()]


__all__ = [
    "Mask2FormerDetector", "Owlv2Detector", "ClipColorClassifier", "resolve_model", "mask_to_box",
    "MASK2FORMER_DEFAULT_MODEL", "MASK2FORMER_DEFAULT_REVISION", "OWLV2_DEFAULT_MODEL", "OWLV2_DEFAULT_REVISION",
    "REFERENCE_BACKEND", "NON_REFERENCE", "COLOR_TEMPLATES", "COLOR_BACKGROUND",
]
