"""m-GenEval's rules engine: GenEval's decisions (evaluation/evaluate_images.py and
summary_scores.py of djghosh13/geneval) over any vocabulary and any detector.

A spec is a GenEval metadata line without its prompt: ``tag``, ``include`` (ANDed clauses
``{"class", "count", optional "color", optional "position": [relation, include_index]}``) and
optional ``exclude`` (ORed clauses ``{"class", "count"}``: fail when at least ``count`` are found).
Class names are whatever the detector reports (COCO's 80 for GenEval, the world's shapes for
the embedded model): the engine knows no vocabulary.

Rule by rule, as GenEval does it (the option names are GenEval's ``--options`` keys):

1. keep detections: per class, confidence strictly above ``threshold`` (``counting_threshold``
   for the ``counting`` tag, on every class), highest first, at most ``max_objects``, then
   greedy NMS at ``max_overlap`` (1.0 = off, GenEval's default; IoU with GenEval's +1 pixels);
2. each include clause takes the top ``count`` kept objects of its class; fewer fails;
3. colour (only when the count passed): every one of those objects must get the clause's
   colour from the colour classifier;
4. position (only when count and colour passed): every object must stand in the relation to
   every object of the target clause, which must itself have matched; the relation is GenEval's
   centre-offset rule with ``position_threshold`` times the summed box sizes taken off;
5. exclude clauses: at least ``count`` kept objects of the class fails the image.

Per image correct -> task means -> overall = unweighted mean of the task means; plus % correct
images and % correct prompts (a prompt is correct when any of its images is).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import polars as pl

from neobabel.errors import InputError
from neobabel.eval.i18n import GENEVAL_COLORS, GENEVAL_RELATIONS, GENEVAL_TAGS
from neobabel.scorers.detection import Detection, relative_position



@dataclass(frozen=True)
class GenEvalOptions:
    """GenEval's decision parameters, with its defaults (evaluate_images.py ``--options``)."""

    threshold: float = 0.3  # detection confidence, strictly above
    counting_threshold: float = 0.9  # the same for every class of a `counting` prompt
    max_objects: int = 16  # per class, after the threshold
    max_overlap: float = 1.0  # class-wise NMS IoU; 1.0 keeps every box (NMS off)
    position_threshold: float = 0.1  # share of the summed box sizes taken off the centre offset
    colors: tuple[str, ...] = GENEVAL_COLORS

    def __post_init__(self) -> None:
        for name in ("threshold", "counting_threshold", "max_overlap", "position_threshold"):
            v = getattr(self, name)
            if not 0.0 <= float(v) <= 1.0:
                raise InputError(f"GenEval option {name}={v!r} is outside 0..1; give a value in 0..1")
        if int(self.max_objects) < 1:
            raise InputError(f"GenEval option max_objects={self.max_objects!r} must be at least 1")

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


# -- rule 1: which detections count -----------------------------------------------------------

def compute_iou(box_a: Sequence[float], box_b: Sequence[float]) -> float:
    """GenEval's IoU: boxes are inclusive pixel ranges (+1 on each side length)."""
    def area(b):
        return max(b[2] - b[0] + 1, 0) * max(b[3] - b[1] + 1, 0)

    inter = area([max(box_a[0], box_b[0]), max(box_a[1], box_b[1]),
                  min(box_a[2], box_b[2]), min(box_a[3], box_b[3])])
    union = area(box_a) + area(box_b) - inter
    return inter / union if union else 0.0


def keep_detections(detections: Sequence[Detection], tag: str,
                    options: GenEvalOptions = GenEvalOptions()) -> dict[str, list[Detection]]:
    """Class name -> kept detections, most confident first (classes with none are absent)."""
    threshold = options.counting_threshold if tag == "counting" else options.threshold
    by_class: dict[str, list[Detection]] = {}
    for det in detections:
        by_class.setdefault(det.label, []).append(det)
    kept: dict[str, list[Detection]] = {}
    for label, dets in by_class.items():
        # stable sort: equal scores keep the detector's order
        order = sorted(dets, key=lambda d: -float(d.score))
        order = [d for d in order if float(d.score) > threshold][: int(options.max_objects)]
        out = []
        while order:
            best = order.pop(0)
            out.append(best)
            if options.max_overlap < 1:
                order = [d for d in order if compute_iou(best.box, d.box) < options.max_overlap]
        if out:
            kept[label] = out
    return kept


# -- rule 4: relative position ----------------------------------------------------------------

# relative_position: neobabel.scorers.detection (one implementation for GenEval and the world)


# -- rules 2-5: one image -----------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """One clause's decision. ``kind``: count | color | position | exclude."""

    clause: int  # index in include (exclude: index in exclude)
    kind: str
    cls: str
    expected: str
    found: str
    passed: bool


