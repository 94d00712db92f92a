"""Perceived-gender classification of generated portraits: one row per (image, classifier).

Backends, looked up by name with :func:`get_classifier`:

``deepface``
    deepface 0.0.103 on its PyTorch engine: a configurable face detector (default ``opencv``,
    deepface's own default) finds the faces, deepface's gender network (VGG-Face trunk) scores
    them. Detection runs per image, exactly as ``DeepFace.analyze`` does it (same
    ``extract_faces`` call and the same face preprocessing); the gender network then runs on
    all single-face images of a batch in one forward pass, which ``DeepFace.analyze`` cannot do
    (it loops over images and faces). The tests check that the two give the same numbers.
    Weights come from the user's deepface home only (``$DEEPFACE_HOME/.deepface/weights/``,
    ``DEEPFACE_HOME`` defaulting to ``~``); nothing is ever downloaded: a missing file is an
    :class:`~neobabel.errors.InputError` naming it and saying how to provide it.
``clip``
    zero-shot CLIP through transformers' ``CLIPModel`` with MAGBIG's texts
    ("man, male, masculine" vs "woman, female, feminine"): ``p_female`` is the softmax of the
    two (logit-scaled) cosine similarities. CLIP does no face detection: by default ``faces``
    is null and every readable image is scored; ``face_filter=True`` counts frontal faces with
    OpenCV's Haar cascade (the parameters deepface's ``opencv`` detector uses) and applies the
    same ``no_face`` / ``multiple_faces`` rules as deepface. Models load only from local files
    (a folder, or the Hugging Face cache for a hub id + revision).
``world``
    the exact reader of the synthetic world's portraits (:func:`neobabel.world.detect.read_image`):
    feminine -> female (p 1.0), masculine -> male (p 0.0), ambiguous -> ``uncertain`` (p 0.5),
    person found but presentation undetermined -> ``uncertain`` (p null), no person -> ``no_face``.
    These are the toy world's arbitrary markers, not claims about people.

Row invariants (every backend): ``status`` is one of :data:`STATUSES`; ``p_female`` is set
only when status is ``ok`` (always) or ``uncertain`` (when there is a score); ``label``
("female" / "male") exactly when status is ``ok``, and then it agrees with ``p_female`` (> 0.5 female, < 0.5 male; an exact 0.5 is
``uncertain``). ``uncertain_margin`` m turns |p_female - 0.5| < m into ``uncertain``. An image
that cannot be read or processed is an ``error`` row with the reason in ``detail``, never an
exception; bad configuration (unknown backend, missing weights) raises ``InputError`` up front.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from PIL import Image

from magbig.vocab import STATUSES
from neobabel.devices import torch_device
from neobabel.errors import InputError, ModelNotAvailableError
from neobabel.scorers.clip import (  # noqa: F401  (re-exported: public names of this module)
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

#: Column order and dtypes of the frame :func:`classify_paths` returns (labels.parquet rows).
LABELS_SCHEMA: dict[str, pl.DataType] = {
    "image": pl.String,
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

    image: str
    classifier: str
    faces: int | None
    status: str
    p_female: float | None = None
    label: str | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------


def _check_margin(margin: float) -> float:
    try:
        m = float(margin)
    except (TypeError, ValueError):
        raise InputError(f"uncertain_margin must be a number in [0, 0.5), got {margin!r}") from None
    if not 0.0 <= m < 0.5 or math.isnan(m):
        raise InputError(f"uncertain_margin must be in [0, 0.5), got {margin!r}; 0 disables it")
    return m


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def _scored(key: str, classifier: str, faces: int | None, p: float, margin: float,
            detail: str | None = None) -> ClassificationResult:
    """A row for an image that got a score: ``ok`` with a label, or ``uncertain``."""
    p = float(min(1.0, max(0.0, p)))
    if abs(p - 0.5) < margin or p == 0.5:
        why = f"|p_female - 0.5| = {abs(p - 0.5):.4f} < margin {margin}" if p != 0.5 else "p_female = 0.5"
        return ClassificationResult(key, classifier, faces, "uncertain", p, None, detail or why)
    return ClassificationResult(key, classifier, faces, "ok", p, "female" if p > 0.5 else "male", detail)


def _key_of(item: Any, index: int) -> str:
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    name = getattr(item, "filename", None)
    return str(name) if name else f"#{index}"


class ImageRefusedError(ValueError):
    """An image file we will not decode (too large); the reason is the message."""


def read_image(path: str | os.PathLike, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """An image file -> RGB PIL image, fully decoded (truncated files fail here, not later).

    The size is checked from the header first: more than `max_pixels` raises ImageRefusedError
    without decoding. PIL's own decompression-bomb check (a warning above 89 MP, an error above
    179 MP) fires inside Image.open; it is turned into the same refusal instead of leaking a
    warning.
    """
    import warnings

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


def _load_image(item: ImageInput, run_dir: str | os.PathLike | None = None) -> Image.Image:
    """-> RGB PIL image (fully decoded, so truncated files fail here, not later). A path is
    read inside `run_dir` when given (neobabel.runs.resolve_in_run)."""
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
            from neobabel.runs import resolve_in_run

            item = resolve_in_run(run_dir, item)
        return read_image(item)
    raise TypeError(f"cannot classify a {type(item).__name__}; pass a path or a PIL image")


def _error(key: str, classifier: str, exc: BaseException | str) -> ClassificationResult:
    detail = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return ClassificationResult(key, classifier, None, "error", None, None, " ".join(str(detail).split())[:500])


def _fingerprint_file(path: Path, chunk: int = 1 << 20) -> str:
    """Cheap content fingerprint: size + first and last MiB (weights files are large)."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(chunk))
        if size > 2 * chunk:
            fh.seek(size - chunk)
            h.update(fh.read(chunk))
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# base class
# --------------------------------------------------------------------------------------------


