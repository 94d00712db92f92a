"""Deterministic renderer of the synthetic world: ``render(spec, seed, size) -> PIL.Image``.

Object scenes are flat-coloured shapes (see :data:`~neobabel.world.spec.SHAPES`, palette
:data:`~neobabel.world.spec.PALETTE`) on a neutral gray background; size and placement come from
the seed, objects never overlap (a clear gap is kept), never touch the image border, and the
``position`` relation holds by a wide margin (GenEval's rule, see
:func:`~neobabel.world.spec.relative_position`).

Portraits are stylized head-and-shoulders figures designed to stay readable when blurred or
noisy (big flat regions of distinctive colours, not fine detail):

- occupation = uniform colour on the shoulders + hat colour/shape on top of the head
  (:data:`~neobabel.world.spec.UNIFORMS`), plus a small chest accent;
- presentation (emoji-style markers, a convention of this synthetic world -- not a claim about
  people): ``feminine`` = long hair falling beside the face down to the shoulders;
  ``masculine`` = short hair and a full beard over the lower face; ``ambiguous`` = short hair,
  no beard;
- skin tone = one of :data:`~neobabel.world.spec.SKIN_TONES`;
- the seed jitters head position and size, torso width and shoulder height.

Everything is drawn with PIL at 4x the output size and box-downsampled (anti-aliased edges).
Rendering is a pure function of ``(spec, seed, size)``: the layout RNG is seeded with the seed
and a stable hash of the spec.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from .spec import (
    BACKGROUND,
    HAIR_COLOR,
    PALETTE,
    SKIN_TONES,
    UNIFORMS,
    ObjectScene,
    Portrait,
    Spec,
    WorldObject,
    relative_position,
    spec_hash,
)

#: supersampling factor (drawn at SS x size, then box-downsampled)
SS = 4

# object layout parameters, as fractions of the image side: (min, max) object side per count
_SIZE_RANGES = {
    "large": {1: (0.30, 0.52), 2: (0.24, 0.38), 3: (0.21, 0.31), 4: (0.19, 0.28)},
    "small": {1: (0.40, 0.62), 2: (0.32, 0.44), 3: (0.30, 0.37), 4: (0.28, 0.34)},
}
_MARGIN = {"large": 0.06, "small": 0.07}  # distance from the image border
_GAP = {"large": 0.08, "small": 0.11}  # free space between two objects' boxes
_STAR_INNER = 0.47  # inner / outer radius of the five-pointed star (fat: survives blur)
_CROSS_ARM = 0.36  # arm width of the cross as a fraction of its side


def _size_class(size: int) -> str:
    return "small" if size < 48 else "large"


def _rng(spec: Spec, seed: int) -> np.random.Generator:
    if isinstance(spec, ObjectScene):
        spec = spec.without_boxes()
    return np.random.default_rng([int(seed) % (2**63), spec_hash(spec)])


# --------------------------------------------------------------------------------------------
# object scenes
# --------------------------------------------------------------------------------------------


def _relation_ok(rel: str, ca: np.ndarray, cb: np.ndarray) -> np.ndarray:
    """Vectorized: does ``a rel b`` hold with a wide margin?  ca, cb: (K, 2) centres."""
    off = ca - cb
    primary = {"left of": -off[:, 0], "right of": off[:, 0], "above": -off[:, 1], "below": off[:, 1]}[rel]
    secondary = np.abs(off[:, 1] if rel in ("left of", "right of") else off[:, 0])
    return (primary > 0) & (secondary <= 0.3 * primary)


def layout(spec: ObjectScene, seed: int, size: int = 64) -> ObjectScene:
    """The scene with every object's ``box`` filled in (fractions of the image side), as
    :func:`render` draws it.  Boxes already present in ``spec`` are kept as they are."""
    if not isinstance(spec, ObjectScene):
        raise TypeError("layout() takes an ObjectScene")
    if all(o.box is not None for o in spec.objects):
        return spec
    rng = _rng(spec, seed)
    cls = _size_class(size)
    n = len(spec.objects)
    lo, hi = _SIZE_RANGES[cls][n]
    margin, gap = _MARGIN[cls], _GAP[cls]
    K = 128  # candidate positions tried at once for each object
    for attempt in range(400):
        # sizes first, then objects placed one by one (uniform among free positions); a dead
        # end restarts with new sizes, and after many restarts the size range shrinks a little
        shrink = 0.98 ** (attempt // 20)
        s = rng.uniform(lo, hi, size=n) * shrink
        centres: list[np.ndarray] = []
        for i in range(n):
            c = margin + s[i] / 2 + rng.uniform(0, 1, size=(K, 2)) * (1 - 2 * margin - s[i])
            ok = np.ones(K, dtype=bool)
            for j, cj in enumerate(centres):
                need = (s[i] + s[j]) / 2 + gap
                ok &= np.any(np.abs(c - cj) >= need, axis=1)  # a full gap along x or y
            if spec.task == "position" and i == 1:
                # objects[0] <relation> objects[1], with a wide margin
                ok &= _relation_ok(spec.relation, np.broadcast_to(centres[0], c.shape), c)
            hits = np.flatnonzero(ok)
            if len(hits) == 0:
                break
            centres.append(c[hits[0]])
        if len(centres) < n:
            continue
        boxes = [(cx - si / 2, cy - si / 2, cx + si / 2, cy + si / 2) for (cx, cy), si in zip(centres, s)]
        if spec.task == "position" and relative_position(boxes[0], boxes[1]) != {spec.relation}:
            continue
        objs = tuple(
            WorldObject(o.shape, o.color, o.box if o.box is not None else tuple(round(float(v), 5) for v in b))
            for o, b in zip(spec.objects, boxes)
        )
        return ObjectScene(spec.task, objs, spec.relation)
    raise RuntimeError(f"could not lay out {spec!r} at size {size}")  # pragma: no cover


def shape_polygon(shape: str, box: Sequence[float]) -> list[tuple[float, float]] | None:
    """Polygon of a shape inscribed in ``box`` (None for the circle, drawn as an ellipse)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if shape == "circle":
        return None
    if shape == "square":
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    if shape == "triangle":
        return [(x0, y1), (x1, y1), (cx, y0)]
    if shape == "cross":
        a = _CROSS_ARM / 2
        return [
            (cx - a * w, y0), (cx + a * w, y0), (cx + a * w, cy - a * h), (x1, cy - a * h),
            (x1, cy + a * h), (cx + a * w, cy + a * h), (cx + a * w, y1), (cx - a * w, y1),
            (cx - a * w, cy + a * h), (x0, cy + a * h), (x0, cy - a * h), (cx - a * w, cy - a * h),
        ]
    if shape == "star":
        # unit star: outer radius 1, tips at angles -90 + 72k degrees
        pts = []
        for k in range(10):
            r = 1.0 if k % 2 == 0 else _STAR_INNER
            ang = math.radians(-90 + 36 * k)
            pts.append((r * math.cos(ang), r * math.sin(ang)))
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        bw, bh = max(xs) - min(xs), max(ys) - min(ys)
        scale = min(w / bw, h / bh)
        ox = cx - scale * (max(xs) + min(xs)) / 2
        oy = cy - scale * (max(ys) + min(ys)) / 2
        return [(ox + scale * x, oy + scale * y) for x, y in pts]
    raise ValueError(f"unknown shape {shape!r}")


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: Sequence[float], fill) -> None:
    poly = shape_polygon(shape, box)
    if poly is None:
        draw.ellipse(list(box), fill=fill)
    else:
        draw.polygon(poly, fill=fill)


