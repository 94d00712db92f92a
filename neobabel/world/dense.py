"""Dense world scenes for m-DPG: two groups of objects, each with a shape, a colour and a count,
and a spatial relation between the groups ("two red circles left of a blue square").

That is the densest scene the caption grammar (:mod:`neobabel.world.captions`) can say in all
13 languages: two noun phrases, each with its colour and number, joined by a relation (or by
"and"). Scenes are drawn with the world renderer's shapes and palette
(:func:`neobabel.world.render.draw_shape`), on its background, anti-aliased the same way; the
layout keeps the relation true for every pair of objects across the groups (GenEval's rule,
:func:`~neobabel.world.spec.relative_position`, checked on boxes enlarged by a safety margin).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from neobabel.world.render import SS, draw_shape
from neobabel.world.spec import (
    BACKGROUND, COLORS, PALETTE, RELATIONS, SHAPES, WorldObject, relative_position,
)

#: most objects in one dense scene (the renderer's size ranges go up to 4)
MAX_OBJECTS = 4
_SIZE = {1: (0.30, 0.44), 2: (0.24, 0.34), 3: (0.20, 0.28), 4: (0.18, 0.25)}
_MARGIN, _GAP = 0.05, 0.07
_RELATION_SAFETY = 1.4  # the relation must also hold with every box this much larger


@dataclass(frozen=True)
class Group:
    shape: str
    color: str
    count: int = 1

    def __post_init__(self) -> None:
        if self.shape not in SHAPES or self.color not in COLORS or not 1 <= int(self.count) <= MAX_OBJECTS:
            raise ValueError(f"bad group {self!r}")


@dataclass(frozen=True)
class DenseScene:
    """Two groups with different shapes; ``relation`` reads ``groups[0] REL groups[1]`` (None:
    the caption says "and" and nothing constrains the layout)."""

    groups: tuple[Group, Group]
    relation: str | None = None

    def __post_init__(self) -> None:
        a, b = self.groups
        if a.shape == b.shape:
            raise ValueError("the two groups of a dense scene have different shapes")
        if a.count + b.count > MAX_OBJECTS:
            raise ValueError(f"a dense scene holds at most {MAX_OBJECTS} objects")
        if self.relation is not None and self.relation not in RELATIONS:
            raise ValueError(f"unknown relation {self.relation!r}")

    def to_dict(self) -> dict:
        return {"kind": "dense", "groups": [[g.shape, g.color, g.count] for g in self.groups],
                "relation": self.relation}

    @classmethod
    def from_dict(cls, d: dict) -> "DenseScene":
        return cls(tuple(Group(*g) for g in d["groups"]), d.get("relation"))

    @property
    def n_objects(self) -> int:
        return sum(g.count for g in self.groups)


def sample_dense_scene(rng: np.random.Generator, relation_prob: float = 0.75) -> DenseScene:
    """Two different shapes in two different colours; counts with at most 4 objects in all."""
    s = rng.choice(len(SHAPES), 2, replace=False)
    c = rng.choice(len(COLORS), 2, replace=False)
    pairs = [(a, b) for a in range(1, 4) for b in range(1, 4) if a + b <= MAX_OBJECTS]
    na, nb = pairs[int(rng.integers(len(pairs)))]
    rel = RELATIONS[int(rng.integers(len(RELATIONS)))] if rng.random() < relation_prob else None
    return DenseScene((Group(SHAPES[s[0]], COLORS[c[0]], na), Group(SHAPES[s[1]], COLORS[c[1]], nb)), rel)


def _grow(box, k: float):
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw, hh = (box[2] - box[0]) * k / 2, (box[3] - box[1]) * k / 2
    return (cx - hw, cy - hh, cx + hw, cy + hh)


def _relation_safe(a, b, rel: str) -> bool:
    return relative_position(a, b) == {rel} and rel in relative_position(_grow(a, _RELATION_SAFETY), _grow(b, _RELATION_SAFETY))


def layout_dense(scene: DenseScene, seed: int) -> list[tuple[int, WorldObject]]:
    """Every object of the scene with its box (fractions of the image side), as
    ``(group index, WorldObject)``; a pure function of (scene, seed)."""
    key = zlib.crc32(json.dumps(scene.to_dict(), sort_keys=True).encode("utf-8"))
    rng = np.random.default_rng([int(seed) % (2**63), key])
    members = [gi for gi, g in enumerate(scene.groups) for _ in range(g.count)]
    n = len(members)
    lo, hi = _SIZE[n]
    K = 256
    for attempt in range(600):
        shrink = 0.97 ** (attempt // 30)
        s = rng.uniform(lo, hi, size=n) * shrink
        boxes: list[tuple[float, float, float, float]] = []
        for i in range(n):
            c = _MARGIN + s[i] / 2 + rng.uniform(0, 1, size=(K, 2)) * (1 - 2 * _MARGIN - s[i])
            ok = np.ones(K, dtype=bool)
            for j, bj in enumerate(boxes):
                cj = np.array([(bj[0] + bj[2]) / 2, (bj[1] + bj[3]) / 2])
                ok &= np.any(np.abs(c - cj) >= (s[i] + s[j]) / 2 + _GAP, axis=1)
            hits = np.flatnonzero(ok)
            placed = None
            for h in hits:
                cx, cy = c[h]
                box = (cx - s[i] / 2, cy - s[i] / 2, cx + s[i] / 2, cy + s[i] / 2)
                if scene.relation is not None and members[i] == 1:
                    if not all(_relation_safe(boxes[j], box, scene.relation) for j in range(i) if members[j] == 0):
                        continue
                placed = box
                break
            if placed is None:
                break
            boxes.append(placed)
        if len(boxes) == n:
            return [(gi, WorldObject(scene.groups[gi].shape, scene.groups[gi].color,
                                     tuple(round(float(v), 5) for v in b))) for gi, b in zip(members, boxes)]
    raise RuntimeError(f"could not lay out {scene!r}")  # pragma: no cover


def render_objects(objects: list[WorldObject], size: int = 64) -> Image.Image:
    """Objects with boxes drawn as the world renderer draws an object scene."""
    big = size * SS
    img = Image.new("RGB", (big, big), BACKGROUND)
    d = ImageDraw.Draw(img)
    for o in objects:
        x0, y0, x1, y1 = (v * big for v in o.box)
        draw_shape(d, o.shape, (x0, y0, x1 - 1, y1 - 1), PALETTE[o.color])
    return img.resize((size, size), Image.BOX)


def render_dense(scene: DenseScene, seed: int, size: int = 64) -> Image.Image:
    return render_objects([o for _, o in layout_dense(scene, seed)], size)


__all__ = ["Group", "DenseScene", "MAX_OBJECTS", "sample_dense_scene", "layout_dense", "render_objects", "render_dense"]
