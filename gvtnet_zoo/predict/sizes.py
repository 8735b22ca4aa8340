"""Image sizes against a model's: padding up to a valid size (mirroring the far side) and cropping outputs back.

Parameterized axes take ``min + n * step``; a fixed-size axis takes its size, and larger images are tiled at it.
Outputs that follow an input (sized by reference to it, or of a fixed size equal to a fixed input size along
the same axis, as CAREamics exports) are cropped back to what the unpadded input gives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..errors import UserError


def fixed_grid(size: int) -> int:
    """The grid tiles of a fixed-size axis start on: the largest power of two dividing ``size``, at most 16 and a
    quarter of it. A package states no down-sampling step for a fixed size, but a U-Net exported at it (CAREamics
    exports 64 or 128) pools on such a grid; tiles off it would see their pooling windows shifted."""
    step = 1
    while size % (step * 2) == 0 and step * 2 <= min(16, max(1, size // 4)):
        step *= 2
    return step


def valid_size(axis: Any, size: int, step_only: bool = False) -> int:
    """The smallest valid size >= ``size`` for a 0.5 input axis; for a fixed size, itself or more (tiles of it
    cover the image, their starts on its grid). ``step_only``: a multiple of the step, even below the declared
    minimum (which a package raises to hold its halo; the network itself runs on any multiple)."""
    from bioimageio.spec.model import v0_5

    if isinstance(axis.size, v0_5.ParameterizedSize) and step_only:
        return max(1, math.ceil(size / axis.size.step)) * axis.size.step
    if isinstance(axis.size, v0_5.ParameterizedSize):
        return axis.size.get_size(axis.size.get_n(size)) if size > axis.size.min else axis.size.min
    if isinstance(axis.size, int):
        step = fixed_grid(axis.size)
        return axis.size + max(0, math.ceil((size - axis.size) / step) * step)
    return size


def input_axis_of(axis: Any, tensor: Any) -> Optional[tuple[str, float, int]]:
    """(input axis id, output voxels per input voxel, size offset) when the output ``axis`` follows a space axis
    of input ``tensor``: a size reference to it, or a fixed size matching a fixed input size along the same axis
    id (an export that fixed both at its test image's size). None otherwise."""
    from bioimageio.spec.model import v0_5

    if axis.type != "space":
        return None
    inputs = {a.id: a for a in tensor.axes if a.type == "space"}
    size = getattr(axis, "size", None)
    if isinstance(size, v0_5.SizeReference) and size.tensor_id == tensor.id and size.axis_id in inputs:
        return str(size.axis_id), inputs[size.axis_id].scale / axis.scale, size.offset
    source = inputs.get(axis.id)
    if isinstance(size, int) and source is not None and isinstance(source.size, int):
        ratio = source.scale / axis.scale
        return str(axis.id), ratio, size - math.floor(source.size * ratio)
    return None


def exceeds_fixed_size(descr: Any, sample: Any) -> Optional[str]:
    """'axis (size > fixed)' for the first input axis of fixed size that the sample is larger than, else None."""
    for tensor in descr.inputs:
        sizes = sample.members[tensor.id].sizes
        for axis in tensor.axes:
            if axis.type == "space" and isinstance(axis.size, int) and sizes[axis.id] > axis.size:
                return f"{axis.id} ({sizes[axis.id]} > {axis.size})"
    return None


@dataclass(frozen=True)
class Border:
    """How an image is padded up to a valid size: numpy's pad ``mode``, and whether half of the padding goes
    before the image (``centred``) or all of it after."""

    mode: str = "symmetric"
    centred: bool = False
    step_only: bool = False  # pad to a multiple of the step, not to the declared minimum (valid_size)

    def split(self, size: int, padded: int) -> tuple[int, int]:
        """(voxels before, voxels after) the image of ``size`` padded to ``padded``."""
        total = padded - size
        before = total // 2 if self.centred else 0
        return before, total - before

    def source_index(self, positions: np.ndarray, size: int, before: int) -> np.ndarray:
        """The image index each padded position (0 = the first padded voxel) reads, as numpy's pad gives it
        (periodic beyond the image's own length)."""
        i = positions - before
        if self.mode == "reflect":
            if size == 1:
                return np.zeros_like(i)
            k = i % (2 * size - 2)
            return np.where(k < size, k, 2 * size - 2 - k)
        k = i % (2 * size)
        return np.where(k < size, k, 2 * size - 1 - k)


# the original GVTNets (and CSBDeep's CARE) pad with PadAndCropResizer: numpy 'reflect' to a multiple of the
# network's step, half the padding (rounded down) before the image and the rest after; a GVTNet attends to the whole padded image, so the border moves every
# voxel and gvtnet-zoo's own packages are padded as their networks were by the original's predict.py
ORIGINAL_BORDER = Border("reflect", centred=True, step_only=True)


def border_of(descr: Any) -> Border:
    """gvtnet-zoo packages (trained here or imported): the original's padding; any other package: mirrored
    ('symmetric') on the far side, as bioimageio.core pads."""
    config = getattr(getattr(descr, "config", None), "gvtnet_zoo", None)
    return ORIGINAL_BORDER if isinstance(config, dict) else Border()


def padding(descr: Any, axis: Any, size: int) -> tuple[int, int]:
    """(voxels before, voxels after) an input ``axis`` of ``size`` is padded to a valid size (``border_of``)."""
    border = border_of(descr)
    return border.split(size, valid_size(axis, size, border.step_only))


def pad_to_valid(descr: Any, sample: Any) -> dict[Any, dict[Any, int]]:
    """Pad every input's space axes to valid sizes as ``border_of`` says; returns the original sizes."""
    mode = border_of(descr).mode
    original: dict[Any, dict[Any, int]] = {}
    for tensor in descr.inputs:
        member = sample.members[tensor.id]
        original[tensor.id] = dict(member.sizes)
        widths = {a.id: padding(descr, a, original[tensor.id][a.id]) for a in tensor.axes if a.type == "space"}
        sample.members[tensor.id] = member.pad(widths, mode=mode) if any(sum(w) for w in widths.values()) else member
    return original


def output_length(size: int, ratio: float, offset: int, axis: str) -> int:
    """The output's length along an axis following an input axis of ``size`` (x ``ratio`` + ``offset``); an image
    too small for any output is refused (a valid convolution's output would have no voxels)."""
    length = math.floor(size * ratio) + offset
    if length < 1:
        raise UserError(f"the image is too small along {axis} ({size} voxels): the model's output would have "
                        f"{length}; give an image of at least {math.ceil((1 - offset) / ratio)} voxels along {axis}")
    return length


def crop_outputs(descr: Any, result: Any, original: dict[Any, dict[Any, int]]) -> Any:
    """Cut the outputs back to what the unpadded inputs give (outputs sized by reference to an input)."""
    for out in descr.outputs:
        crop = {}
        for axis in out.axes:
            for tensor in descr.inputs:
                source = input_axis_of(axis, tensor)
                if source is not None:
                    name, ratio, offset = source
                    size = next(n for a, n in original[tensor.id].items() if str(a) == name)
                    space = next(a for a in tensor.axes if str(a.id) == name)
                    start = round(padding(descr, space, size)[0] * ratio)  # the output of the padding before
                    crop[axis.id] = slice(start, start + output_length(size, ratio, offset, name))
                    break
        result.members[out.id] = result.members[out.id][crop]
    return result
