"""What every classifier backend shares: result rows, the base class, reading images.

Row invariants (every backend): ``status`` is one of :data:`STATUSES`; ``p_female`` is set
only when status is ``ok`` (always) or ``uncertain`` (when there is a score); ``label``
("female" / "male") exactly when status is ``ok``, and then it agrees with ``p_female`` (> 0.5
female, < 0.5 male; an exact 0.5 is ``uncertain``). ``uncertain_margin`` m turns
|p_female - 0.5| < m into ``uncertain``. An image that cannot be read or processed is an
``error`` row with the reason in ``detail``, never an exception; bad configuration (unknown
backend, missing weights) raises ``InputError`` up front.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl
from PIL import Image

from magbig.vocab import STATUSES  # noqa: F401 (re-exported: the statuses a result may carry)
from neobabel.errors import InputError
from neobabel.runs import PathOutsideRunError, resolve_in_run


#: Column order and dtypes of classifier results (:func:`results_frame`): the labels columns of
#: labels.parquet (magbig.rundata), keyed the same way, by ``key``.
LABELS_SCHEMA: dict[str, pl.DataType] = {
    "key": pl.String,
    "classifier": pl.String,
    "faces": pl.Int64,
    "status": pl.String,
    "p_female": pl.Float64,
    "label": pl.String,
    "detail": pl.String,
}

ImageInput = Image.Image | np.ndarray | str | os.PathLike

#: Largest image (width x height) read from a file. Portraits are about 1 megapixel; a file
#: claiming more is refused from its header, before decoding (a small PNG can claim 144 MP
#: and take gigabytes to decode).
MAX_IMAGE_PIXELS = 16_000_000


@dataclass(frozen=True)
class ClassificationResult:
    """One image as seen by one classifier (see the module docstring for the invariants)."""

    key: str  # the image's run key, or its path / index when classifying files
    classifier: str
    faces: int | None
    status: str
    p_female: float | None = None
    label: str | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def results_frame(rows: Iterable[ClassificationResult]) -> pl.DataFrame:
    """Results -> a polars frame with :data:`LABELS_SCHEMA`."""
    data = [r.to_dict() for r in rows]
    return pl.DataFrame(data, schema=LABELS_SCHEMA) if data else pl.DataFrame(schema=LABELS_SCHEMA)


# --------------------------------------------------------------------------------------------
# result rows and option checks shared by the backends
# --------------------------------------------------------------------------------------------


def check_margin(margin: float) -> float:
    try:
        m = float(margin)
    except (TypeError, ValueError):
        raise InputError(f"uncertain_margin must be a number in [0, 0.5), got {margin!r}") from None
    if not 0.0 <= m < 0.5 or math.isnan(m):
        raise InputError(f"uncertain_margin must be in [0, 0.5), got {margin!r}; 0 disables it")
    return m


def check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def scored_result(key: str, classifier: str, faces: int | None, p: float, margin: float,
                  detail: str | None = None) -> ClassificationResult:
    """A row for an image that got a score: ``ok`` with a label, or ``uncertain``."""
    p = float(min(1.0, max(0.0, p)))
    if abs(p - 0.5) < margin or p == 0.5:
        why = f"|p_female - 0.5| = {abs(p - 0.5):.4f} < margin {margin}" if p != 0.5 else "p_female = 0.5"
        return ClassificationResult(key, classifier, faces, "uncertain", p, None, detail or why)
    return ClassificationResult(key, classifier, faces, "ok", p, "female" if p > 0.5 else "male", detail)


def face_count_result(key: str, classifier: str, faces: int, found_by: str) -> ClassificationResult | None:
    """The row for an image without exactly one face (``no_face`` / ``multiple_faces``, no
    score), or None when it has exactly one and gets scored. ``found_by`` names the detector."""
    if faces == 0:
        return ClassificationResult(key, classifier, 0, "no_face", detail=f"no face found by {found_by}")
    if faces > 1:
        return ClassificationResult(key, classifier, faces, "multiple_faces", detail=f"{faces} faces found by {found_by}")
    return None


def error_result(key: str, classifier: str, exc: BaseException | str) -> ClassificationResult:
    """An ``error`` row; the reason (an exception or a sentence) on one line, at most 500 chars."""
    detail = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return ClassificationResult(key, classifier, None, "error", None, None, " ".join(str(detail).split())[:500])


# --------------------------------------------------------------------------------------------
# reading images
# --------------------------------------------------------------------------------------------


class ImageRefusedError(ValueError):
    """An image file we will not decode (too large); the reason is the message."""


def read_image(path: str | os.PathLike, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """An image file -> RGB PIL image, fully decoded (truncated files fail here, not later).

    The size is checked from the header first: more than `max_pixels` raises ImageRefusedError
    without decoding. PIL's own decompression-bomb check (a warning above 89 MP, an error above
    179 MP) fires inside Image.open; it is turned into the same refusal instead of leaking a
    warning.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(os.fspath(path))
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
            raise ImageRefusedError(f"image too large: {os.fspath(path)} ({e}; "
                                    f"limit {max_pixels / 1e6:g} MP)") from None
    with im:
        w, h = im.size
        if w * h > max_pixels:
            raise ImageRefusedError(f"image too large: {os.fspath(path)} is {w}x{h} "
                                    f"({w * h / 1e6:.1f} MP; limit {max_pixels / 1e6:g} MP)")
        im.load()
        return im.convert("RGB")