@dataclass(frozen=True)
class ImageDecision:
    correct: bool
    reason: str  # GenEval's reason lines, "\n"-joined ("" when correct)
    checks: tuple[Check, ...]
    kept: dict[str, list[Detection]] = field(default_factory=dict, compare=False)

    def details(self) -> str:
        """GenEval's `details` column: class -> kept boxes."""
        return json.dumps({k: [list(d.box) + [float(d.score)] for d in v] for k, v in self.kept.items()})


def exact_colors(image: Any, detections: Sequence[Detection]) -> list[str]:
    """A colour classifier for detectors that know each object's colour (the world's)."""
    if any(d.color is None for d in detections):
        raise InputError("this detector gives no colours; pass a colour classifier (e.g. CLIP) for colour prompts")
    return [d.color for d in detections]


def check_spec(spec: dict) -> None:
    """InputError naming the first thing GenEval cannot evaluate in ``spec``."""
    if spec.get("tag") not in GENEVAL_TAGS:
        raise InputError(f"unknown GenEval tag {spec.get('tag')!r}; use one of {', '.join(GENEVAL_TAGS)}")
    include = spec.get("include")
    if not isinstance(include, list) or not include:
        raise InputError("a GenEval spec needs a non-empty 'include' list")
    for i, req in enumerate(include + list(spec.get("exclude") or [])):
        if not isinstance(req, dict) or not isinstance(req.get("class"), str) \
                or not isinstance(req.get("count"), int) or isinstance(req.get("count"), bool) or req["count"] < 1:
            raise InputError(f"clause {req!r} needs a 'class' name and an integer 'count' >= 1")
        if "position" in req:
            pos = req["position"]
            if (not isinstance(pos, list) or len(pos) != 2 or pos[0] not in GENEVAL_RELATIONS
                    or not isinstance(pos[1], int) or not 0 <= pos[1] < i):
                raise InputError(f"position {pos!r} must be [relation, index of an earlier include clause], "
                                 f"relation one of {', '.join(GENEVAL_RELATIONS)}")


def evaluate_detections(spec: dict, detections: Sequence[Detection], image: Any = None,
                        color_classifier: Callable[[Any, Sequence[Detection]], list[str]] | None = None,
                        options: GenEvalOptions = GenEvalOptions()) -> ImageDecision:
    """GenEval's decision for one image from its raw detections (rule 1, then :func:`decide`)."""
    kept = keep_detections(detections, spec["tag"], options)
    return decide(spec, kept, image, color_classifier, options)


def decide(spec: dict, objects: dict[str, list[Detection]], image: Any = None,
           color_classifier: Callable[[Any, Sequence[Detection]], list[str]] | None = None,
           options: GenEvalOptions = GenEvalOptions()) -> ImageDecision:
    """GenEval's `evaluate(image, objects, metadata)`: includes ANDed, excludes ORed."""
    classify = color_classifier or exact_colors
    correct = True
    reason: list[str] = []
    checks: list[Check] = []
    matched_groups: list[list[Detection] | None] = []
    for i, req in enumerate(spec.get("include", [])):
        cls, count = req["class"], int(req["count"])
        matched = True
        found = objects.get(cls, [])[:count]
        ok = len(found) >= count
        checks.append(Check(i, "count", cls, f">={count}", str(len(found)), ok))
        if not ok:
            correct = matched = False
            reason.append(f"expected {cls}>={count}, found {len(found)}")
        else:
            if "color" in req:
                colors = list(classify(image, found))
                hits = colors.count(req["color"])
                ok = hits >= count
                summary = ", ".join(f"{colors.count(c)} {c}" for c in options.colors if c in colors)
                checks.append(Check(i, "color", cls, f"{req['color']}>={count}", summary, ok))
                if not ok:
                    correct = matched = False
                    reason.append(f"expected {req['color']} {cls}>={count}, found {hits} {req['color']}; and {summary}")
            if "position" in req and matched:
                expected_rel, target = req["position"]
                targets = matched_groups[target] if target < len(matched_groups) else None
                if targets is None:
                    correct = matched = False
                    reason.append(f"no target for {cls} to be {expected_rel}")
                    checks.append(Check(i, "position", cls, expected_rel, "no target", False))
                else:
                    seen = expected_rel
                    for obj in found:
                        for tgt in targets:
                            rels = relative_position(obj.box, tgt.box, options.position_threshold)
                            if expected_rel not in rels:
                                correct = matched = False
                                seen = " and ".join(sorted(rels)) or "none"
                                reason.append(f"expected {cls} {expected_rel} target, found "
                                              f"{' and '.join(sorted(rels))} target")
                                break
                        if not matched:
                            break
                    checks.append(Check(i, "position", cls, expected_rel, seen, matched))
        matched_groups.append(found if matched else None)
    for j, req in enumerate(spec.get("exclude", []) or []):
        cls, count = req["class"], int(req["count"])
        n = len(objects.get(cls, []))
        ok = n < count
        checks.append(Check(j, "exclude", cls, f"<{count}", str(n), ok))
        if not ok:
            correct = False
            reason.append(f"expected {cls}<{count}, found {n}")
    return ImageDecision(correct, "\n".join(reason), tuple(checks), objects)


