"""Scoring images against GenEval specs: read each image, detect in batches, decide by the
rules engine, one scores row per image x check.

An image that is missing or cannot be decoded is a counted failure (one row, check "image",
status "missing" / "unreadable", correct False), never dropped and never a traceback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from neobabel.eval.geneval import GenEvalOptions, decision_rows, evaluate_detections
from neobabel.progress import progress_bar


@dataclass(frozen=True)
class ImageJob:
    """One image to score: where it is and the spec it should show."""

    key: str
    lang: str
    prompt_id: str
    seed: int | None
    path: Path | None  # None: the image was never made (counted as missing)
    spec: dict

    @property
    def tag(self) -> str:
        return self.spec["tag"]

    def fields(self) -> dict:
        return {"key": self.key, "lang": self.lang, "tag": self.tag, "prompt_id": self.prompt_id,
                "seed": self.seed, "path": str(self.path) if self.path is not None else None}


@dataclass(frozen=True)
class ScoringReport:
    rows: list[dict]
    images: int
    failed: int
    seconds: float  # reading, detecting and deciding, without loading the models

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("inf")


def open_image(path: Path | None) -> tuple[Image.Image | None, str]:
    """(RGB image, "ok") or (None, "missing" | "unreadable")."""
    if path is None or not Path(path).is_file():
        return None, "missing"
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB"), "ok"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None, "unreadable"


def score_images(jobs: Sequence[ImageJob], detector, color_classifier: Callable | None = None,
                 options: GenEvalOptions = GenEvalOptions(), batch_size: int = 8,
                 labels: Sequence[str] | None = None, progress: bool = False,
                 on_batch: Callable[[int], Any] | None = None) -> ScoringReport:
    """Decide every job; ``labels``: the vocabulary (open-vocabulary detectors query it)."""
    start = time.perf_counter()
    rows: list[dict] = []
    failed = 0
    name = getattr(detector, "name", type(detector).__name__)
    with progress_bar("scoring", len(jobs), enabled=progress) as advance:
        for i in range(0, len(jobs), max(1, batch_size)):
            batch = jobs[i:i + batch_size]
            opened = [open_image(j.path) for j in batch]
            ready = [(j, im) for j, (im, status) in zip(batch, opened) if status == "ok"]
            for j, (im, status) in zip(batch, opened):
                if status != "ok":
                    failed += 1
                    rows += decision_rows(j.fields(), None, status, name)
            if ready:
                detections = detector.detect([im for _, im in ready], labels=labels)
                for (j, im), dets in zip(ready, detections):
                    decision = evaluate_detections(j.spec, dets, im, color_classifier, options)
                    rows += decision_rows(j.fields(), decision, "ok", name)
            advance(len(batch))
            if on_batch is not None:
                on_batch(len(batch))
    return ScoringReport(rows, len(jobs), failed, time.perf_counter() - start)


__all__ = ["ImageJob", "ScoringReport", "open_image", "score_images"]