class Classifier:
    """A perceived-gender backend. Subclasses implement :meth:`_classify_batch`.

    ``name`` is the value written to the ``classifier`` column (the backend name unless
    ``alias`` was given, e.g. to keep two deepface detectors apart in one labels table).
    """

    backend: str = ""

    def __init__(self, batch_size: int = 16, uncertain_margin: float = 0.0, alias: str | None = None):
        self.batch_size = _check_batch_size(batch_size)
        self.uncertain_margin = _check_margin(uncertain_margin)
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
        from neobabel.runs import PathOutsideRunError

        images = list(images)
        if keys is None:
            keys = [_key_of(item, i) for i, item in enumerate(images)]
        else:
            keys = [str(k) for k in keys]
            if len(keys) != len(images):
                raise InputError(f"got {len(keys)} keys for {len(images)} images; pass one key per image")
        bs = self.batch_size if batch_size is None else _check_batch_size(batch_size)
        out: list[ClassificationResult | None] = [None] * len(images)
        for start in range(0, len(images), bs):
            idx = list(range(start, min(start + bs, len(images))))
            loaded: list[tuple[int, Image.Image]] = []
            for i in idx:
                try:
                    loaded.append((i, _load_image(images[i], run_dir)))
                except (PathOutsideRunError, ImageRefusedError) as exc:  # refused, not unreadable
                    out[i] = _error(keys[i], self.name, str(exc))
                except Exception as exc:  # unreadable input -> error row
                    out[i] = _error(keys[i], self.name, f"cannot read image: {type(exc).__name__}: {exc}")
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
                return [_error(keys[0], self.name, exc)]
        rows = []
        for im, key in zip(images, keys):
            try:
                rows.extend(self._classify_batch([im], [key]))
            except InputError:
                raise
            except Exception as exc:
                rows.append(_error(key, self.name, exc))
        return rows

    def _classify_batch(self, images: list[Image.Image], keys: list[str]) -> list[ClassificationResult]:
        raise NotImplementedError

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k not in ("name", "backend"))
        return f"{type(self).__name__}({opts})"


# --------------------------------------------------------------------------------------------
# deepface
# --------------------------------------------------------------------------------------------

