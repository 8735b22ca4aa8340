"""Resizing images in y and x, as the label-free originals did before training (0.108 -> 0.29 um per pixel)."""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import ndimage


def resize_yx(array: np.ndarray, letters: str, factor: Optional[float] = None,
              sizes: Optional[tuple[int, int]] = None) -> np.ndarray:
    """``array`` (axes ``letters``, e.g. 'zyx') resized along y and x by ``factor``, or to exactly ``sizes`` (y, x).

    A cubic spline with the edges extended, as scipy.ndimage.zoom in pytorch_fnet's and the original GVTNets'
    ``Resizer`` (scipy maps output to input coordinates from the two sizes alone, so sizes equal to the original's
    give its values); float32 out, the array itself when nothing changes. A float64 array is resized in float64,
    as the original resized its float64 z-scored images, and rounded to float32 after.
    """
    axes = [letters.index(a) for a in "yx"]
    if sizes is None:
        sizes = tuple(max(1, round(array.shape[i] * factor)) for i in axes)
    if tuple(array.shape[i] for i in axes) == tuple(sizes):
        return array
    zoom = [1.0] * array.ndim
    for i, size in zip(axes, sizes):
        zoom[i] = size / array.shape[i]
    work = array if array.dtype == np.float64 else array.astype(np.float32, copy=False)
    return ndimage.zoom(work, zoom, order=3, mode="nearest").astype(np.float32, copy=False)
