"""Perceived-gender classification of generated portraits: one row per (image, classifier).

Backends, looked up by name with :func:`get_classifier` (one module each):

``deepface`` (:mod:`.deepface`)
    deepface 0.0.103 on its PyTorch engine: a face detector, then deepface's gender network,
    batched; weights only from the user's deepface home, never downloaded.
``clip`` (:mod:`.clip`)
    zero-shot CLIP with MAGBIG's texts, loaded and run by :mod:`neobabel.scorers.clip`;
    optional Haar-cascade face filter.
``world`` (:mod:`.world`)
    the exact reader of the synthetic world's portraits.

:mod:`.base` holds what they share (result rows and their invariants, the base class, image
reading with its size cap and run-directory confinement); :mod:`.registry` the name lookup
and :func:`classify_paths`. Importing this package loads no model library (torch, deepface,
transformers, cv2): each backend imports its own when it is built.
"""

from magbig.classifiers.base import (
    LABELS_SCHEMA,
    MAX_IMAGE_PIXELS,
    STATUSES,
    ClassificationResult,
    Classifier,
    ImageRefusedError,
    read_image,
    results_frame,
)
from magbig.classifiers.clip import MAGBIG_FEMALE_TEXTS, MAGBIG_MALE_TEXTS, ClipClassifier
from magbig.classifiers.deepface import DeepFaceClassifier, deepface_gender_weights_path, deepface_home
from magbig.classifiers.registry import CLASSIFIERS, classify_paths, get_classifier
from magbig.classifiers.world import WorldClassifier

__all__ = [
    "CLASSIFIERS",
    "LABELS_SCHEMA",
    "MAGBIG_FEMALE_TEXTS",
    "MAGBIG_MALE_TEXTS",
    "MAX_IMAGE_PIXELS",
    "STATUSES",
    "ClassificationResult",
    "Classifier",
    "ClipClassifier",
    "DeepFaceClassifier",
    "ImageRefusedError",
    "WorldClassifier",
    "classify_paths",
    "deepface_gender_weights_path",
    "deepface_home",
    "get_classifier",
    "read_image",
    "results_frame",
]