def _render_objects(spec: ObjectScene, seed: int, size: int) -> Image.Image:
    scene = layout(spec, seed, size)
    big = size * SS
    img = Image.new("RGB", (big, big), BACKGROUND)
    d = ImageDraw.Draw(img)
    for o in scene.objects:
        x0, y0, x1, y1 = (v * big for v in o.box)
        draw_shape(d, o.shape, (x0, y0, x1 - 1, y1 - 1), PALETTE[o.color])
    return img.resize((size, size), Image.BOX)


# --------------------------------------------------------------------------------------------
# portraits
# --------------------------------------------------------------------------------------------

_EYE = (35, 30, 40)
_MOUTH = (175, 70, 70)
_SHIRT_V = PALETTE["white"]


def portrait_geometry(spec: Portrait, seed: int) -> dict[str, float]:
    """Head/torso geometry of a portrait in 64-pixel units (what the seed varies)."""
    rng = _rng(spec, seed)
    cx = 32 + rng.uniform(-3, 3)
    cy = 25 + rng.uniform(-1.5, 1.5)
    rx = rng.uniform(9.0, 10.5)
    ry = 1.18 * rx
    torso_top = cy + ry + rng.uniform(6, 8)
    half_width = rng.uniform(22, 25)
    return {"cx": cx, "cy": cy, "rx": rx, "ry": ry, "torso_top": torso_top, "torso_half_width": half_width}


