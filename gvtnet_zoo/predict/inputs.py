"""A sample's input tensors in the model's axes, read from files (with --pixel-size resizing) or given as arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import refuse_non_finite
from ..image_io.files import read_with_axes, to_model_axes
from .model import ZooModel
from .pixel_size import ZScoreFirst, to_model_pixel_size
from .tensors import axis_ids, axis_letters, channel_count, check_channels


def sample_members(model: ZooModel, arrays: dict[str, tuple[np.ndarray, str, str]]) -> tuple[dict[str, Any], int]:
    """One sample's input tensors from {input id: (array, its axes as letters of bczyx, its name for messages)}
    (in the model's axes, float32), and its largest number of space voxels. Files and napari layers alike."""
    from bioimageio.core import Tensor

    tensors = dict(zip(model.input_ids, model.descr.inputs))
    members, space = {}, 0
    for input_id, (array, axes, name) in arrays.items():
        tensor = tensors[input_id]
        letters = axis_letters(tensor)
        array = to_model_axes(np.asarray(array), axes, letters, name).astype(np.float32)
        refuse_non_finite(array, name)  # as streamed prediction does: a network spreads NaN to every voxel
        check_channels(tensor, array.shape, letters, name)
        members[input_id] = Tensor.from_numpy(array, dims=axis_ids(tensor))
        space = max(space, int(np.prod([s for s, a in zip(array.shape, letters) if a in "zyx"])))
    return members, space


def read_sample(model: ZooModel, files: dict[str, Path], axes: Optional[str],
                 resample: float = 1.0, zscored: Optional[dict[str, ZScoreFirst]] = None
                 ) -> tuple[dict[str, Any], int, list[str], tuple[int, int]]:
    """One sample's input tensors read from files (resized in y and x by ``resample``, after ``zscored``), its largest
    number of space voxels, notes on how axes were guessed, and the first input's (y, x) size as read."""
    tensors = dict(zip(model.input_ids, model.descr.inputs))
    arrays, notes, yx = {}, [], (0, 0)
    for input_id, path in files.items():
        tensor = tensors[input_id]
        array, file_axes, note = read_with_axes(path, axes, axis_letters(tensor), channel_count(tensor))
        notes += [note] if note else []
        if resample != 1.0:
            yx = yx if yx != (0, 0) else (array.shape[file_axes.index("y")], array.shape[file_axes.index("x")])
            array = to_model_pixel_size(array, file_axes, resample, (zscored or {}).get(input_id))
        arrays[input_id] = (array, file_axes, path.name)
    members, space = sample_members(model, arrays)
    return members, space, notes, yx
