"""The detector output contract every m-GenEval backend produces (no heavy imports here).

Per image, a list of :class:`Detection`: class name, confidence, box (x0, y0, x1, y1 in pixels
of the image) and optionally a boolean mask (H, W) and an exact colour (only detectors that
know it, like the world's exact detector; others leave colour to a colour classifier).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np


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


def relative_position(box_a: Sequence[float], box_b: Sequence[float], threshold: float = 0.1) -> set[str]:
    """Relations of box A relative to box B, GenEval's rule (evaluate_images.py): the centre
    offset, shrunk by ``threshold`` x the summed box sizes per axis, normalized; a component
    beyond 0.5 names the relation. Boxes are (x0, y0, x1, y1), y growing downwards. The world's
    scene generator and detector use it too, so its scenes are placed by the rule that scores them."""
    a = np.asarray(list(box_a)[:4], dtype=float).reshape(2, 2)
    b = np.asarray(list(box_b)[:4], dtype=float).reshape(2, 2)
    center_a, center_b = a.mean(axis=0), b.mean(axis=0)
    dim_a, dim_b = np.abs(a[1] - a[0]), np.abs(b[1] - b[0])
    offset = center_a - center_b
    revised = np.maximum(np.abs(offset) - threshold * (dim_a + dim_b), 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    rels = set()
    if dx < -0.5:
        rels.add("left of")
    if dx > 0.5:
        rels.add("right of")
    if dy < -0.5:
        rels.add("above")
    if dy > 0.5:
        rels.add("below")
    return rels