class _Pen:
    """Draws in 64-unit coordinates on a canvas of any size."""

    def __init__(self, img: Image.Image):
        self.d = ImageDraw.Draw(img)
        self.k = img.size[0] / 64.0

    def _p(self, pts):
        return [(x * self.k, y * self.k) for x, y in pts]

    def ellipse(self, cx, cy, rx, ry, fill):
        self.d.ellipse([(cx - rx) * self.k, (cy - ry) * self.k, (cx + rx) * self.k, (cy + ry) * self.k], fill=fill)

    def chord(self, x0, y0, x1, y1, start, end, fill):
        self.d.chord([x0 * self.k, y0 * self.k, x1 * self.k, y1 * self.k], start, end, fill=fill)

    def rect(self, x0, y0, x1, y1, fill, radius=0.0):
        box = [x0 * self.k, y0 * self.k, x1 * self.k, y1 * self.k]
        if radius > 0:
            self.d.rounded_rectangle(box, radius=radius * self.k, fill=fill)
        else:
            self.d.rectangle(box, fill=fill)

    def poly(self, pts, fill):
        self.d.polygon(self._p(pts), fill=fill)

    def line(self, pts, fill, width):
        self.d.line(self._p(pts), fill=fill, width=max(1, int(round(width * self.k))))


def _draw_accent(pen: _Pen, occ: str, g: dict) -> None:
    cx, t0, hw = g["cx"], g["torso_top"], g["torso_half_width"]
    bottom = 70
    if occ == "doctor":  # open coat over a blue shirt
        pen.poly([(cx - 5.5, t0 - 1), (cx + 5.5, t0 - 1), (cx + 4, bottom), (cx - 4, bottom)], PALETTE["blue"])
    elif occ == "cook":  # double row of black buttons
        for dy in (5, 10, 15):
            for dx in (-3, 3):
                pen.ellipse(cx + dx, t0 + dy, 1.1, 1.1, PALETTE["black"])
    elif occ == "firefighter":  # reflective stripe
        pen.rect(cx - hw + 1, t0 + 6, cx + hw - 1, t0 + 8.5, PALETTE["yellow"])
    elif occ == "police officer":  # badge
        pen.ellipse(cx - 7, t0 + 7, 2.1, 2.1, PALETTE["yellow"])
    elif occ == "construction worker":  # vest stripes
        for x in (cx - 8, cx + 5.5):
            pen.rect(x, t0 + 1, x + 2.5, bottom, PALETTE["yellow"])
    elif occ == "pilot":  # white shirt, black tie, yellow epaulettes
        pen.poly([(cx - 5, t0 - 1), (cx + 5, t0 - 1), (cx, t0 + 9)], _SHIRT_V)
        pen.poly([(cx - 1, t0 + 1), (cx + 1, t0 + 1), (cx + 1.3, t0 + 6), (cx, t0 + 7.5), (cx - 1.3, t0 + 6)], PALETTE["black"])
        for sgn in (-1, 1):
            x_in, x_out = cx + sgn * (hw - 11), cx + sgn * (hw - 3)
            pen.rect(min(x_in, x_out), t0 + 1.5, max(x_in, x_out), t0 + 3.5, PALETTE["yellow"])
    elif occ == "scientist":  # coat opening + pens in the pocket
        pen.rect(cx - 0.5, t0 + 3, cx + 0.5, bottom, (205, 205, 205))
        pen.rect(cx + 4, t0 + 6, cx + 5, t0 + 10, PALETTE["blue"])
        pen.rect(cx + 6, t0 + 6, cx + 7, t0 + 10, PALETTE["red"])
    elif occ == "teacher":  # white shirt and red tie
        pen.poly([(cx - 5, t0 - 1), (cx + 5, t0 - 1), (cx, t0 + 10)], _SHIRT_V)
        pen.poly([(cx - 1.2, t0 + 0.5), (cx + 1.2, t0 + 0.5), (cx + 1.8, t0 + 8), (cx, t0 + 10.5), (cx - 1.8, t0 + 8)], PALETTE["red"])
    elif occ == "farmer":  # overall bib and straps
        for x in (cx - 8, cx + 5.5):
            pen.rect(x, t0, x + 2.5, t0 + 10, PALETTE["blue"])
        pen.rect(cx - 7, t0 + 9, cx + 7, bottom, PALETTE["blue"], radius=1.5)
    elif occ == "mechanic":  # name patch
        pen.rect(cx - 8.5, t0 + 5, cx - 3, t0 + 8.5, PALETTE["white"], radius=0.8)
    elif occ == "hairdresser":  # scissors
        for x in (cx + 4.5, cx + 8.5):
            pen.ellipse(x, t0 + 13, 1.8, 1.8, PALETTE["white"])
            pen.ellipse(x, t0 + 13, 0.8, 0.8, PALETTE["purple"])
        pen.line([(cx + 4.8, t0 + 11.5), (cx + 8.2, t0 + 3)], PALETTE["white"], 1.1)
        pen.line([(cx + 8.2, t0 + 11.5), (cx + 4.8, t0 + 3)], PALETTE["white"], 1.1)
    # nurse: plain scrubs


