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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from .render import draw_shape
from .spec import (
    BACKGROUND,
    COLORS,
    HAIR_COLOR,
    OCCUPATIONS,
    PALETTE,
    SHAPES,
    SKIN_TONES,
    UNIFORMS,
    ObjectScene,
    Portrait,
    WorldObject,
    relative_position,
)

#: side of the working grid every image is resampled to
WORK = 64

STATUSES = (
    "ok",  # read completely
    "empty",  # nothing but background
    "unreadable",  # noise, a photograph, a uniform non-background image: not a world image
    "occupation_unknown",  # person found, uniform/hat not recognized
    "presentation_undetermined",  # person found, presentation cues absent or contradictory
    "occupation_unknown+presentation_undetermined",
)

_BG = np.array(BACKGROUND, dtype=np.float32)
_PAL = np.array([PALETTE[c] for c in COLORS], dtype=np.float32)  # (10, 3)

# thresholds (in the 64x64 working grid, RGB Euclidean units)
_FG_DIST = 45.0  # a pixel this far from the background is foreground
_MIN_AREA = 20  # objects smaller than this (pixels at 64x64) are specks
_ROUGHNESS_MAX = 35.0  # mean |neighbour difference| above this = noise, not a world image
_OFF_PALETTE_MAX = 0.25  # more off-palette pixels than this = not a world image (a photo)
_TEMPLATE = 20  # template side


@dataclass(frozen=True)
class DetectedObject:
    """One object found in an image.  ``bbox`` (x0, y0, x1, y1) and ``centre`` are in pixels of
    the input image (x1, y1 exclusive); ``area`` in input pixels; ``shape`` is None when no
    template fits; ``shape_score`` is the template agreement in [0, 1]."""

    shape: str | None
    color: str
    bbox: tuple[float, float, float, float]
    centre: tuple[float, float]
    area: float
    shape_score: float

    def to_dict(self) -> dict:
        return {
            "shape": self.shape,
            "color": self.color,
            "bbox": [round(v, 2) for v in self.bbox],
            "centre": [round(v, 2) for v in self.centre],
            "area": round(self.area, 2),
            "shape_score": round(self.shape_score, 4),
        }


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


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------


def _to_work_array(image) -> tuple[np.ndarray, tuple[int, int]]:
    """-> float32 (64, 64, 3) in 0..255, and the input (width, height)."""
    if isinstance(image, Image.Image):
        pil = image.convert("RGB")
    else:
        arr = np.asarray(image)
        if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
            arr = np.moveaxis(arr, 0, -1)  # CHW -> HWC
        if arr.dtype != np.uint8:
            arr = arr.astype(np.float64)
            if arr.size and np.nanmax(arr) <= 1.0:
                arr = arr * 255.0
            arr = np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=-1)
        if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4) or min(arr.shape[:2]) < 1:
            raise ValueError(f"expected an image array (H, W, 3), got shape {arr.shape}")
        if arr.shape[-1] == 1:
            arr = np.repeat(arr, 3, axis=-1)
        pil = Image.fromarray(np.ascontiguousarray(arr[..., :3]))
    size = pil.size
    if size != (WORK, WORK):
        upsampling = size[0] < WORK or size[1] < WORK
        pil = pil.resize((WORK, WORK), Image.NEAREST if upsampling else Image.BOX)
    return np.asarray(pil, dtype=np.float32), size


# --------------------------------------------------------------------------------------------
# shape templates
# --------------------------------------------------------------------------------------------


def _cut(alpha: np.ndarray, own: np.ndarray | None = None) -> np.ndarray | None:
    """Object mask from a coverage map: light smoothing (tames pixel noise), cut at 0.5, largest
    8-connected piece; None if empty."""
    a = ndimage.gaussian_filter(alpha.astype(np.float32), 0.5, mode="nearest")
    mask = a > 0.5
    if own is not None:
        mask &= own
    lab, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return None
    if n > 1:
        sizes = ndimage.sum(mask, lab, index=np.arange(1, n + 1))
        mask = lab == (1 + int(np.argmax(sizes)))
    return mask


