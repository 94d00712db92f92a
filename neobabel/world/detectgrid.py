"""The detector's working grid: every input image resampled to 64x64 float RGB."""

from __future__ import annotations

import numpy as np
from PIL import Image

#: side of the working grid every image is resampled to
WORK = 64


def to_work_array(image) -> tuple[np.ndarray, tuple[int, int]]:
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


def sqdist(x: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """Squared RGB distances of every pixel of x (..., 3) to refs (R, 3) -> (..., R)."""
    r = np.asarray(refs, np.float32)
    return np.maximum((x * x).sum(-1)[..., None] - 2.0 * (x @ r.T) + (r * r).sum(-1), 0.0)
