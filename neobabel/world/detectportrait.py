"""Reading portraits: a wide uniform region touching the bottom edge (the shoulders) with a
skin-coloured face above it. Pixels go to the nearest reference colour; fixed regions relative
to the head give the occupation (torso colour, hat) and the presentation cues (long hair,
beard). See :mod:`neobabel.world.detect` for the whole reading."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from neobabel.world.detectgrid import WORK, sqdist
from neobabel.world.spec import BACKGROUND, HAIR_COLOR, OCCUPATIONS, PALETTE, SKIN_TONES, UNIFORMS


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
    d = sqdist(x, refs)  # (H, W, R)
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


def read_portrait(x: np.ndarray) -> tuple[bool, dict]:
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