def _draw_hat(pen: _Pen, occ: str, g: dict) -> None:
    u = UNIFORMS[occ]
    if u.hat is None:
        return
    cx, rx, top = g["cx"], g["rx"], g["cy"] - g["ry"]
    col = PALETTE[u.hat_color]
    if u.hat == "nurse cap":
        pen.poly([(cx - 0.85 * rx, top + 5.5), (cx + 0.85 * rx, top + 5.5), (cx + 0.6 * rx, top - 5), (cx - 0.6 * rx, top - 5)], col)
        pen.rect(cx - 0.7, top - 3.2, cx + 0.7, top + 0.6, PALETTE["red"])
        pen.rect(cx - 1.9, top - 2.0, cx + 1.9, top - 0.6, PALETTE["red"])
    elif u.hat == "toque":
        pen.rect(cx - 0.8 * rx, top - 9, cx + 0.8 * rx, top + 5.5, col)
        for dx, dy, r in ((-0.5, -9, 0.45), (0.0, -11, 0.5), (0.5, -9, 0.45)):
            pen.ellipse(cx + dx * rx, top + dy, r * rx, r * rx * 0.9, col)
    elif u.hat == "helmet":
        pen.chord(cx - rx - 1.2, top - 6, cx + rx + 1.2, top + 12, 180, 360, col)
        pen.ellipse(cx, top + 4.5, rx + 5.5, 2.2, col)
    elif u.hat == "peaked cap":
        pen.poly([(cx - rx - 1.8, top - 6), (cx + rx + 1.8, top - 6), (cx + rx + 0.3, top + 4.8), (cx - rx - 0.3, top + 4.8)], col)
        pen.chord(cx - 0.9 * rx, top + 2.3, cx + 0.9 * rx, top + 7.3, 0, 180, PALETTE["black"])
        pen.ellipse(cx, top - 2.5, 1.7, 1.7, PALETTE["yellow"])
    elif u.hat == "hard hat":
        pen.chord(cx - rx - 1.5, top - 6.5, cx + rx + 1.5, top + 12.5, 180, 360, col)
        pen.rect(cx - rx - 3.5, top + 2.5, cx + rx + 3.5, top + 5.5, col, radius=1.2)
        pen.rect(cx - 0.8, top - 6.3, cx + 0.8, top + 2.5, (225, 195, 25))
    elif u.hat == "goggles":
        pen.rect(cx - rx - 0.6, top + 0.3, cx + rx + 0.6, top + 5.2, col, radius=1.0)
        for sgn in (-1, 1):
            pen.ellipse(cx + sgn * 0.45 * rx, top + 2.8, 0.42 * rx, 3.1, col)
            pen.ellipse(cx + sgn * 0.45 * rx, top + 2.8, 0.25 * rx, 1.8, (20, 115, 40))
    elif u.hat == "straw hat":
        pen.rect(cx - 0.8 * rx, top - 6, cx + 0.8 * rx, top + 4, col, radius=2.0)
        pen.ellipse(cx, top + 4, rx + 7, 2.6, col)
    else:  # pragma: no cover
        raise ValueError(u.hat)