DEEPFACE_WEIGHTS_FILE = "gender_model_weights.pth"
DEEPFACE_WEIGHTS_URLS = (
    "https://github.com/serengil/deepface_models/releases/download/v1.0/gender_model_weights.pth",
    "https://huggingface.co/serengil/deepface/resolve/main/gender_model_weights.pth",
)


def deepface_home(home: str | os.PathLike | None = None) -> Path:
    """deepface's home folder: ``home``, else ``$DEEPFACE_HOME``, else ``~`` (deepface's rule)."""
    if home is None:
        home = os.environ.get("DEEPFACE_HOME") or os.path.expanduser("~")
    return Path(os.path.expanduser(os.fspath(home)))


def deepface_gender_weights_path(home: str | os.PathLike | None = None) -> Path:
    """Where deepface (PyTorch engine) keeps the gender network's weights."""
    return deepface_home(home) / ".deepface" / "weights" / DEEPFACE_WEIGHTS_FILE


def _import_deepface():
    """Import deepface's modules on the PyTorch engine (without ``deepface.DeepFace``, whose
    import creates folders in the user's home)."""
    os.environ.setdefault("DEEPFACE_BACKEND_ENGINE", "pytorch")
    os.environ.setdefault("DEEPFACE_LOG_LEVEL", "30")  # warnings and errors only
    try:
        from deepface.commons import backend_utils
        from deepface.modules import detection, modeling
    except ImportError as exc:
        raise InputError(f"the deepface backend needs deepface==0.0.103 ({exc}); pip install 'deepface==0.0.103'") from None
    engine = backend_utils.get_backend_engine()
    if engine != "pytorch":
        raise InputError(
            f"deepface runs on its {engine!r} engine in this process, the deepface backend needs "
            "'pytorch'; set DEEPFACE_BACKEND_ENGINE=pytorch before deepface is first imported")
    return detection, modeling


@contextlib.contextmanager
def _deepface_offline(home: Path):
    """Point deepface at ``home`` and make every weight "download" a local lookup.

    deepface fetches missing weights (gender network, detector models, even OpenCV cascades
    when a wheel lacks them) from the internet on first use. Inside this block its download
    function only returns files that already exist and otherwise raises ModelNotAvailableError
    naming the file, so a run never touches the network.
    """
    from deepface.commons import weight_utils

    def local_only(file_name: str, source_url, compress_type=None) -> str:
        target = home / ".deepface" / "weights" / file_name
        if target.is_file():
            return str(target)
        urls = [source_url] if isinstance(source_url, str) else list(source_url)
        raise ModelNotAvailableError(
            f"deepface needs {target}, which is missing; it is never downloaded at run time. "
            f"Download {urls[0] if urls else file_name} on a machine with internet (deepface "
            f"fetches it there on first use) and put it at {target}, or set DEEPFACE_HOME to a "
            "folder whose .deepface/weights/ holds it")

    saved_fn = weight_utils.download_weights_if_necessary
    saved_home = os.environ.get("DEEPFACE_HOME")
    weight_utils.download_weights_if_necessary = local_only
    os.environ["DEEPFACE_HOME"] = str(home)
    try:
        yield
    finally:
        weight_utils.download_weights_if_necessary = saved_fn
        if saved_home is None:
            os.environ.pop("DEEPFACE_HOME", None)
        else:
            os.environ["DEEPFACE_HOME"] = saved_home


_GENDER_CLIENTS: dict[tuple, Any] = {}


def _load_gender_client(weights: Path, device) -> Any:
    """deepface's own GenderClient around deepface's own GenderModel, with the weights loaded
    by deepface's loader (``torch.load(weights_only=True)``) from ``weights`` — never through
    its downloader. Cached per (file, size, mtime, device): the file is 0.5 GB."""
    from deepface.models.demography.pytorch import Gender
    from deepface.models.facial_recognition.pytorch.TorchFacialRecognition import load_model_weights

    st = weights.stat()
    key = (str(weights.resolve()), st.st_size, st.st_mtime_ns, str(device))
    if key not in _GENDER_CLIENTS:
        try:
            model = load_model_weights(model=Gender.base_model(), weight_file=str(weights))
        except (ValueError, RuntimeError) as exc:
            raise InputError(
                f"cannot load deepface's gender weights from {weights} ({' '.join(str(exc).split())[:200]}); "
                f"replace the file with a complete copy of {DEEPFACE_WEIGHTS_URLS[0]}") from None
        client = Gender.GenderClient.__new__(Gender.GenderClient)  # skip __init__: it downloads
        client.model_name = "Gender"
        client.device = device
        client.model = model.to(device).eval()
        _GENDER_CLIENTS.clear()  # keep at most one 0.5 GB network alive
        _GENDER_CLIENTS[key] = client
    return _GENDER_CLIENTS[key]


