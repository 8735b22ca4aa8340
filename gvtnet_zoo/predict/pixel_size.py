"""Predicting at the pixel size a model declares: images resampled in y and x to it, outputs back to their grid.

A package declares the pixel size it was trained at as its input's y and x ``scale`` (with a unit); the
paper's label-free models expect 0.29 um. bioimage.io has no resampling step, so ``predict --pixel-size``
does it around the package: cubic-spline resizing (data/resample.py: resize_yx) of each input, prediction, and
resizing of each output back to the input's size.
"""

from __future__ import annotations

from typing import Any, Optional

from ..errors import UserError


def declared_pixel_size(descr: Any) -> Optional[float]:
    """The first input's y (= x) pixel size in micrometres, or None when it declares none."""
    scales = {str(a.id): (getattr(a, "scale", 1.0), getattr(a, "unit", None)) for a in descr.inputs[0].axes}
    y, x = scales.get("y", (1.0, None)), scales.get("x", (1.0, None))
    if y[1] is None or y != x:
        return None
    factor = {"micrometer": 1.0, "nanometer": 1e-3, "millimeter": 1e3}.get(str(y[1]))
    return y[0] * factor if factor else None


def resample_factor(descr: Any, pixel_size: Optional[float]) -> float:
    """How much an image of ``pixel_size`` um is resized for the model (1 without --pixel-size)."""
    if pixel_size is None:
        return 1.0
    if pixel_size <= 0:
        raise UserError(f"--pixel-size {pixel_size}: give the images' pixel size in micrometres, e.g. 0.108")
    model = declared_pixel_size(descr)
    if model is None:
        raise UserError("--pixel-size: the model declares no pixel size (no y/x scale with a unit); predict without it")
    return pixel_size / model
