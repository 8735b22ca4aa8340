"""Predicting at the pixel size a model declares: images resampled in y and x to it, outputs back to their grid.

A package declares the pixel size it was trained at as its input's y and x ``scale`` (with a unit); the
paper's label-free models expect 0.29 um. bioimage.io has no resampling step, so ``predict --pixel-size``
does it around the package: cubic-spline resizing (data/resample.py: resize_yx) of each input, prediction, and
resizing of each output back to the input's size (not with ``--keep-model-pixel-size``).

A per-sample ``zero_mean_unit_variance`` is taken at the image's own pixel size, as the original label-free
code z-scored each raw image before resizing it (``zscore_before_resizing``).
"""

from __future__ import annotations

import math

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from ..data.resample import resize_yx
from ..errors import UserError
from .tensors import axis_letters, tensor_id

if TYPE_CHECKING:
    from .model import ZooModel


def declared_pixel_size(descr: Any) -> Optional[float]:
    """The first input's y (= x) pixel size in micrometres, or None when it declares none."""
    scales = {str(a.id): (getattr(a, "scale", 1.0), getattr(a, "unit", None)) for a in descr.inputs[0].axes}
    y, x = scales.get("y", (1.0, None)), scales.get("x", (1.0, None))
    if y[1] is None or y != x:
        return None
    factor = {"micrometer": 1.0, "nanometer": 1e-3, "millimeter": 1e3}.get(str(y[1]))
    return y[0] * factor if factor else None


def check_keep_model_pixel_size(pixel_size: Optional[float], keep_model_pixel_size: bool) -> None:
    """--keep-model-pixel-size only means something when --pixel-size resizes the inputs."""
    if keep_model_pixel_size and pixel_size is None:
        raise UserError("--keep-model-pixel-size keeps outputs at the model's pixel size after --pixel-size "
                        "resized the inputs; give --pixel-size too, or leave it out")


def resample_factor(descr: Any, pixel_size: Optional[float], keep_model_pixel_size: bool = False) -> float:
    """How much an image of ``pixel_size`` um is resized for the model (1 without --pixel-size)."""
    check_keep_model_pixel_size(pixel_size, keep_model_pixel_size)
    if pixel_size is None:
        return 1.0
    if not math.isfinite(pixel_size) or pixel_size <= 0:
        raise UserError(f"--pixel-size {pixel_size}: give the images' pixel size in micrometres, e.g. 0.108")
    model = declared_pixel_size(descr)
    if model is None:
        raise UserError("--pixel-size: the model declares no pixel size (no y/x scale with a unit); predict without it")
    return pixel_size / model


@dataclass(frozen=True)
class ZScoreFirst:
    """A package's per-sample ``zero_mean_unit_variance``, run by gvtnet-zoo on the image as read."""

    axes: str  # letters of 'bczyx' whose voxels share one mean and std (never the batch: per sample)
    eps: float  # the package's: (x - mean) / (std + eps)


def _leading_zscore(tensor: Any) -> tuple[Optional[ZScoreFirst], list[Any]]:
    """(the input's per-sample z-score when it is the first step besides dtype casts, the steps after it)."""
    steps = list(getattr(tensor, "preprocessing", None) or [])
    for index, step in enumerate(steps):
        if step.id == "ensure_dtype":  # a cast before the z-score changes nothing: it is computed in float64
            continue
        axes = getattr(getattr(step, "kwargs", None), "axes", None)
        if step.id != "zero_mean_unit_variance" or axes is None or isinstance(axes, str):
            return None, steps  # another step first, dataset statistics or format 0.4: left to the package
        letters = dict(zip((a.id for a in tensor.axes), axis_letters(tensor)))
        reduced = "".join(letters[a] for a in axes if a in letters)
        if "b" in reduced:
            return None, steps
        return ZScoreFirst(reduced, float(step.kwargs.eps)), steps[index + 1:]
    return None, steps


def zscore_before_resizing(model: "ZooModel") -> tuple["ZooModel", dict[str, ZScoreFirst]]:
    """(``model`` whose inputs lose a leading per-sample ``zero_mean_unit_variance``, {input id: that step}).

    Why: the original label-free code z-scored each raw image (float64 mean and std of the image as given) and
    then resized it; the package z-scores what it is given, and the std of a resized image differs (cubic
    splines smooth). So the caller z-scores each image as read with the package's own axes and eps
    (``to_model_pixel_size``), resizes that, and runs a pipeline built from the returned description, whose
    preprocessing no longer has the z-score: the network sees exactly z-score-then-resize. Other steps (e.g.
    ``scale_range``) stay in the package and see the resized image, as before; a fixed mean and std commute with
    the (linear) resizing anyway. The eps is the one the package declares (bioimageio.core 0.11 applies 1e-6
    whatever is declared; gvtnet-zoo's packages declare 1e-6).
    """
    from bioimageio.spec.model import v0_5

    if not isinstance(model.descr, v0_5.ModelDescr):
        return model, {}
    first: dict[str, ZScoreFirst] = {}
    inputs = []
    for tensor in model.descr.inputs:
        zscore, rest = _leading_zscore(tensor)
        if zscore is not None:
            first[tensor_id(tensor)] = zscore
            tensor = tensor.model_copy(update={"preprocessing": rest})
        inputs.append(tensor)
    if not first:
        return model, {}
    return dataclasses.replace(model, descr=model.descr.model_copy(update={"inputs": inputs})), first


def to_model_pixel_size(array: np.ndarray, letters: str, factor: float,
                        zscore: Optional[ZScoreFirst] = None) -> np.ndarray:
    """An image as read (axes ``letters`` of 'bczyx') resized by ``factor`` in y and x (float32), z-scored first
    at its own pixel size (float64 statistics over ``zscore.axes``, as the original) when ``zscore`` is given."""
    if zscore is not None:
        image = array.astype(np.float64)
        reduced = tuple(i for i, a in enumerate(letters) if a in zscore.axes)
        mean = image.mean(axis=reduced, keepdims=True)
        std = image.std(axis=reduced, keepdims=True)
        array = (image - mean) / (std + zscore.eps)
    return resize_yx(array, letters, factor).astype(np.float32, copy=False)
