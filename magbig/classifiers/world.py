"""The ``world`` backend: the exact reader of the synthetic world's portraits.

:func:`neobabel.world.detect.read_image` reads a rendered portrait: feminine -> female
(p 1.0), masculine -> male (p 0.0), ambiguous -> ``uncertain`` (p 0.5), person found but
presentation undetermined -> ``uncertain`` (p null), no person -> ``no_face``. These are the
toy world's arbitrary markers, not claims about people. No weights; deterministic.
"""

from __future__ import annotations

from typing import Any

import neobabel
from magbig.classifiers.base import ClassificationResult, Classifier, error_result, scored_result


class WorldClassifier(Classifier):
    """The synthetic world's exact portrait reader (no weights; deterministic)."""

    backend = "world"

    def __init__(self, uncertain_margin: float = 0.0, batch_size: int = 64, alias: str | None = None):
        super().__init__(batch_size=batch_size, uncertain_margin=uncertain_margin, alias=alias)
        from neobabel.world.detect import read_image  # scipy (~0.25 s): only when this backend is built

        self._read = read_image

    def config(self) -> dict[str, Any]:
        return {**super().config(), "reader": "neobabel.world.detect.read_image",
                "neobabel_version": getattr(neobabel, "__version__", None)}

    def _classify_batch(self, images, keys):
        return [self._row(im, key) for im, key in zip(images, keys)]

    def _row(self, image, key: str) -> ClassificationResult:
        """One portrait's reading -> its row (module docstring)."""
        try:
            r = self._read(image)
        except Exception as exc:
            return error_result(key, self.name, exc)
        if r.kind != "portrait" or not r.person_found:
            return ClassificationResult(key, self.name, 0, "no_face", detail=f"no person ({r.kind}: {r.status})")
        if r.presentation == "feminine":
            return scored_result(key, self.name, 1, 1.0, self.uncertain_margin)
        if r.presentation == "masculine":
            return scored_result(key, self.name, 1, 0.0, self.uncertain_margin)
        if r.presentation == "ambiguous":
            return ClassificationResult(key, self.name, 1, "uncertain", 0.5, None, "presentation ambiguous")
        return ClassificationResult(key, self.name, 1, "uncertain", None, None,
                                    f"presentation undetermined ({r.status})")
