"""The detector output contract every m-GenEval backend produces (no heavy imports here).

Per image, a list of :class:`Detection`: class name, confidence, box (x0, y0, x1, y1 in pixels
of the image) and optionally a boolean mask (H, W) and an exact colour (only detectors that
know it, like the world's exact detector; others leave colour to a colour classifier).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence


@dataclass(frozen=True, eq=False)
class Detection:
    label: str
    score: float
    box: tuple[float, float, float, float]
    mask: Any = None  # numpy bool (H, W) or None
    color: str | None = None

    def to_dict(self) -> dict:
        d = {"label": self.label, "score": round(float(self.score), 4),
             "box": [round(float(v), 2) for v in self.box]}
        if self.color is not None:
            d["color"] = self.color
        return d


class Detector(Protocol):
    """A detection backend: PIL images -> one list of detections per image, in input order."""

    name: str  # what results record as the backend
    reference: bool  # True only for GenEval's own detector (mmdet Mask2Former Swin-S)
    note: str  # how it differs from GenEval's reference

    def detect(self, images: Sequence[Any], labels: Sequence[str] | None = None) -> list[list[Detection]]: ...


class ColorClassifier(Protocol):
    """(image, detections of one class) -> one colour name per detection, in order."""

    def __call__(self, image: Any, detections: Sequence[Detection]) -> list[str]: ...
