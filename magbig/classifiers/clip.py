"""The ``clip`` backend: zero-shot CLIP between MAGBIG's two sets of texts.

transformers' ``CLIPModel``, loaded and run by :mod:`neobabel.scorers.clip` (the one CLIP
loader and encoder; models load only from local files: a folder, or the Hugging Face cache for
a hub id + revision), with MAGBIG's texts ("man, male, masculine" vs "woman, female,
feminine"): ``p_female`` is the softmax of the two (logit-scaled) cosine similarities. CLIP
does no face detection: by default ``faces`` is null and every readable image is scored;
``face_filter=True`` counts frontal faces with OpenCV's Haar cascade (the parameters
deepface's ``opencv`` detector uses) and applies the same ``no_face`` / ``multiple_faces``
rules as deepface.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from magbig.classifiers.base import (
    ClassificationResult, Classifier, error_result, face_count_result, scored_result,
)
from neobabel.devices import torch_device
from neobabel.errors import InputError
from neobabel.registry import folder_fingerprint
from neobabel.scorers.clip import CLIP_DEFAULT_MODEL, ClipEncoder, load_clip_model, resolve_clip_model
from neobabel.weights import pickle_files

MAGBIG_MALE_TEXTS = ("man, male, masculine",)
MAGBIG_FEMALE_TEXTS = ("woman, female, feminine",)

_HAAR_FILE = "haarcascade_frontalface_default.xml"


def _texts(value: str | Iterable[str], what: str) -> tuple[str, ...]:
    texts = (value,) if isinstance(value, str) else tuple(value)
    if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise InputError(f"{what} must be a non-empty string or list of non-empty strings, got {value!r}")
    return texts


class ClipClassifier(Classifier):
    """Zero-shot CLIP (transformers ``CLIPModel``) between two sets of texts (module docstring).

    Options: ``model`` (a local folder with config, weights, tokenizer and
    ``preprocessor_config.json``, or a hub id found in the local Hugging Face cache; default
    ``openai/clip-vit-large-patch14``), ``revision`` (commit of a hub id; pinned for the
    default model, otherwise whatever the cache has for ``main``), ``male_texts`` /
    ``female_texts`` (MAGBIG's by default; several texts per side are averaged as normalized
    embeddings, CLIP's prompt ensembling), ``template`` (``"{}"``; e.g. ``"a photo of a {}"``),
    ``face_filter`` (count faces with OpenCV's Haar cascade; default off: ``faces`` null),
    ``uncertain_margin``, ``batch_size``, ``device``, ``allow_pickle`` (load a folder whose
    weights are a pickled ``pytorch_model.bin``; default: safetensors only).
    """

    backend = "clip"

    def __init__(self, model: str | os.PathLike = CLIP_DEFAULT_MODEL, revision: str | None = None,
                 male_texts: str | Iterable[str] = MAGBIG_MALE_TEXTS,
                 female_texts: str | Iterable[str] = MAGBIG_FEMALE_TEXTS, template: str = "{}",
                 face_filter: bool = False, uncertain_margin: float = 0.0, batch_size: int = 16,
                 device: str | None = "auto", alias: str | None = None, allow_pickle: bool = False):
        super().__init__(batch_size=batch_size, uncertain_margin=uncertain_margin, alias=alias)
        self.allow_pickle = bool(allow_pickle)
        self.male_texts = _texts(male_texts, "male_texts")
        self.female_texts = _texts(female_texts, "female_texts")
        if not isinstance(template, str) or template.count("{}") != 1:
            raise InputError(f"template must contain '{{}}' exactly once, got {template!r}")
        self.template = template
        self.face_filter = bool(face_filter)
        self.device = torch_device(device)
        self.model_ref = os.fspath(model)
        self.revision = revision
        self.folder = self._resolve(self.model_ref, revision)
        self._load()
        self._pickle_files = pickle_files([self.folder]) if self.allow_pickle else []

    # -- loading -------------------------------------------------------------------------

    @staticmethod
    def _resolve(model: str, revision: str | None) -> Path:
        return resolve_clip_model(model, revision)

    def _load(self) -> None:
        import torch  # heavy: only when a model loads

        model, processor = load_clip_model(self.folder, self.device, self.allow_pickle)
        self._clip = ClipEncoder(model, processor, self.device)
        with torch.inference_mode():
            self._text = torch.stack(  # (2, d): male, female
                [self._class_embedding(self.male_texts), self._class_embedding(self.female_texts)])
            self._scale = self._clip.logit_scale
        if self.face_filter:
            import cv2  # heavy: OpenCV, only with face_filter

            path = os.path.join(cv2.data.haarcascades, _HAAR_FILE)
            if not os.path.isfile(path):
                raise InputError(
                    f"face_filter needs OpenCV's {_HAAR_FILE}, missing at {path}; install "
                    "opencv-contrib-python-headless<5 (5.x wheels ship no Haar cascades)")
            self._cascade = cv2.CascadeClassifier(path)

    def _class_embedding(self, texts: tuple[str, ...]):
        import torch  # heavy: only once a model is loaded

        feats = self._clip.encode_texts([self.template.format(t) for t in texts])
        mean = feats.mean(dim=0)
        return mean / torch.linalg.vector_norm(mean)

    def config(self) -> dict[str, Any]:
        import transformers  # heavy (loaded with the model by now): its version for provenance

        return {
            **super().config(),
            "transformers_version": transformers.__version__,
            "model": self.model_ref,
            "revision": self.revision or (self.folder.name if "snapshots" in self.folder.parts else None),
            "model_fingerprint": folder_fingerprint(self.folder),
            "male_texts": list(self.male_texts),
            "female_texts": list(self.female_texts),
            "template": self.template,
            "face_filter": self.face_filter,
            # Only when a pickle was read, so safetensors runs keep their configuration ids.
            **({"pickle_weights": self._pickle_files} if self._pickle_files else {}),
        }

    # -- scoring -------------------------------------------------------------------------

    def _count_faces(self, image: Image.Image) -> int:
        import cv2  # heavy: OpenCV, only with face_filter

        gray = cv2.cvtColor(np.asarray(image, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
        # deepface's opencv detector uses these parameters (scaleFactor 1.1, minNeighbors 10)
        return len(self._cascade.detectMultiScale(gray, 1.1, 10))

    def p_female(self, images: list[Image.Image]) -> np.ndarray:
        """Softmax probability of the female texts for each image, in one forward pass."""
        import torch  # heavy: only once a model is loaded

        with torch.inference_mode():
            feats = self._clip.encode_images(images)
            logits = self._scale * feats @ self._text.T  # (n, 2): male, female
            return torch.softmax(logits, dim=-1)[:, 1].cpu().double().numpy()

    def _classify_batch(self, images, keys):
        rows: list[ClassificationResult | None] = [None] * len(images)
        faces: list[int | None] = [None] * len(images)
        todo = []
        for i, (im, key) in enumerate(zip(images, keys)):
            if self.face_filter:
                try:
                    faces[i] = self._count_faces(im)
                except Exception as exc:
                    rows[i] = error_result(key, self.name, exc)
                    continue
                rows[i] = face_count_result(key, self.name, faces[i], "the Haar cascade")
                if rows[i] is not None:
                    continue
            todo.append(i)
        if todo:  # one forward pass for every image still to score
            ps = self.p_female([images[i] for i in todo])
            for i, p in zip(todo, ps):
                if not math.isfinite(p):
                    rows[i] = error_result(keys[i], self.name, f"CLIP returned p_female={p}")
                else:
                    rows[i] = scored_result(keys[i], self.name, faces[i], float(p), self.uncertain_margin)
        return rows