def _render_portrait(spec: Portrait, seed: int, size: int) -> Image.Image:
    g = portrait_geometry(spec, seed)
    cx, cy, rx, ry, t0, hw = (g[k] for k in ("cx", "cy", "rx", "ry", "torso_top", "torso_half_width"))
    top = cy - ry
    skin = SKIN_TONES[spec.skin_tone]
    u = UNIFORMS[spec.occupation]
    big = size * SS
    img = Image.new("RGB", (big, big), BACKGROUND)
    pen = _Pen(img)

    # shoulders / uniform
    pen.rect(cx - hw, t0, cx + hw, 64 + 12, PALETTE[u.torso], radius=9)
    _draw_accent(pen, spec.occupation, g)
    # long hair falls behind the head, beside the neck, onto the shoulders
    if spec.presentation == "feminine":
        pen.rect(cx - rx - 4.5, top - 1.5, cx + rx + 4.5, t0 + 3, HAIR_COLOR, radius=7)
    # neck and head
    pen.rect(cx - 0.42 * rx, cy + 0.5 * ry, cx + 0.42 * rx, t0 + 3, skin)
    pen.ellipse(cx, cy, rx, ry, skin)
    # short hair cap (everyone): upper half-ellipse with a flat fringe at cy - 0.5 ry
    fringe = cy - 0.5 * ry
    pen.chord(cx - rx - 0.8, top - 1.5, cx + rx + 0.8, 2 * fringe - (top - 1.5), 180, 360, HAIR_COLOR)
    # beard: the head ellipse below cy + 0.33 ry
    if spec.presentation == "masculine":
        y_cut = cy + 0.33 * ry
        pts = []
        for i in range(41):
            a = math.pi * i / 40  # 0..pi: right -> bottom -> left
            x, y = cx + rx * math.cos(a), cy + ry * math.sin(a)
            pts.append((x, max(y, y_cut)))
        pen.poly(pts, HAIR_COLOR)
    # face
    for sgn in (-1, 1):
        pen.ellipse(cx + sgn * 0.4 * rx, cy - 0.02 * ry, 1.1, 1.2, _EYE)
    pen.line([(cx - 0.22 * rx, cy + 0.5 * ry), (cx + 0.22 * rx, cy + 0.5 * ry)], _MOUTH, 1.3)
    _draw_hat(pen, spec.occupation, g)
    return img.resize((size, size), Image.BOX)


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def render(spec: Spec, seed: int, size: int = 64) -> Image.Image:
    """Render ``spec`` (ObjectScene or Portrait) as an RGB image of ``size`` x ``size``.

    Deterministic: the same ``(spec, seed, size)`` gives identical pixels.  Designed for sizes 32
    and 64 (any size >= 16 works; below 48 px objects are drawn relatively larger)."""
    size = int(size)
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    if isinstance(spec, ObjectScene):
        return _render_objects(spec, seed, size)
    if isinstance(spec, Portrait):
        return _render_portrait(spec, seed, size)
    raise TypeError(f"render() takes an ObjectScene or Portrait, got {type(spec).__name__}")


def render_array(spec: Spec, seed: int, size: int = 64) -> np.ndarray:
    """Like :func:`render` but returns a uint8 array (size, size, 3)."""
    return np.asarray(render(spec, seed, size), dtype=np.uint8)


def render_batch(specs: Sequence[Spec], seeds: Sequence[int], size: int = 64) -> np.ndarray:
    """Render many specs: uint8 array (N, size, size, 3)."""
    if len(specs) != len(seeds):
        raise ValueError(f"{len(specs)} specs but {len(seeds)} seeds")
    out = np.empty((len(specs), size, size, 3), dtype=np.uint8)
    for i, (spec, seed) in enumerate(zip(specs, seeds)):
        out[i] = render_array(spec, int(seed), size)
    return out


__all__ = ["render", "render_array", "render_batch", "layout", "portrait_geometry", "shape_polygon", "draw_shape", "SS"]
