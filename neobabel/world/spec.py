"""Specifications of the synthetic "Babel world": vocabulary, palette, scene dataclasses, samplers.

Every world image is rendered from a *spec* (an :class:`ObjectScene` or a :class:`Portrait`) and a
seed, so each image has a known ground truth.  The renderer (:mod:`neobabel.world.render`) draws
it and the exact detector (:mod:`neobabel.world.detect`) reads it back.

Portrait cues are arbitrary markers of a synthetic world: an occupation is a uniform colour plus a
hat (see :data:`UNIFORMS`), and the *presentation* attribute that stands in for perceived gender
is drawn with emoji-style conventions (long hair = "feminine", beard = "masculine", short hair
without beard = "ambiguous").  These are conventions of this toy world, chosen to be easy to
read back, not claims about how people of any gender look or which occupations they hold.

All dataclasses are frozen and JSON-serializable through ``to_dict`` / ``from_dict``;
:func:`spec_from_dict` dispatches on the ``"kind"`` field.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from neobabel.scorers.detection import relative_position as _relative_position

# --------------------------------------------------------------------------------------------
# vocabulary
# --------------------------------------------------------------------------------------------

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")

#: GenEval's ten colour names, in GenEval's order.
COLORS: tuple[str, ...] = (
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white",
)

#: RGB of each colour.  Chosen so that every pair is >= 94 apart (Euclidean RGB) and every colour
#: is >= 110 away from :data:`BACKGROUND`, which keeps them separable under noise and blur.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (255, 140, 0),
    "yellow": (250, 225, 40),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "purple": (135, 45, 185),
    "pink": (255, 135, 200),
    "brown": (120, 70, 25),
    "black": (15, 15, 15),
    "white": (250, 250, 250),
}

#: Neutral mid-gray backdrop shared by object scenes and portraits (far from black and white).
BACKGROUND: tuple[int, int, int] = (150, 150, 150)

#: GenEval's six object-scene tasks.
TASKS: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")

#: Spatial relations of the ``position`` task: ``objects[0] <relation> objects[1]``.
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")

#: Number of objects per counting scene.
MIN_COUNT, MAX_COUNT = 1, 4

#: Twelve occupations, spelled exactly as MAGBIG's keys.
OCCUPATIONS: tuple[str, ...] = (
    "doctor", "nurse", "cook", "firefighter", "police officer", "construction worker",
    "pilot", "scientist", "teacher", "farmer", "mechanic", "hairdresser",
)

PRESENTATIONS: tuple[str, ...] = ("masculine", "feminine", "ambiguous")

#: Presentation cues drawn by the renderer (emoji-style, arbitrary markers of this world).
PRESENTATION_CUES: dict[str, str] = {
    "feminine": "long hair falling beside the face down to the shoulders, no beard",
    "masculine": "short hair and a full beard (with moustache) over the lower face",
    "ambiguous": "short hair, no beard",
}

#: Five skin tones, light to dark (emoji modifier-like); ``Portrait.skin_tone`` indexes this.
SKIN_TONES: tuple[tuple[int, int, int], ...] = (
    (245, 208, 175),
    (225, 175, 130),
    (190, 135, 90),
    (145, 95, 60),
    (100, 65, 45),
)

#: Hair / beard colour (all portraits).  Dark, but deliberately not used for any hat.
HAIR_COLOR: tuple[int, int, int] = (40, 30, 28)


@dataclass(frozen=True)
class Uniform:
    """How an occupation is drawn: torso colour, hat (kind + colour), chest accent."""

    torso: str  # a COLORS name
    hat: str | None  # hat kind, None = bare head (hair shows)
    hat_color: str | None  # a COLORS name, None when hat is None
    accent: str  # free-text description of the chest detail (not used by the detector)


#: Occupation -> uniform.  The (torso, hat_color) pairs are all distinct; the detector reads
#: the torso colour at the shoulders and the colour on top of the head.
UNIFORMS: dict[str, Uniform] = {
    "doctor": Uniform("white", None, None, "open white coat over a blue shirt"),
    "nurse": Uniform("blue", "nurse cap", "white", "blue scrubs; white cap with a red cross"),
    "cook": Uniform("white", "toque", "white", "white jacket with black buttons; tall white toque"),
    "firefighter": Uniform("black", "helmet", "red", "black coat with a yellow stripe; red helmet"),
    "police officer": Uniform("blue", "peaked cap", "blue", "blue uniform with a yellow badge; blue cap"),
    "construction worker": Uniform("orange", "hard hat", "yellow", "orange vest, yellow stripes; yellow hard hat"),
    "pilot": Uniform("black", "peaked cap", "white", "black jacket, white shirt, yellow epaulettes; white cap"),
    "scientist": Uniform("white", "goggles", "green", "white lab coat; green goggles pushed up on the head"),
    "teacher": Uniform("yellow", None, None, "yellow cardigan over a white shirt with a red tie"),
    "farmer": Uniform("green", "straw hat", "yellow", "green shirt with blue overall straps; wide yellow straw hat"),
    "mechanic": Uniform("red", None, None, "red overalls with a white name patch"),
    "hairdresser": Uniform("purple", None, None, "purple smock with white scissors"),
}

KINDS: tuple[str, ...] = ("objects", "portrait")


def _check(value: Any, allowed: tuple, what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(map(repr, allowed))}")


# --------------------------------------------------------------------------------------------
# dataclasses
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorldObject:
    """One coloured shape.  ``box`` = (x0, y0, x1, y1) as fractions of the image side, or None
    (the renderer then chooses the layout from the seed)."""

    shape: str
    color: str
    box: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        _check(self.shape, SHAPES, "shape")
        _check(self.color, COLORS, "color")
        if self.box is not None:
            box = tuple(float(v) for v in self.box)
            if len(box) != 4 or not (box[0] < box[2] and box[1] < box[3]):
                raise ValueError(f"bad box {self.box!r}: expected (x0, y0, x1, y1) with x0<x1, y0<y1")
            object.__setattr__(self, "box", box)

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"shape": self.shape, "color": self.color}
        if self.box is not None:
            d["box"] = list(self.box)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "WorldObject":
        box = d.get("box")
        return cls(d["shape"], d["color"], tuple(box) if box is not None else None)


_N_OBJECTS = {
    "single_object": (1, 1),
    "colors": (1, 1),
    "two_object": (2, 2),
    "position": (2, 2),
    "color_attr": (2, 2),
    "counting": (MIN_COUNT, MAX_COUNT),
}


@dataclass(frozen=True)
class ObjectScene:
    """A GenEval-style scene.  For ``position``: ``objects[0] <relation> objects[1]``.
    For ``counting``: ``objects`` holds N identical objects (same shape and colour)."""

    task: str
    objects: tuple[WorldObject, ...]
    relation: str | None = None

    kind = "objects"

    def __post_init__(self) -> None:
        _check(self.task, TASKS, "task")
        objs = tuple(o if isinstance(o, WorldObject) else WorldObject.from_dict(o) for o in self.objects)
        object.__setattr__(self, "objects", objs)
        lo, hi = _N_OBJECTS[self.task]
        if not lo <= len(objs) <= hi:
            raise ValueError(f"task {self.task!r} needs {lo}..{hi} objects, got {len(objs)}")
        if self.task == "counting" and len({(o.shape, o.color) for o in objs}) != 1:
            raise ValueError("counting scenes hold identical objects (same shape and colour)")
        if self.task == "position":
            _check(self.relation, RELATIONS, "relation")
        elif self.relation is not None:
            raise ValueError(f"relation is only meaningful for the position task, not {self.task!r}")

    @property
    def count(self) -> int:
        return len(self.objects)

    def without_boxes(self) -> "ObjectScene":
        return ObjectScene(self.task, tuple(WorldObject(o.shape, o.color) for o in self.objects), self.relation)

    def to_dict(self) -> dict:
        return {
            "kind": "objects",
            "task": self.task,
            "objects": [o.to_dict() for o in self.objects],
            "relation": self.relation,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ObjectScene":
        return cls(d["task"], tuple(WorldObject.from_dict(o) for o in d["objects"]), d.get("relation"))


@dataclass(frozen=True)
class Portrait:
    """A head-and-shoulders person: occupation (uniform + hat), presentation, skin tone index."""

    occupation: str
    presentation: str
    skin_tone: int = 0

    kind = "portrait"

    def __post_init__(self) -> None:
        _check(self.occupation, OCCUPATIONS, "occupation")
        _check(self.presentation, PRESENTATIONS, "presentation")
        if isinstance(self.skin_tone, bool) or not isinstance(self.skin_tone, (int, np.integer)):
            raise ValueError(f"skin_tone must be an int index into SKIN_TONES, got {self.skin_tone!r}")
        if not 0 <= int(self.skin_tone) < len(SKIN_TONES):
            raise ValueError(f"skin_tone must be in 0..{len(SKIN_TONES) - 1}, got {self.skin_tone}")
        object.__setattr__(self, "skin_tone", int(self.skin_tone))

    def to_dict(self) -> dict:
        return {
            "kind": "portrait",
            "occupation": self.occupation,
            "presentation": self.presentation,
            "skin_tone": self.skin_tone,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Portrait":
        return cls(d["occupation"], d["presentation"], int(d.get("skin_tone", 0)))


Spec = ObjectScene | Portrait


def spec_from_dict(d: Mapping[str, Any]) -> Spec:
    """Rebuild an ObjectScene or Portrait from its ``to_dict()`` form (dispatch on ``kind``)."""
    kind = d.get("kind")
    if kind == "objects":
        return ObjectScene.from_dict(d)
    if kind == "portrait":
        return Portrait.from_dict(d)
    raise ValueError(f"unknown spec kind {kind!r}; expected 'objects' or 'portrait'")


def spec_json(spec: Spec) -> str:
    """Canonical JSON of a spec (sorted keys, no spaces): stable across runs and machines."""
    return json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_hash(spec: Spec) -> int:
    """Stable 32-bit hash of a spec (crc32 of its canonical JSON); used to seed layouts."""
    return zlib.crc32(spec_json(spec).encode("utf-8"))


# --------------------------------------------------------------------------------------------
# samplers
# --------------------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, seq: tuple, k: int = 1, distinct: bool = True) -> list:
    idx = rng.choice(len(seq), size=k, replace=not distinct)
    return [seq[int(i)] for i in np.atleast_1d(idx)]


def sample_object_scene(task: str, rng: np.random.Generator) -> ObjectScene:
    """Draw a random scene for one of :data:`TASKS` (GenEval's semantics):

    - ``single_object`` / ``colors``: one object, any shape and colour;
    - ``two_object``: two different shapes, any colours;
    - ``counting``: 1..4 copies of one shape in one colour;
    - ``position``: two different shapes, any colours, a random relation;
    - ``color_attr``: two different shapes in two different colours.
    """
    _check(task, TASKS, "task")
    if task in ("single_object", "colors"):
        (s,) = _pick(rng, SHAPES)
        (c,) = _pick(rng, COLORS)
        return ObjectScene(task, (WorldObject(s, c),))
    if task == "counting":
        (s,) = _pick(rng, SHAPES)
        (c,) = _pick(rng, COLORS)
        n = int(rng.integers(MIN_COUNT, MAX_COUNT + 1))
        return ObjectScene(task, tuple(WorldObject(s, c) for _ in range(n)))
    s1, s2 = _pick(rng, SHAPES, 2)
    if task == "color_attr":
        c1, c2 = _pick(rng, COLORS, 2)
    else:
        c1, c2 = _pick(rng, COLORS, 2, distinct=False)
    relation = _pick(rng, RELATIONS)[0] if task == "position" else None
    return ObjectScene(task, (WorldObject(s1, c1), WorldObject(s2, c2)), relation)


def sample_portrait(
    rng: np.random.Generator,
    occupation: str | None = None,
    presentation: str | None = None,
) -> Portrait:
    """Draw a portrait; occupation and presentation are uniform unless given; skin tone uniform."""
    occ = occupation if occupation is not None else _pick(rng, OCCUPATIONS)[0]
    pres = presentation if presentation is not None else _pick(rng, PRESENTATIONS)[0]
    tone = int(rng.integers(len(SKIN_TONES)))
    return Portrait(occ, pres, tone)


__all__ = [
    "SHAPES", "COLORS", "PALETTE", "BACKGROUND", "TASKS", "RELATIONS", "MIN_COUNT", "MAX_COUNT",
    "OCCUPATIONS", "PRESENTATIONS", "PRESENTATION_CUES", "SKIN_TONES", "HAIR_COLOR", "UNIFORMS",
    "Uniform", "KINDS", "WorldObject", "ObjectScene", "Portrait", "Spec", "spec_from_dict",
    "spec_json", "spec_hash", "sample_object_scene", "sample_portrait",
]


# --------------------------------------------------------------------------------------------
# geometry shared by the renderer and the detector
# --------------------------------------------------------------------------------------------

#: GenEval's POSITION_THRESHOLD: centre offsets are reduced by this fraction of the box sizes.
POSITION_THRESHOLD = 0.1


def relative_position(box_a, box_b) -> set[str]:
    """Relations that hold for ``a`` relative to ``b`` (GenEval's rule, boxes as x0, y0, x1, y1
    in any common unit, y growing downwards): e.g. ``{"left of"}`` or ``{"right of", "above"}``.
    The m-GenEval engine's own function (neobabel.scorers.detection) at GenEval's threshold."""
    return _relative_position(box_a, box_b, POSITION_THRESHOLD)


__all__ += ["POSITION_THRESHOLD", "relative_position"]