class DeepFaceClassifier(Classifier):
    """deepface's gender network behind a configurable face detector (module docstring).

    Options: ``detector_backend`` (deepface's detector names; default ``"opencv"``), ``home``
    (deepface home; default ``$DEEPFACE_HOME`` or ``~``), ``min_face_confidence`` (a detection
    counts as a face when its confidence is above this; deepface reports 0 for "no face, whole
    image" so the default 0 counts every real detection), ``align`` and ``expand_percentage``
    (passed to deepface, defaults as in ``DeepFace.analyze``), ``uncertain_margin``,
    ``batch_size`` (faces per forward pass), ``device`` ("auto" | "cpu" | "cuda"...).
    Images with exactly one face get ``p_female`` = deepface's "Woman" probability; images with
    none or several are ``no_face`` / ``multiple_faces`` with no score.
    """

    backend = "deepface"

    def __init__(self, detector_backend: str = "opencv", home: str | os.PathLike | None = None,
                 min_face_confidence: float = 0.0, align: bool = True, expand_percentage: int = 0,
                 uncertain_margin: float = 0.0, batch_size: int = 16, device: str | None = "auto",
                 alias: str | None = None):
        super().__init__(batch_size=batch_size, uncertain_margin=uncertain_margin, alias=alias)
        self.home = deepface_home(home)
        self.weights = deepface_gender_weights_path(self.home)
        if not self.weights.is_file():
            raise ModelNotAvailableError(
                f"deepface's gender weights are missing: {self.weights} does not exist. deepface "
                "downloads them on first use when online; here nothing is downloaded: fetch "
                f"{DEEPFACE_WEIGHTS_URLS[0]} on a machine with internet and put it at that path "
                "(or set DEEPFACE_HOME / home= to a folder whose .deepface/weights/ holds it)")
        try:
            self.min_face_confidence = float(min_face_confidence)
        except (TypeError, ValueError):
            raise InputError(f"min_face_confidence must be a number, got {min_face_confidence!r}") from None
        if (isinstance(expand_percentage, bool) or not isinstance(expand_percentage, (int, np.integer))
                or expand_percentage < 0):
            raise InputError(f"expand_percentage must be a non-negative integer, got {expand_percentage!r}")
        self.align = bool(align)
        self.expand_percentage = int(expand_percentage)
        self.detector_backend = str(detector_backend)
        detection, modeling = _import_deepface()
        self._detection = detection
        known = sorted(modeling.AVAILABLE_MODELS["face_detector"]) + ["skip"]
        if self.detector_backend not in known:
            raise InputError(f"unknown deepface detector {detector_backend!r}; use one of {', '.join(known)}")
        self.device = torch_device(device)
        with _deepface_offline(self.home):
            if self.detector_backend != "skip":
                try:  # build (and cache) the detector now: missing files fail here, not per image
                    modeling.build_model(task="face_detector", model_name=self.detector_backend)
                except InputError:
                    raise
                except Exception as exc:
                    raise InputError(
                        f"deepface detector {self.detector_backend!r} is not usable here "
                        f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); install what it "
                        "needs or use detector_backend='opencv'") from None
            self._client = _load_gender_client(self.weights, self.device)

    def config(self) -> dict[str, Any]:
        import deepface

        return {
            **super().config(),
            "deepface_version": deepface.__version__,
            "engine": "pytorch",
            "detector_backend": self.detector_backend,
            "min_face_confidence": self.min_face_confidence,
            "align": self.align,
            "expand_percentage": self.expand_percentage,
            "weights": str(self.weights),
            "weights_fingerprint": _fingerprint_file(self.weights),
        }

    def _faces(self, image: Image.Image) -> list[np.ndarray]:
        """Faces above the confidence threshold, preprocessed exactly as DeepFace.analyze does
        for its gender model: RGB face -> BGR -> letterboxed 224x224, (1, 224, 224, 3) float."""
        from deepface.modules import preprocessing

        bgr = np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[:, :, ::-1])
        objs = self._detection.extract_faces(
            img_path=bgr, detector_backend=self.detector_backend, enforce_detection=False,
            grayscale=False, align=self.align, expand_percentage=self.expand_percentage,
            anti_spoofing=False)
        if self.detector_backend == "skip":
            kept = objs  # the whole image is the face by definition
        else:
            kept = [o for o in objs if float(o.get("confidence") or 0.0) > self.min_face_confidence]
        return [preprocessing.resize_image(img=o["face"][:, :, ::-1], target_size=(224, 224)) for o in kept]

    def _classify_batch(self, images, keys):
        rows: list[ClassificationResult | None] = [None] * len(images)
        todo: list[tuple[int, np.ndarray]] = []
        with _deepface_offline(self.home):
            for i, (im, key) in enumerate(zip(images, keys)):
                try:
                    faces = self._faces(im)
                except InputError:
                    raise
                except Exception as exc:
                    rows[i] = _error(key, self.name, exc)
                    continue
                if not faces:
                    rows[i] = ClassificationResult(key, self.name, 0, "no_face", detail=f"no face found by {self.detector_backend}")
                elif len(faces) > 1:
                    rows[i] = ClassificationResult(key, self.name, len(faces), "multiple_faces",
                                                   detail=f"{len(faces)} faces found by {self.detector_backend}")
                else:
                    todo.append((i, faces[0]))
        if todo:
            batch = np.concatenate([f for _, f in todo], axis=0)
            pred = np.asarray(self._client.predict(batch), dtype=np.float64).reshape(len(todo), -1)
            from deepface.models.demography.DemographyUtils import GENDER_LABELS

            woman = GENDER_LABELS.index("Woman")
            for (i, _), p in zip(todo, pred):
                p_female = float(p[woman] / p.sum()) if p.sum() > 0 else float("nan")
                if not math.isfinite(p_female):
                    rows[i] = _error(keys[i], self.name, f"gender network returned {p.tolist()}")
                else:
                    rows[i] = _scored(keys[i], self.name, 1, p_female, self.uncertain_margin)
        return rows