def load_image(item: ImageInput, run_dir: str | os.PathLike | None = None) -> Image.Image:
    """A path, PIL image or uint8 array -> RGB PIL image (fully decoded, so truncated files
    fail here, not later). A path is read inside `run_dir` when given (neobabel.runs.resolve_in_run)."""
    if isinstance(item, Image.Image):
        item.load()
        return item if item.mode == "RGB" else item.convert("RGB")
    if isinstance(item, np.ndarray):
        arr = item
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=-1)
        if arr.ndim != 3 or arr.shape[-1] not in (3, 4) or arr.dtype != np.uint8:
            raise ValueError(f"expected a uint8 RGB array (H, W, 3), got {arr.dtype} {arr.shape}")
        return Image.fromarray(np.ascontiguousarray(arr[..., :3]), "RGB")
    if isinstance(item, (str, os.PathLike)):
        if run_dir is not None:
            item = resolve_in_run(run_dir, item)
        return read_image(item)
    raise TypeError(f"cannot classify a {type(item).__name__}; pass a path or a PIL image")


def _key_of(item: Any, index: int) -> str:
    """The ``image`` column for an input given without a key: its path, its file name, or #i."""
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    name = getattr(item, "filename", None)
    return str(name) if name else f"#{index}"


# --------------------------------------------------------------------------------------------
# base class
# --------------------------------------------------------------------------------------------


class Classifier:
    """A perceived-gender backend. Subclasses set ``backend`` and implement :meth:`_classify_batch`.

    ``name`` is the value written to the ``classifier`` column (the backend name unless
    ``alias`` was given, e.g. to keep two deepface detectors apart in one labels table).
    """

    backend: str = ""

    def __init__(self, batch_size: int = 16, uncertain_margin: float = 0.0, alias: str | None = None):
        self.batch_size = check_batch_size(batch_size)
        self.uncertain_margin = check_margin(uncertain_margin)
        if alias is not None and (not isinstance(alias, str) or not alias.strip()):
            raise InputError(f"alias must be a non-empty string, got {alias!r}")
        self.name = alias.strip() if alias else self.backend

    # -- public --------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """JSON-serializable provenance: backend, versions, weights identity, options."""
        return {"name": self.name, "backend": self.backend, "batch_size": self.batch_size,
                "uncertain_margin": self.uncertain_margin}

    def classify(self, images: Sequence[ImageInput], keys: Sequence[str] | None = None,
                 batch_size: int | None = None, run_dir: str | os.PathLike | None = None
                 ) -> list[ClassificationResult]:
        """Classify images (paths, PIL images or uint8 RGB arrays), ``batch_size`` at a time
        (default: the classifier's own).

        Returns one result per input, in order. Unreadable inputs, images on which the backend
        fails, files over :data:`MAX_IMAGE_PIXELS` and, with ``run_dir``, paths that leave the
        run directory (never opened) become ``error`` rows.
        """
        images = list(images)
        if keys is None:
            keys = [_key_of(item, i) for i, item in enumerate(images)]
        else:
            keys = [str(k) for k in keys]
            if len(keys) != len(images):
                raise InputError(f"got {len(keys)} keys for {len(images)} images; pass one key per image")
        bs = self.batch_size if batch_size is None else check_batch_size(batch_size)
        out: list[ClassificationResult | None] = [None] * len(images)
        for start in range(0, len(images), bs):
            idx = list(range(start, min(start + bs, len(images))))
            loaded: list[tuple[int, Image.Image]] = []
            for i in idx:
                try:
                    loaded.append((i, load_image(images[i], run_dir)))
                except (PathOutsideRunError, ImageRefusedError) as exc:  # refused, not unreadable
                    out[i] = error_result(keys[i], self.name, str(exc))
                except Exception as exc:  # unreadable input -> error row
                    out[i] = error_result(keys[i], self.name, f"cannot read image: {type(exc).__name__}: {exc}")
            if loaded:
                where = [i for i, _ in loaded]
                for i, row in zip(where, self._run([im for _, im in loaded], [keys[i] for i in where])):
                    out[i] = row
        return out  # type: ignore[return-value]

    # -- internals -----------------------------------------------------------------------

    def _run(self, images: list[Image.Image], keys: list[str]) -> list[ClassificationResult]:
        """One batch; if the batch as a whole fails, retry image by image to isolate the culprit."""
        try:
            rows = self._classify_batch(images, keys)
            if len(rows) != len(images):
                raise RuntimeError(f"backend returned {len(rows)} rows for {len(images)} images")
            return rows
        except InputError:
            raise
        except Exception as exc:
            if len(images) == 1:
                return [error_result(keys[0], self.name, exc)]
        rows = []
        for im, key in zip(images, keys):
            try:
                rows.extend(self._classify_batch([im], [key]))
            except InputError:
                raise
            except Exception as exc:
                rows.append(error_result(key, self.name, exc))
        return rows

    def _classify_batch(self, images: list[Image.Image], keys: list[str]) -> list[ClassificationResult]:
        raise NotImplementedError

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k not in ("name", "backend"))
        return f"{type(self).__name__}({opts})"
