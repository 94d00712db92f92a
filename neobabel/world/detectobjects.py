"""Reading object scenes: pixels far from the gray background form connected components; each
component's colour is the palette colour whose blend with the background best explains it; its
mask is re-cut at half coverage and its shape is the nearest bbox-normalized silhouette in a
reference bank (built once on first use). Specks (< 20 px at 64x64) are ignored."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from neobabel.world.detectgrid import WORK
from neobabel.world.render import draw_shape
from neobabel.world.spec import BACKGROUND, COLORS, PALETTE, SHAPES

_BG = np.array(BACKGROUND, dtype=np.float32)
_PAL = np.array([PALETTE[c] for c in COLORS], dtype=np.float32)  # (10, 3)

# thresholds (in the 64x64 working grid, RGB Euclidean units)
_FG_DIST = 45.0  # a pixel this far from the background is foreground
_MIN_AREA = 20  # objects smaller than this (pixels at 64x64) are specks
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


def read_objects(x: np.ndarray, in_size: tuple[int, int]) -> tuple[list[DetectedObject], dict]:
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