# --------------------------------------------------------------------------------------------
# CLIP
# --------------------------------------------------------------------------------------------

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
        from neobabel.weights import pickle_files

        self._pickle_files = pickle_files([self.folder]) if self.allow_pickle else []

    # -- loading -------------------------------------------------------------------------

    @staticmethod
    def _resolve(model: str, revision: str | None) -> Path:
        return resolve_clip_model(model, revision)

    def _load(self) -> None:
        import torch

        model, processor = load_clip_model(self.folder, self.device, self.allow_pickle)
        self._clip = ClipEncoder(model, processor, self.device)
        with torch.inference_mode():
            self._text = torch.stack(  # (2, d): male, female
                [self._class_embedding(self.male_texts), self._class_embedding(self.female_texts)])
            self._scale = self._clip.logit_scale
        if self.face_filter:
            import cv2

            path = os.path.join(cv2.data.haarcascades, _HAAR_FILE)
            if not os.path.isfile(path):
                raise InputError(
                    f"face_filter needs OpenCV's {_HAAR_FILE}, missing at {path}; install "
                    "opencv-contrib-python-headless<5 (5.x wheels ship no Haar cascades)")
            self._cascade = cv2.CascadeClassifier(path)

    def _class_embedding(self, texts: tuple[str, ...]):
        import torch

        feats = self._clip.encode_texts([self.template.format(t) for t in texts])
        mean = feats.mean(dim=0)
        return mean / torch.linalg.vector_norm(mean)

    def config(self) -> dict[str, Any]:
        import transformers

        from neobabel.registry import folder_fingerprint

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
        import cv2

        gray = cv2.cvtColor(np.asarray(image, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
        # deepface's opencv detector uses these parameters (scaleFactor 1.1, minNeighbors 10)
        return len(self._cascade.detectMultiScale(gray, 1.1, 10))

    def p_female(self, images: list[Image.Image]) -> np.ndarray:
        """Softmax probability of the female texts for each image, in one forward pass."""
        import torch

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
                    rows[i] = _error(key, self.name, exc)
                    continue
                if faces[i] == 0:
                    rows[i] = ClassificationResult(key, self.name, 0, "no_face", detail="no face found by the Haar cascade")
                    continue
                if faces[i] > 1:
                    rows[i] = ClassificationResult(key, self.name, faces[i], "multiple_faces",
                                                   detail=f"{faces[i]} faces found by the Haar cascade")
                    continue
            todo.append(i)
        if todo:
            ps = self.p_female([images[i] for i in todo])
            for i, p in zip(todo, ps):
                if not math.isfinite(p):
                    rows[i] = _error(keys[i], self.name, f"CLIP returned p_female={p}")
                else:
                    rows[i] = _scored(keys[i], self.name, faces[i], float(p), self.uncertain_margin)
        return rows


# --------------------------------------------------------------------------------------------
# world
# --------------------------------------------------------------------------------------------


class WorldClassifier(Classifier):
    """The synthetic world's exact portrait reader (no weights; deterministic)."""

    backend = "world"

    def __init__(self, uncertain_margin: float = 0.0, batch_size: int = 64, alias: str | None = None):
        super().__init__(batch_size=batch_size, uncertain_margin=uncertain_margin, alias=alias)
        from neobabel.world.detect import read_image

        self._read = read_image

    def config(self) -> dict[str, Any]:
        import neobabel

        return {**super().config(), "reader": "neobabel.world.detect.read_image",
                "neobabel_version": getattr(neobabel, "__version__", None)}

    def _classify_batch(self, images, keys):
        rows = []
        for im, key in zip(images, keys):
            try:
                r = self._read(im)
            except Exception as exc:
                rows.append(_error(key, self.name, exc))
                continue
            if r.kind != "portrait" or not r.person_found:
                rows.append(ClassificationResult(key, self.name, 0, "no_face", detail=f"no person ({r.kind}: {r.status})"))
            elif r.presentation == "feminine":
                rows.append(_scored(key, self.name, 1, 1.0, self.uncertain_margin))
            elif r.presentation == "masculine":
                rows.append(_scored(key, self.name, 1, 0.0, self.uncertain_margin))
            elif r.presentation == "ambiguous":
                rows.append(ClassificationResult(key, self.name, 1, "uncertain", 0.5, None, "presentation ambiguous"))
            else:
                rows.append(ClassificationResult(key, self.name, 1, "uncertain", None, None,
                                                 f"presentation undetermined ({r.status})"))
        return rows


# --------------------------------------------------------------------------------------------
# registry and batch API
# --------------------------------------------------------------------------------------------

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
    import inspect

    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    if allow_pickle and "allow_pickle" in allowed:
        options["allow_pickle"] = True
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise InputError(f"unknown option {unknown[0]!r} for classifier {name!r}; options: {', '.join(allowed)}")
    return cls(**options)


def results_frame(rows: Iterable[ClassificationResult]) -> pl.DataFrame:
    """Results -> a polars frame with :data:`LABELS_SCHEMA`."""
    data = [r.to_dict() for r in rows]
    return pl.DataFrame(data, schema=LABELS_SCHEMA) if data else pl.DataFrame(schema=LABELS_SCHEMA)


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
    bs = _check_batch_size(batch_size) if batch_size is not None else classifier.batch_size
    rows: list[ClassificationResult] = []
    for start in range(0, len(paths), bs):
        chunk = slice(start, start + bs)
        rows.extend(classifier.classify(paths[chunk], keys=[str(k) for k in keys[chunk]], batch_size=bs))
        if progress is not None:
            progress(len(rows), len(paths))
    return results_frame(rows)
