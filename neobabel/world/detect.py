"""Exact world detector: reads a rendered (or generated) world image back into a spec.

``read_image(image) -> Reading`` works on PIL images or uint8 arrays of any size (designed for
32 and 64; everything is resampled to a 64x64 working grid) and tolerates mild noise and blur,
as in a diffusion model's output.

Object scenes
    pixels far from the gray background form connected components; each component's colour is
    the palette colour that best explains its pixels as a blend of that colour and the
    background (robust to anti-aliasing and blur); its mask is then re-cut at half coverage and
    its shape is that of the nearest bbox-normalized silhouette in a reference bank (every shape
    rendered at several sizes, sub-pixel offsets and blur levels, at 64 and 32 px, built once
    on first use).  Specks (< 20 px at 64x64) are ignored.

Portraits
    a portrait is a wide uniform region touching the bottom edge (the shoulders) with a
    skin-coloured face above it.  Pixels go to the nearest reference colour (a second pass uses
    the face's own tone, so blurred hair/skin edges split at the midpoint; blends of two
    non-skin colours on edges are set aside).  The widest rows of the face give the head
    centre and size;
    fixed regions relative to the head are then read: the torso colour at the shoulders and the
    colour on top of the head (hat, or dark hair = no hat) give the occupation
    (:data:`~neobabel.world.spec.UNIFORMS`); dark pixels beside the lower face and neck mean
    long hair (``feminine``), dark pixels over the chin mean a beard (``masculine``), neither
    means ``ambiguous``; anything in between is undetermined (``presentation=None``).  These cues
    are arbitrary markers of the synthetic world, not claims about people.

Not a world image (pixel noise, photographs: too rough or too many off-palette colours) and
blank images read as ``kind="unknown"`` with status "unreadable" / "empty".

GenEval-style helpers: :func:`count_objects`, :func:`find_objects`, :func:`relation_holds`,
:func:`matches_spec`.

Here: the reading's result, the world-image gates and the GenEval helpers. Beside it:
``detectgrid`` (the 64x64 working grid), ``detectobjects`` (object scenes, shape templates) and
``detectportrait`` (portraits); ``DetectedObject`` and ``WORK`` are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from neobabel.world.detectgrid import WORK, sqdist, to_work_array
from neobabel.world.detectobjects import DetectedObject, read_objects
from neobabel.world.detectportrait import read_portrait
from neobabel.world.spec import (
    BACKGROUND, HAIR_COLOR, PALETTE, SHAPES, SKIN_TONES, ObjectScene, Portrait, WorldObject, relative_position,
)

STATUSES = (
    "ok",  # read completely
    "empty",  # nothing but background
    "unreadable",  # noise, a photograph, a uniform non-background image: not a world image
    "occupation_unknown",  # person found, uniform/hat not recognized
    "presentation_undetermined",  # person found, presentation cues absent or contradictory
    "occupation_unknown+presentation_undetermined",
)

# gates for "is this a world image at all" (64x64 working grid, RGB Euclidean units)
_ROUGHNESS_MAX = 35.0  # mean |neighbour difference| above this = noise, not a world image
_OFF_PALETTE_MAX = 0.25  # more off-palette pixels than this = not a world image (a photo)


@dataclass(frozen=True)
class Reading:
    """What the detector read.  ``kind``: "objects" | "portrait" | "unknown"; ``status``: one of
    :data:`STATUSES`.  Object fields are filled for "objects", person fields for "portrait"
    (``person_found`` is False for every other kind).  ``presentation`` None = undetermined.
    ``scores`` holds diagnostics: for portraits the top occupation scores, ``long_hair`` and
    ``beard`` (fractions of dark pixels in the cue regions), ``head`` (cx, cy, rx at 64x64)."""

    kind: str
    status: str
    size: tuple[int, int]  # (width, height) of the input
    objects: tuple[DetectedObject, ...] = ()
    person_found: bool = False
    occupation: str | None = None
    presentation: str | None = None
    skin_tone: int | None = None
    scores: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "status": self.status,
            "size": list(self.size),
            "objects": [o.to_dict() for o in self.objects],
            "person_found": self.person_found,
            "occupation": self.occupation,
            "presentation": self.presentation,
            "skin_tone": self.skin_tone,
            "scores": dict(self.scores),
        }


_ALL_REFS = np.array([BACKGROUND, HAIR_COLOR, *PALETTE.values(), *SKIN_TONES], dtype=np.float32)


def _off_palette_fraction(xm: np.ndarray) -> float:
    """Share of pixels (of the median-filtered image) farther than 45 from every world colour:
    ~0.05 for world images, ~0.1-0.17 blurred or noisy, 0.25-0.65 for most photographs."""
    d = sqdist(xm, _ALL_REFS).min(-1)
    return float((d > 45.0**2).mean())


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def read_image(image) -> Reading:
    """Read a world image (PIL image or uint8 array, any size; float arrays in 0..1 accepted)."""
    x, in_size = to_work_array(image)
    rough = float((np.abs(np.diff(x, axis=0)).mean() + np.abs(np.diff(x, axis=1)).mean()) / 2)
    if rough > _ROUGHNESS_MAX:
        return Reading("unknown", "unreadable", in_size, scores={"roughness": round(rough, 2)})
    xm = ndimage.median_filter(x, size=(3, 3, 1), mode="nearest")
    off = _off_palette_fraction(xm)
    if off > _OFF_PALETTE_MAX:
        return Reading("unknown", "unreadable", in_size, scores={"roughness": round(rough, 2), "off_palette": round(off, 3)})
    is_portrait, p = read_portrait(xm)
    if is_portrait:
        occ, pres = p["occupation"], p["presentation"]
        problems = []
        if occ is None:
            problems.append("occupation_unknown")
        if pres is None:
            problems.append("presentation_undetermined")
        status = "+".join(problems) if problems else "ok"
        scores = dict(p["scores"], roughness=round(rough, 2))
        return Reading("portrait", status, in_size, (), True, occ, pres, p["skin_tone"], scores)
    objs, info = read_objects(x, in_size)
    info["roughness"] = round(rough, 2)
    if not objs:
        status = "empty" if info["foreground_fraction"] < 0.01 else "unreadable"
        return Reading("unknown", status, in_size, scores=info)
    return Reading("objects", "ok", in_size, tuple(objs), scores=info)


def _matches(o: DetectedObject, want) -> bool:
    if want is None:
        return True
    if isinstance(want, str):
        return o.shape == want if want in SHAPES else o.color == want
    if isinstance(want, (WorldObject, DetectedObject)):
        return o.shape == want.shape and o.color == want.color
    if isinstance(want, (tuple, list)) and len(want) == 2:
        shape, color = want
        return (shape is None or o.shape == shape) and (color is None or o.color == color)
    raise TypeError(f"cannot match an object against {want!r}")


def find_objects(reading: Reading, shape: str | None = None, color: str | None = None) -> list[DetectedObject]:
    """Detected objects with the given shape and/or colour, largest first."""
    out = [o for o in reading.objects if (shape is None or o.shape == shape) and (color is None or o.color == color)]
    return sorted(out, key=lambda o: -o.area)


def count_objects(reading: Reading, shape: str | None = None, color: str | None = None) -> int:
    """Number of detected objects with the given shape and/or colour (None = any)."""
    return len(find_objects(reading, shape, color))


def relation_holds(reading: Reading, a, b, relation: str) -> bool:
    """Does ``a <relation> b`` hold in the image (GenEval's rule on bounding boxes)?

    ``a`` / ``b``: a shape name, a colour name, a (shape, colour) pair (either may be None), a
    WorldObject or a DetectedObject.  As in GenEval (which keeps the top detection per class),
    the largest matching object of each side is compared; False if either side is missing."""
    if isinstance(a, DetectedObject) and a in reading.objects:
        oa = a
    else:
        cand = sorted((o for o in reading.objects if _matches(o, a)), key=lambda o: -o.area)
        oa = cand[0] if cand else None
    if isinstance(b, DetectedObject) and b in reading.objects:
        ob = b
    else:
        cand = sorted((o for o in reading.objects if _matches(o, b) and o is not oa), key=lambda o: -o.area)
        ob = cand[0] if cand else None
    if oa is None or ob is None:
        return False
    return relation in relative_position(oa.bbox, ob.bbox)


def matches_spec(reading: Reading, spec: ObjectScene | Portrait) -> bool:
    """Strict agreement of a reading with a spec.

    ObjectScene: exactly the spec's objects (same multiset of shape+colour, nothing extra) and,
    for ``position``, the relation holds.  Portrait: a person with the spec's occupation and
    presentation."""
    if isinstance(spec, Portrait):
        return (
            reading.kind == "portrait"
            and reading.person_found
            and reading.occupation == spec.occupation
            and reading.presentation == spec.presentation
        )
    if reading.kind != "objects":
        return False
    want = sorted((o.shape, o.color) for o in spec.objects)
    got = sorted((o.shape or "?", o.color) for o in reading.objects)
    if want != got:
        return False
    if spec.task == "position":
        a, b = spec.objects
        return relation_holds(reading, a, b, spec.relation)
    return True


__all__ = [
    "read_image", "Reading", "DetectedObject", "count_objects", "find_objects", "relation_holds",
    "matches_spec", "STATUSES", "WORK",
]
