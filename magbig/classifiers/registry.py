"""Backends by name, and the batch API over image files.

The registry lives here, above the backends, and not in ``base.py``: the backends import the
base class, so a registry in ``base.py`` naming them would be an import cycle.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import polars as pl

from magbig.classifiers.base import ClassificationResult, Classifier, check_batch_size, results_frame
from magbig.classifiers.clip import ClipClassifier
from magbig.classifiers.deepface import DeepFaceClassifier
from magbig.classifiers.world import WorldClassifier
from neobabel.errors import InputError

CLASSIFIERS: dict[str, type[Classifier]] = {
    "deepface": DeepFaceClassifier,
    "clip": ClipClassifier,
    "world": WorldClassifier,
}


def get_classifier(name: str, *, allow_pickle: bool = False, **options: Any) -> Classifier:
    """Build a backend by name (``deepface``, ``clip``, ``world``) with its options.

    ``allow_pickle`` (CLI ``--allow-pickle``) reaches the backends that load transformers
    weights (``clip``); ``deepface`` reads its one published ``.pth`` with
    ``torch.load(weights_only=True)`` either way, ``world`` has no weights.
    Raises InputError for an unknown name or option, and ModelNotAvailableError (an InputError)
    when the backend's weights are not present locally.
    """
    cls = CLASSIFIERS.get(str(name).strip().lower()) if isinstance(name, str) else None
    if cls is None:
        raise InputError(f"unknown classifier {name!r}; use one of {', '.join(CLASSIFIERS)}")
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    if allow_pickle and "allow_pickle" in allowed:
        options["allow_pickle"] = True
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise InputError(f"unknown option {unknown[0]!r} for classifier {name!r}; options: {', '.join(allowed)}")
    return cls(**options)


def classify_paths(paths: Iterable[str | os.PathLike], classifier: Classifier | str,
                   batch_size: int | None = None, keys: Sequence[str] | None = None,
                   progress: Callable[[int, int], None] | None = None, **options: Any) -> pl.DataFrame:
    """Classify image files; one row per path, in order, with :data:`LABELS_SCHEMA` columns.

    ``classifier`` is a :class:`Classifier` or a backend name (then ``options`` build it).
    Files are read ``batch_size`` at a time (default: the classifier's), so memory stays flat.
    ``keys`` (default: the paths as given) fill the ``image`` column. ``progress(done, total)``
    is called after each batch. Unreadable files (missing, truncated, not an image) are
    ``error`` rows.
    """
    if isinstance(classifier, str):
        classifier = get_classifier(classifier, **options)
    elif options:
        raise InputError(f"options {sorted(options)} only apply when the classifier is given by name")
    paths = [os.fspath(p) for p in paths]
    if keys is None:
        keys = paths
    elif len(keys) != len(paths):
        raise InputError(f"got {len(keys)} keys for {len(paths)} paths; pass one key per path")
    bs = check_batch_size(batch_size) if batch_size is not None else classifier.batch_size
    rows: list[ClassificationResult] = []
    for start in range(0, len(paths), bs):
        chunk = slice(start, start + bs)
        rows.extend(classifier.classify(paths[chunk], keys=[str(k) for k in keys[chunk]], batch_size=bs))
        if progress is not None:
            progress(len(rows), len(paths))
    return results_frame(rows)