# -- scores table and summary --------------------------------------------------------------------

#: scores.parquet: one row per image x check (an image that could not be scored: one row,
#: check "image", status naming why, correct False).
SCORE_SCHEMA = {
    "key": pl.String, "lang": pl.String, "tag": pl.String, "prompt_id": pl.String, "seed": pl.Int64,
    "path": pl.String, "status": pl.String, "correct": pl.Boolean, "reason": pl.String,
    "check": pl.String, "clause": pl.Int64, "class": pl.String, "expected": pl.String,
    "found": pl.String, "passed": pl.Boolean, "detector": pl.String, "details": pl.String,
}


def decision_rows(image_fields: dict, decision: ImageDecision | None, status: str = "ok",
                  detector: str = "") -> list[dict]:
    """Rows of scores.parquet for one image (``decision`` None: the image could not be read)."""
    base = {k: image_fields.get(k) for k in ("key", "lang", "tag", "prompt_id", "seed", "path")}
    base.update(status=status, detector=detector)
    if decision is None:
        return [{**base, "correct": False, "reason": status, "check": "image", "clause": None, "class": None,
                 "expected": None, "found": None, "passed": False, "details": None}]
    base.update(correct=decision.correct, reason=decision.reason, details=decision.details())
    return [{**base, "check": c.kind, "clause": c.clause, "class": c.cls, "expected": c.expected,
             "found": c.found, "passed": c.passed} for c in decision.checks]


def scores_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCORE_SCHEMA)


def image_table(scores: pl.DataFrame) -> pl.DataFrame:
    """One row per scored image (key, lang, prompt_id, seed, tag, status, correct) from
    scores.parquet. Two prompts with the same text, language and seed share one generated image
    (one key); each is still scored and counted, as GenEval counts repeated metadata lines."""
    return (scores.group_by("key", "lang", "prompt_id", "seed", maintain_order=True)
            .agg(pl.col("tag", "status", "correct").first()))


def summarize(scores: pl.DataFrame, tags: Sequence[str] = GENEVAL_TAGS) -> dict:
    """Per language: task means, overall (unweighted mean of the task means present), %
    correct images, % correct prompts (any image correct), images that could not be scored."""
    images = image_table(scores)
    out: dict = {"per_lang": {}}
    for lang in sorted(images["lang"].unique().to_list()):
        sub = images.filter(pl.col("lang") == lang)
        task_means = {}
        for tag in tags:
            t = sub.filter(pl.col("tag") == tag)
            if t.height:
                task_means[tag] = {"score": float(t["correct"].mean()), "correct": int(t["correct"].sum()),
                                   "images": t.height}
        prompts = sub.group_by("prompt_id").agg(pl.col("correct").any())
        failed = sub.filter(pl.col("status") != "ok")
        out["per_lang"][lang] = {
            "tasks": task_means,
            "overall": float(np.mean([v["score"] for v in task_means.values()])) if task_means else None,
            "images": sub.height,
            "prompts": prompts.height,
            "correct_images": float(sub["correct"].mean()) if sub.height else None,
            "correct_prompts": float(prompts["correct"].mean()) if prompts.height else None,
            "failed_images": failed.height,
            "failed_by_status": {r["status"]: r["len"] for r in failed.group_by("status").len().sort("status")
                                 .iter_rows(named=True)},
        }
    overall = [v["overall"] for v in out["per_lang"].values() if v["overall"] is not None]
    out["overall_mean"] = float(np.mean(overall)) if overall else None
    out["failed_images"] = int(sum(v["failed_images"] for v in out["per_lang"].values()))
    return out


__all__ = [
    "GENEVAL_COLORS", "GENEVAL_RELATIONS", "GENEVAL_TAGS", "GenEvalOptions", "Detection", "Check", "ImageDecision",
    "compute_iou", "keep_detections", "relative_position", "decide", "evaluate_detections", "exact_colors",
    "check_spec", "decision_rows", "scores_frame", "image_table", "summarize", "SCORE_SCHEMA",
]
