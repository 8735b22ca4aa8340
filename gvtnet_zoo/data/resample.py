"""Resizing images in y and x, as the label-free originals did before training (0.108 -> 0.29 um per pixel)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def resample_yx(image: np.ndarray, factor: float) -> np.ndarray:
    """(..., Y, X) -> (..., round(Y * factor), round(X * factor)), float32; a cubic spline with edges extended,
    as scipy.ndimage.zoom in pytorch_fnet's and the original GVTNets' ``Resizer``."""
    if factor == 1.0:
        return image
    zoom = (1.0,) * (image.ndim - 2) + (factor, factor)
    return ndimage.zoom(image.astype(np.float32, copy=False), zoom, order=3, mode="nearest")
