"""The ``deepface`` backend: deepface 0.0.103's gender network on its PyTorch engine.

A configurable face detector (default ``opencv``, deepface's own default) finds the faces,
deepface's gender network (VGG-Face trunk) scores them. Detection runs per image, exactly as
``DeepFace.analyze`` does it (same ``extract_faces`` call and the same face preprocessing);
the gender network then runs on all single-face images of a batch in one forward pass, which
``DeepFace.analyze`` cannot do (it loops over images and faces). The tests check that the two
give the same numbers. Weights come from the user's deepface home only
(``$DEEPFACE_HOME/.deepface/weights/``, ``DEEPFACE_HOME`` defaulting to ``~``); nothing is ever
downloaded: a missing file is an :class:`~neobabel.errors.InputError` naming it and saying
how to provide it.

deepface (and with it torch and cv2) is imported only when a DeepFaceClassifier is built, so
importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from magbig.classifiers.base import (
    ClassificationResult, Classifier, error_result, face_count_result, scored_result,
)
from neobabel.devices import torch_device
from neobabel.errors import InputError, ModelNotAvailableError

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
        from deepface.commons import backend_utils  # heavy: deepface + torch + cv2, only for this backend
        from deepface.modules import detection, modeling  # heavy: as above
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
    from deepface.commons import weight_utils  # heavy: deepface, only while the backend runs

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
    from deepface.models.demography.pytorch import Gender  # heavy: deepface + torch, only when weights load
    from deepface.models.facial_recognition.pytorch.TorchFacialRecognition import (  # heavy: as above
        load_model_weights,
    )

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
        import deepface  # heavy (already loaded by __init__): its version for provenance

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
        from deepface.modules import preprocessing  # heavy: deepface, loaded by __init__ already

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
        single: list[tuple[int, np.ndarray]] = []  # (index, face) of the images with exactly one face
        with _deepface_offline(self.home):
            for i, (im, key) in enumerate(zip(images, keys)):
                try:
                    faces = self._faces(im)
                except InputError:
                    raise
                except Exception as exc:
                    rows[i] = error_result(key, self.name, exc)
                    continue
                rows[i] = face_count_result(key, self.name, len(faces), self.detector_backend)
                if rows[i] is None:
                    single.append((i, faces[0]))
        if single:  # one forward pass for all single-face images
            batch = np.concatenate([face for _, face in single], axis=0)
            pred = np.asarray(self._client.predict(batch), dtype=np.float64).reshape(len(single), -1)
            for (i, _), p in zip(single, pred):
                rows[i] = self._scored_face(keys[i], p)
        return rows

    def _scored_face(self, key: str, prediction: np.ndarray) -> ClassificationResult:
        """One face's gender-network output (Woman, Man probabilities) -> its row."""
        from deepface.models.demography.DemographyUtils import GENDER_LABELS  # heavy: deepface (loaded)

        total = prediction.sum()
        p_female = float(prediction[GENDER_LABELS.index("Woman")] / total) if total > 0 else float("nan")
        if not math.isfinite(p_female):
            return error_result(key, self.name, f"gender network returned {prediction.tolist()}")
        return scored_result(key, self.name, 1, p_female, self.uncertain_margin)


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