def _feature(mask: np.ndarray) -> np.ndarray:
    """bool mask cropped to its bbox -> (T*T,) float feature (bbox-normalized silhouette)."""
    m = Image.fromarray((mask * 255).astype(np.uint8)).resize((_TEMPLATE, _TEMPLATE), Image.BILINEAR)
    return (np.asarray(m, dtype=np.float32) / 255.0).ravel()


def _crop(mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return mask[y0:y1, x0:x1], (int(x0), int(y0), int(x1), int(y1))


@lru_cache(maxsize=1)
def _bank() -> tuple[np.ndarray, np.ndarray]:
    """Reference silhouettes: every shape rendered at several sizes, sub-pixel offsets and blur
    levels, natively at 64 and at 32 (nearest-upsampled, as :func:`read_image` does), passed
    through the same mask cut as detections.  Built once, on first use (~0.1 s)."""
    ss = 8
    feats, labels = [], []
    sides = {64: (10, 12, 14, 17, 20, 24, 30), 32: (6, 7, 8, 10, 12, 15)}
    for native, side_list in sides.items():
        n = 40 if native == 64 else 24
        for k, shape in enumerate(SHAPES):
            for side in side_list:
                for blur in (0.0, 0.8, 1.3):
                    for off in (0.0, 0.37, 0.71):
                        img = Image.new("L", (n * ss, n * ss), 0)
                        x0 = (n - side) / 2 * ss + off * ss
                        y0 = (n - side) / 2 * ss + off * 0.6 * ss
                        box = (x0, y0, x0 + side * ss - 1, y0 + side * ss - 1)
                        draw_shape(ImageDraw.Draw(img), shape, box, 255)
                        a = np.asarray(img.resize((n, n), Image.BOX), dtype=np.float32) / 255.0
                        if blur:
                            a = ndimage.gaussian_filter(a, blur * native / 64, mode="nearest")
                        if native != WORK:
                            f = WORK // native
                            a = np.kron(a, np.ones((f, f), np.float32))
                        mask = _cut(a)
                        if mask is None:
                            continue
                        feats.append(_feature(_crop(mask)[0]))
                        labels.append(k)
    return np.stack(feats), np.array(labels)


def _classify_shape(mask: np.ndarray) -> tuple[str | None, float]:
    """mask: bool crop tight to the object's bbox -> (shape or None, agreement in [0, 1])."""
    feats, labels = _bank()
    d = np.abs(feats - _feature(mask)[None]).mean(axis=1)
    best = int(np.argmin(d))
    score = float(1.0 - d[best])
    return (SHAPES[labels[best]] if score >= 0.75 else None), score


# --------------------------------------------------------------------------------------------
# object scenes
# --------------------------------------------------------------------------------------------


def _best_color(pix: np.ndarray) -> tuple[int, np.ndarray]:
    """Palette index whose blend with the background best explains ``pix`` (N, 3)."""
    v = pix - _BG  # (N, 3)
    c = _PAL - _BG  # (10, 3)
    alpha = np.clip((v @ c.T) / (c * c).sum(1), 0.0, 1.0)  # (N, 10)
    resid = ((v[:, None, :] - alpha[..., None] * c[None]) ** 2).sum(-1)  # (N, 10)
    # weight pixels by how far they are from the background (cores count more than edges)
    w = np.sqrt((v * v).sum(1))
    cost = (np.sqrt(resid) * w[:, None]).sum(0) / max(w.sum(), 1e-6)
    k = int(np.argmin(cost))
    return k, alpha[:, k]


def _read_objects(x: np.ndarray, in_size: tuple[int, int]) -> tuple[list[DetectedObject], dict]:
    dist_bg = np.sqrt(((x - _BG) ** 2).sum(-1))
    fg = dist_bg > _FG_DIST
    labels, n = ndimage.label(fg, structure=np.ones((3, 3), bool))
    sx, sy = in_size[0] / WORK, in_size[1] / WORK
    objs: list[DetectedObject] = []
    ignored = 0
    slices = ndimage.find_objects(labels)
    for i, sl in enumerate(slices, start=1):
        if sl is None:
            continue
        comp = labels[sl] == i
        area = int(comp.sum())
        if area < _MIN_AREA:
            continue
        h, w = comp.shape
        if area > 0.5 * WORK * WORK or (h >= WORK - 1 and w >= WORK - 1):
            ignored += 1
            continue
        # colour, then re-cut the mask at half coverage inside a padded window
        y0, y1 = max(sl[0].start - 2, 0), min(sl[0].stop + 2, WORK)
        x0, x1 = max(sl[1].start - 2, 0), min(sl[1].stop + 2, WORK)
        win_lab = labels[y0:y1, x0:x1]
        own = (win_lab == i) | (win_lab == 0)
        k, _ = _best_color(x[labels == i])
        c = _PAL[k] - _BG
        v = x[y0:y1, x0:x1] - _BG
        mask = _cut((v @ c) / float(c @ c), own)
        if mask is None or int(mask.sum()) < _MIN_AREA:
            continue
        a2 = int(mask.sum())
        crop, (bx0, by0, bx1, by1) = _crop(mask)
        shape, sscore = _classify_shape(crop)
        bbox = ((x0 + bx0) * sx, (y0 + by0) * sy, (x0 + bx1) * sx, (y0 + by1) * sy)
        objs.append(
            DetectedObject(
                shape=shape,
                color=COLORS[k],
                bbox=tuple(float(b) for b in bbox),
                centre=((bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2),
                area=float(a2 * sx * sy),
                shape_score=sscore,
            )
        )
    objs.sort(key=lambda o: (o.centre[1], o.centre[0]))
    return objs, {"ignored_regions": ignored, "foreground_fraction": round(float(fg.mean()), 4)}


# --------------------------------------------------------------------------------------------
# portraits
# --------------------------------------------------------------------------------------------

# classes of the portrait classifier: several reference colours per class
_P_CLASSES = ("bg", "dark", "skin", "white", "red", "orange", "yellow", "green", "blue", "purple", "mix")
_P_REFS = [("bg", BACKGROUND), ("dark", HAIR_COLOR), ("dark", PALETTE["black"])]
_P_REFS += [("skin", t) for t in SKIN_TONES]
_P_REFS += [(c, PALETTE[c]) for c in ("white", "red", "orange", "yellow", "green", "blue", "purple")]
_P_REF_RGB = np.array([rgb for _, rgb in _P_REFS], dtype=np.float32)
_P_REF_CLS = np.array([_P_CLASSES.index(c) for c, _ in _P_REFS])
_DARK, _SKIN, _MIX = _P_CLASSES.index("dark"), _P_CLASSES.index("skin"), _P_CLASSES.index("mix")
# blends of two non-skin colours that meet in a portrait (hair or hat on the gray backdrop, a
# hat on hair, ...) can look like skin at anti-aliased or blurred edges; a "skin" pixel on an
# edge that is much closer to such a blend than to any skin tone is relabelled "mix"
_BLEND_PAIRS = [
    ("bg", HAIR_COLOR), ("bg", "white"), ("bg", "yellow"), ("bg", "red"), ("bg", "blue"), ("bg", "green"),
    (HAIR_COLOR, "white"), (HAIR_COLOR, "yellow"), (HAIR_COLOR, "red"), (HAIR_COLOR, "blue"),
    (HAIR_COLOR, "green"), ("white", "black"), ("yellow", "black"), ("white", "red"), ("white", "blue"),
]
_rgb = lambda c: np.array(BACKGROUND if c == "bg" else (PALETTE[c] if isinstance(c, str) else c), np.float32)  # noqa: E731
_SEG_P = np.stack([_rgb(a) for a, _ in _BLEND_PAIRS])
_SEG_D = np.stack([_rgb(b) - _rgb(a) for a, b in _BLEND_PAIRS])
_EDGE = 30.0  # colour change to a 4-neighbour that makes a pixel an edge pixel

_TORSO_CLASSES = {c: ("dark" if c == "black" else c) for c in {u.torso for u in UNIFORMS.values()}}
_HAT_CLASSES = {c for u in UNIFORMS.values() if u.hat_color for c in [u.hat_color]}


def _sqdist(x: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """Squared RGB distances of every pixel of x (..., 3) to refs (R, 3) -> (..., R)."""
    r = np.asarray(refs, np.float32)
    return np.maximum((x * x).sum(-1)[..., None] - 2.0 * (x @ r.T) + (r * r).sum(-1), 0.0)


def _portrait_classes(x: np.ndarray, skin_rgb: np.ndarray | None = None) -> np.ndarray:
    """Per-pixel class index into :data:`_P_CLASSES` (nearest reference colour; edge blends of
    two non-skin colours that would read as skin become "mix").  ``skin_rgb`` (K, 3) replaces
    the five skin tones (second pass, once the face's own tone is known: blends of that tone
    with hair then split at the midpoint instead of reading as a darker skin tone)."""
    refs, ref_cls = _P_REF_RGB, _P_REF_CLS
    if skin_rgb is not None:
        keep = _P_REF_CLS != _SKIN
        refs = np.concatenate([_P_REF_RGB[keep], np.asarray(skin_rgb, np.float32).reshape(-1, 3)])
        ref_cls = np.concatenate([_P_REF_CLS[keep], np.full(len(refs) - int(keep.sum()), _SKIN)])
    d = _sqdist(x, refs)  # (H, W, R)
    ref = np.argmin(d, axis=-1)
    cls = ref_cls[ref]
    # edge pixels: a large colour step to some 4-neighbour
    step = np.zeros(x.shape[:2], np.float32)
    dy = np.sqrt(((x[1:] - x[:-1]) ** 2).sum(-1))
    dx = np.sqrt(((x[:, 1:] - x[:, :-1]) ** 2).sum(-1))
    step[1:] = np.maximum(step[1:], dy)
    step[:-1] = np.maximum(step[:-1], dy)
    step[:, 1:] = np.maximum(step[:, 1:], dx)
    step[:, :-1] = np.maximum(step[:, :-1], dx)
    sk = (cls == _SKIN) & (step > _EDGE)
    if sk.any():
        p = x[sk]  # (N, 3)
        d_skin = d[sk].min(axis=-1)
        v = p[:, None, :] - _SEG_P[None]  # (N, S, 3)
        t = np.clip((v * _SEG_D).sum(-1) / (_SEG_D * _SEG_D).sum(-1), 0.0, 1.0)
        d_seg = ((v - t[..., None] * _SEG_D[None]) ** 2).sum(-1).min(axis=-1)
        idx = np.nonzero(sk)
        mix = d_seg < 0.25 * d_skin  # squared distances: closer by a factor of 2
        cls[idx[0][mix], idx[1][mix]] = _MIX
    return cls


def _frac(cls: np.ndarray, region: tuple[slice, slice] | np.ndarray, names: Sequence[str]) -> dict[str, float]:
    vals = cls[region]
    if vals.size == 0:
        return {n: 0.0 for n in names}
    return {n: float((vals == _P_CLASSES.index(n)).mean()) for n in names}


def _box(y0, y1, x0, x1) -> tuple[slice, slice]:
    r = lambda v: int(round(min(max(v, 0), WORK)))  # noqa: E731
    return slice(r(y0), r(y1)), slice(r(x0), r(x1))


def _solid_rows(mask: np.ndarray, min_fill: float = 0.7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of ``mask`` that are mostly filled between their first and last pixel:
    (row indices, widths, mid-points).  Rows made of two separate slivers are skipped."""
    rows = np.nonzero(mask.any(axis=1))[0]
    sub = mask[rows]
    first = np.argmax(sub, axis=1)
    last = mask.shape[1] - 1 - np.argmax(sub[:, ::-1], axis=1)
    widths = (last - first + 1).astype(float)
    fill = sub.sum(axis=1) / widths
    keep = fill >= min_fill
    return rows[keep], widths[keep], ((first + last) / 2.0)[keep]


def _read_portrait(x: np.ndarray) -> tuple[bool, dict]:
    """x: the working image after a 3x3 median (removes pixel noise, keeps the flat regions'
    edges) -> (is_portrait, fields: occupation, presentation, skin_tone, scores)."""
    cls = _portrait_classes(x)
    fg = cls != 0
    # shoulders: non-background across much of the bottom rows (several components may make
    # them up: a uniform split by a chest accent whose edges blend into gray)
    torso_width = float(fg[-2:, :].any(axis=0).mean())
    if torso_width < 0.45 or fg.mean() > 0.85:  # a portrait stands on the gray backdrop
        return False, {}
    # face: largest skin component above the shoulders
    wide = np.nonzero(fg.mean(axis=1)[28:] >= 0.6)[0]
    shoulder_row = 28 + int(wide[0]) if len(wide) else WORK

    def skin_mask(c: np.ndarray) -> np.ndarray:
        # opening drops 1 px slivers (anti-aliased edges between two other colours read as
        # skin); nothing below the top of the shoulders is a face (their edge can read as skin)
        m = ndimage.binary_opening(c == _SKIN, structure=np.ones((2, 2), bool))
        m[max(shoulder_row - 4, 0) :] = False
        return m

    skin = skin_mask(cls)
    slab, sn = ndimage.label(skin)
    if sn == 0:
        return False, {}
    # the face is the skin component with the widest row (a neck is narrower); must be above
    # the shoulders and big enough
    best, best_key = None, None
    for j, sl in enumerate(ndimage.find_objects(slab), start=1):
        comp = slab[sl] == j
        area = int(comp.sum())
        cy_ = sl[0].start + float(np.nonzero(comp)[0].mean())
        if area < 40 or not 10 <= cy_ <= 44 or sl[0].start == 0:
            continue
        _, widths, _ = _solid_rows(comp)
        if len(widths) == 0:
            continue
        key = (int(widths.max()), area)
        if 11 <= key[0] <= 36 and (best_key is None or key > best_key):
            best, best_key = j, key
    if best is None:
        return False, {}
    face = slab == best
    # second pass with the face's own tone: unbiased skin/hair and skin/background boundaries
    tone_rgb = np.median(x[face], axis=0)
    cls = _portrait_classes(x, tone_rgb[None])
    lab2, _ = ndimage.label(skin_mask(cls))
    ids, counts = np.unique(lab2[face & (lab2 > 0)], return_counts=True)
    if len(ids):
        face2 = lab2 == ids[np.argmax(counts)]
        if len(_solid_rows(face2)[0]):
            face = face2
    rows, widths, mids = _solid_rows(face)
    # head centre row and half-width from the widest rows (robust: median of the 3 widest);
    # continuous coordinates, pixel i covers [i, i + 1)
    w_ref = float(np.median(np.sort(widths)[-3:]))
    top_rows = widths >= w_ref - 1.5
    cy = float(rows[top_rows].mean()) + 0.5
    cx = float(mids[top_rows].mean()) + 0.5
    rx = w_ref / 2
    ry = 1.18 * rx  # the renderer's head aspect
    # regions relative to the head; the hat (or hair) sits right above the topmost
    # full-width row of visible skin
    frows, fwidths, _ = _solid_rows(face)
    face_top = float(frows[fwidths >= 0.5 * w_ref].min())
    hat_reg = _box(face_top - 9, face_top - 1, cx - 0.5 * rx, cx + 0.5 * rx)
    torso_l = _box(57, 63, cx - 20, cx - 9.5)
    torso_r = _box(57, 63, cx + 9.5, cx + 20)
    hair_l = _box(cy + 0.3 * ry, cy + ry + 1, cx - rx - 4.0, cx - rx - 0.5)
    hair_r = _box(cy + 0.3 * ry, cy + ry + 1, cx + rx + 0.5, cx + rx + 4.0)
    beard_reg = _box(cy + 0.42 * ry, cy + 0.9 * ry, cx - 0.3 * rx, cx + 0.3 * rx)

    hat = _frac(cls, hat_reg, ["dark"] + sorted(_HAT_CLASSES))
    torso_names = sorted(set(_TORSO_CLASSES.values()))
    tl, tr = _frac(cls, torso_l, torso_names), _frac(cls, torso_r, torso_names)
    torso = {k: (tl[k] + tr[k]) / 2 for k in torso_names}
    occ_scores = {}
    for occ in OCCUPATIONS:
        u = UNIFORMS[occ]
        t = torso[_TORSO_CLASSES[u.torso]]
        if u.hat_color:
            h = hat[u.hat_color]
        else:  # bare head: hair, and no hat colour
            h = hat["dark"] if max(hat[c] for c in _HAT_CLASSES) < 0.25 else 0.0
        occ_scores[occ] = min(t, h)
    ranked = sorted(occ_scores.items(), key=lambda kv: -kv[1])
    occupation = ranked[0][0] if ranked[0][1] >= 0.35 else None

    long_l = _frac(cls, hair_l, ["dark"])["dark"]
    long_r = _frac(cls, hair_r, ["dark"])["dark"]
    long_hair = min(long_l, long_r)
    beard = _frac(cls, beard_reg, ["dark"])["dark"]
    if long_hair >= 0.3 and beard < 0.2:
        presentation = "feminine"
    elif beard >= 0.2 and long_hair < 0.2:
        presentation = "masculine"
    elif long_hair < 0.12 and beard < 0.12:
        presentation = "ambiguous"
    else:
        presentation = None

    # skin tone: nearest tone to the median face colour
    tone = int(np.argmin(((np.array(SKIN_TONES, np.float32) - tone_rgb) ** 2).sum(1)))
    scores = {
        "occupation": {k: round(v, 3) for k, v in ranked[:3]},
        "long_hair": round(long_hair, 3),
        "beard": round(beard, 3),
        "head": [round(cx, 2), round(cy, 2), round(rx, 2)],
        "torso_width": round(torso_width, 3),
    }
    return True, {"occupation": occupation, "presentation": presentation, "skin_tone": tone, "scores": scores}


_ALL_REFS = np.array([BACKGROUND, HAIR_COLOR, *PALETTE.values(), *SKIN_TONES], dtype=np.float32)


def _off_palette_fraction(xm: np.ndarray) -> float:
    """Share of pixels (of the median-filtered image) farther than 45 from every world colour:
    ~0.05 for world images, ~0.1-0.17 blurred or noisy, 0.25-0.65 for most photographs."""
    d = _sqdist(xm, _ALL_REFS).min(-1)
    return float((d > 45.0**2).mean())


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def read_image(image) -> Reading:
    """Read a world image (PIL image or uint8 array, any size; float arrays in 0..1 accepted)."""
    x, in_size = _to_work_array(image)
    rough = float((np.abs(np.diff(x, axis=0)).mean() + np.abs(np.diff(x, axis=1)).mean()) / 2)
    if rough > _ROUGHNESS_MAX:
        return Reading("unknown", "unreadable", in_size, scores={"roughness": round(rough, 2)})
    xm = ndimage.median_filter(x, size=(3, 3, 1), mode="nearest")
    off = _off_palette_fraction(xm)
    if off > _OFF_PALETTE_MAX:
        return Reading("unknown", "unreadable", in_size, scores={"roughness": round(rough, 2), "off_palette": round(off, 3)})
    is_portrait, p = _read_portrait(xm)
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
    objs, info = _read_objects(x, in_size)
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
