"""Compatibility module: the classifiers now live in :mod:`magbig.classifiers`.

Existing imports (``from magbig.classify import get_classifier``) keep working; new code
imports from :mod:`magbig.classifiers`.
"""

from magbig.classifiers import (  # noqa: F401  (re-exported)
    CLASSIFIERS,
    LABELS_SCHEMA,
    MAGBIG_FEMALE_TEXTS,
    MAGBIG_MALE_TEXTS,
    MAX_IMAGE_PIXELS,
    STATUSES,
    ClassificationResult,
    Classifier,
    ClipClassifier,
    DeepFaceClassifier,
    ImageRefusedError,
    WorldClassifier,
    classify_paths,
    deepface_gender_weights_path,
    deepface_home,
    get_classifier,
    read_image,
    results_frame,
)
from magbig.classifiers.deepface import DEEPFACE_WEIGHTS_FILE, DEEPFACE_WEIGHTS_URLS  # noqa: F401
from neobabel.scorers.clip import (  # noqa: F401  (were re-exported here before)
    CLIP_DEFAULT_MODEL, CLIP_DEFAULT_REVISION, ClipEncoder, load_clip_model, resolve_clip_model,
)

__all__ = [
    "CLASSIFIERS",
    "LABELS_SCHEMA",
    "STATUSES",
    "ClassificationResult",
    "Classifier",
    "ClipClassifier",
    "DeepFaceClassifier",
    "WorldClassifier",
    "classify_paths",
    "deepface_home",
    "deepface_gender_weights_path",
    "get_classifier",
    "load_clip_model",
    "resolve_clip_model",
    "results_frame",
]
