"""Tiled prediction with blended seams, for single-input models.

The sample is normalized once as a whole (sample statistics such as percentiles come from the whole
image), then cut into overlapping tiles of valid size. Each tile's output is weighted: zero inside
the model's halo (the convolutions' border effects), then a linear ramp across the rest of the
overlap, one in the middle; tiles touching the image border keep full weight there. The weighted
sum over tiles, divided by the summed weights, is postprocessed once. For a network without global
operators and with a correct halo this equals whole-image prediction.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from ..errors import UserError
from ..progress import Progress, no_progress
from .halo_check import TOLERANCE, overlap_deviation


def _starts(size: int, tile: int, stride: int) -> list[int]:
    """Tile starts covering [0, size): every ``stride``, the last one flush with the end."""
    if tile >= size or stride < 1:
        return [0]
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def ramp(length: int, halo: int, blend: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1D tile weight: 0 in the halo, a linear ramp over ``blend``, 1 inside; no fall-off at an image border."""
    weight = np.ones(length, np.float32)
    rise = np.concatenate([np.zeros(halo), np.arange(1, blend + 1) / (blend + 1)]).astype(np.float32)[:length]
    if not at_start:
        weight[: len(rise)] = rise
    if not at_end:
        weight[length - len(rise):] = np.minimum(weight[length - len(rise):], rise[::-1])
    return weight


def valid_tile(axis: Any, wanted: int, size: int) -> int:
    """A valid size for ``axis`` near ``wanted``, at most ``size`` (which is itself valid); a fixed size is the tile."""
    if isinstance(axis.size, int):
        return axis.size
    low, step = axis.size.min, axis.size.step
    return min(size, max(low, low + (max(wanted, low) - low) // step * step))


def grid_step(axis: Any) -> int:
    """Tiles start on multiples of this: the down-sampling grid of a parameterized axis; any voxel for a fixed one."""
    return 1 if isinstance(axis.size, int) else axis.size.step


def predict_blended(pipeline: Any, descr: Any, sample: Any, tile: dict[str, int], halo: dict[str, int],
                    progress_name: str, warn: Callable[[str], None] = print, progress: Progress = no_progress) -> Any:
    """Predict a (valid-size) ``sample`` in blended tiles; returns the postprocessed output sample. Several
    inputs must share one grid (``same_grid``): every tile cuts the same region from each.

    The first two tiles' overlap is checked (predict/halo_check.py); a halo too small for the network gets one
    ``warn`` line with the deviation and the halo that would remove it. ``progress`` hears (done, total) tiles
    before each tile and at the end.
    """
    from bioimageio.core import Tensor
    from bioimageio.core.sample import Sample
    from bioimageio.spec.model import v0_5

    tensor, input_ids = descr.inputs[0], {t.id for t in descr.inputs}
    pipeline.apply_preprocessing(sample)
    sizes = dict(sample.members[tensor.id].sizes)
    # only axes the outputs keep are tiled: a 3D-to-2D projection needs its whole stack in every tile
    kept = {ref.axis_id for output in descr.outputs for axis in output.axes
            if isinstance(ref := getattr(axis, "size", None), v0_5.SizeReference) and ref.tensor_id in input_ids}
    space = [a for a in tensor.axes if a.type == "space" and isinstance(a.size, (v0_5.ParameterizedSize, int))
             and a.id in kept]
    windows: dict[Any, list[_Window]] = {}
    for axis in space:
        size, h, step = sizes[axis.id], halo.get(str(axis.id), 0), grid_step(axis)
        length = valid_tile(axis, tile.get(str(axis.id), size), size)
        blend = max(step, length // 8)
        # tiles start on the network's down-sampling grid, or their outputs would differ from the whole image's
        stride = (length - 2 * h - blend) // step * step
        if stride < step and length < size:
            fix = (f"the model's fixed size {length} leaves no room; give a smaller halo" if isinstance(axis.size, int)
                   else f"use tiles of at least {2 * h + blend + step}")
            raise UserError(f"--tile {length} along {axis.id} leaves too little between the halos ({h} each side) "
                            f"and the blend ({blend}); {fix}")
        starts = _starts(size, length, stride)
        windows[axis.id] = [_Window(s, length, h, blend, s == 0, s + length == size, axis.scale) for s in starts]

    sums: dict[Any, np.ndarray] = {}
    weights: dict[Any, np.ndarray] = {}
    combos = list(itertools.product(*windows.values()))
    for index, combo in enumerate(tqdm(combos, desc=f"  {progress_name}", unit="tile", leave=False,
                                       disable=len(combos) < 2)):
        progress(index, len(combos))
        region = {a.id: slice(w.start, w.start + w.length) for a, w in zip(space, combo)}
        tile_sample = Sample(members={i: sample.members[i][region] for i in input_ids}, stat=sample.stat, id=sample.id)
        out = pipeline.predict_sample_without_blocking(tile_sample, skip_preprocessing=True, skip_postprocessing=True,
                                                       skip_input_padding=True, skip_output_cropping=True)
        if index == 0:
            first = out
        elif index == 1:
            _check_halo(descr, input_ids, space, combos[0], combo, first, out, sizes, progress_name, warn)
        for output in descr.outputs:
            _accumulate(output, out.members[output.id], input_ids, {a.id: c for a, c in zip(space, combo)},
                        sums, weights, sizes)
    progress(len(combos), len(combos))
    members = {}
    for output in descr.outputs:
        dims = [a.id for a in output.axes]
        members[output.id] = Tensor.from_numpy(sums[output.id] / np.maximum(weights[output.id], 1e-12), dims=dims)
    result = Sample(members=members, stat=sample.stat, id=sample.id)
    pipeline.apply_postprocessing(result)
    return result


def _check_halo(descr: Any, input_ids: set[Any], space: list[Any], before: tuple, after: tuple, first: Any, second: Any,
                sizes: dict[Any, int], name: str, warn: Callable[[str], None]) -> None:
    """Compare the first output of two neighbouring tiles in their overlap; warn once if the halo is too small."""
    from bioimageio.spec.model import v0_5

    (axis_index,) = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    axis, output = space[axis_index], descr.outputs[0]
    for position, out_axis in enumerate(output.axes):
        ref = getattr(out_axis, "size", None)
        if isinstance(ref, v0_5.SizeReference) and ref.tensor_id in input_ids and ref.axis_id == axis.id:
            break
    else:
        return
    data = [tile.members[output.id].data.to_numpy() for tile in (first, second)]
    places = [window.in_output(out_axis, ref.offset, d.shape[position], sizes[axis.id])[0]
              for window, d in zip((before[axis_index], after[axis_index]), data)]
    window = before[axis_index]
    deviation, needed = overlap_deviation(data[0], data[1], places[0], places[1], position,
                                          window.output_halo(out_axis, ref.offset))
    if deviation <= TOLERANCE:
        return
    if needed is not None:
        wider = math.ceil((needed - ref.offset / 2) / window.ratio(out_axis))
        fix = f"a halo of {wider} along {axis.id} would remove it (--halo; it also needs tiles large enough)"
    else:
        fix = ("the overlap is too narrow to find the halo that removes it: try a larger --halo with larger tiles; "
               "a network that sees its whole tile (a GVTNet) needs --whole, or --global-context for gvtnet-zoo's")
    warn(f"warning: {name}: neighbouring tiles differ by up to {deviation:.2g} of the output's range where they "
         f"overlap along {axis.id}, beyond the halo of {window.halo}; {fix}")


@dataclass(frozen=True)
class _Window:
    """One tile along one input axis, in input voxels, and what its blend weights need."""

    start: int
    length: int
    halo: int
    blend: int
    at_start: bool  # touches the image's first voxel: no fall-off there
    at_end: bool
    input_scale: float  # the input axis's voxel size

    def ratio(self, axis: Any) -> float:
        """Output voxels per input voxel along an output axis sized by reference to this input axis."""
        return self.input_scale / axis.scale

    def output_halo(self, axis: Any, offset: int) -> int:
        """The halo in output voxels: an offset takes the same from (or adds it to) both ends of every tile."""
        return max(0, round(self.halo * self.ratio(axis) + offset / 2))

    def in_output(self, axis: Any, offset: int, produced: int, input_size: int) -> tuple[slice, np.ndarray, int]:
        """(where the tile's output goes, its weights, the whole output's size) along an output axis sized by
        reference to this input axis: scaled by input scale / output scale, plus the reference's offset."""
        ratio = self.ratio(axis)
        start, length = self.start * ratio, self.length * ratio + offset
        if start != int(start) or produced != round(length):
            raise UserError(f"the model's output axis {axis.id} ({produced} voxels for a tile of {self.length}) does "
                            f"not follow its description (x{ratio:g}{offset:+d}); predict it --whole")
        weight = ramp(produced, self.output_halo(axis, offset), max(1, round(self.blend * ratio)), self.at_start,
                      self.at_end)
        return slice(int(start), int(start) + produced), weight, round(input_size * ratio) + offset


def _accumulate(output: Any, predicted: Any, input_ids: set[Any], placement: dict[Any, _Window],
                sums: dict[Any, np.ndarray], weights: dict[Any, np.ndarray], input_sizes: dict[Any, int]) -> None:
    """Add one tile's weighted output into the running sums (output axes referencing the tiled input axes)."""
    from bioimageio.spec.model import v0_5

    data = predicted.data.to_numpy().astype(np.float32)
    index: list[slice] = []
    weight = np.ones([1] * data.ndim, np.float32)
    full_shape = list(data.shape)
    for position, axis in enumerate(output.axes):
        ref = getattr(axis, "size", None)
        if isinstance(ref, v0_5.SizeReference) and ref.tensor_id in input_ids and ref.axis_id in placement:
            where, w, full_shape[position] = placement[ref.axis_id].in_output(
                axis, ref.offset, data.shape[position], input_sizes[ref.axis_id])
            index.append(where)
            shape = [1] * data.ndim
            shape[position] = data.shape[position]
            weight = weight * w.reshape(shape)
        else:
            index.append(slice(None))
    if output.id not in sums:
        sums[output.id] = np.zeros(full_shape, np.float32)
        weights[output.id] = np.zeros(full_shape, np.float32)
    sums[output.id][tuple(index)] += data * weight
    weights[output.id][tuple(index)] += np.broadcast_to(weight, data.shape)


def same_grid(descr: Any, sample: Any) -> bool:
    """Whether every input has the first input's space axes at the same sizes (one region cuts all)."""
    first = descr.inputs[0]
    axes = {a.id: sample.members[first.id].sizes[a.id] for a in first.axes if a.type == "space"}
    return all({a.id: sample.members[t.id].sizes[a.id] for a in t.axes if a.type == "space"} == axes
               for t in descr.inputs[1:])


def output_halo(descr: Any) -> dict[str, int]:
    """Per referenced input axis id, in input voxels, the largest part of a tile whose output is unreliable:
    the halo an output declares (in its own voxels) plus what a negative size offset already took."""
    from bioimageio.spec.model import v0_5

    scales = {(t.id, a.id): getattr(a, "scale", 1.0) for t in descr.inputs for a in t.axes}
    halos: dict[str, int] = {}
    for output in descr.outputs:
        for axis in output.axes:
            ref = getattr(axis, "size", None)
            if not isinstance(ref, v0_5.SizeReference):
                continue
            reach = (getattr(axis, "halo", 0) - ref.offset / 2) * axis.scale / scales.get((ref.tensor_id, ref.axis_id), 1.0)
            if reach > 0:
                halos[str(ref.axis_id)] = max(halos.get(str(ref.axis_id), 0), math.ceil(reach))
    return halos


def package_halo(descr: Any) -> dict[str, int]:
    """The halo to tile with, per input axis id: the declared ones, and for a gvtnet-zoo package z's too.

    gvtnet-zoo packages declare no z halo (it would make every input thicker than twice it) but record
    the receptive field of every axis in config.gvtnet_zoo.halo; packages written before that record
    only y and x, so z's is computed from the packaged spec (gvtnet-zoo's own code, not the package's).
    """
    halos = output_halo(descr)
    config = getattr(getattr(descr, "config", None), "gvtnet_zoo", None)
    if not isinstance(config, dict):
        return halos
    recorded = {str(a): int(h) for a, h in (config.get("halo") or {}).items()}
    if "z" not in recorded and isinstance(config.get("spec"), dict):
        from ..config import Spec
        from ..models.halo import spec_halo

        spec = Spec.model_validate(config["spec"])
        if spec.model.input_dims == 3:
            recorded = spec_halo(spec)
    for axis, h in recorded.items():
        halos[axis] = max(halos.get(axis, 0), h)
    return halos


def default_tile(descr: Any, halo: dict[str, int], preferred: dict[str, int]) -> dict[str, int]:
    """``preferred`` sizes, each grown to at least four halos plus one step so that most of a tile is kept."""
    from bioimageio.spec.model import v0_5

    steps = {str(a.id): a.size.step for t in descr.inputs for a in t.axes
             if a.type == "space" and isinstance(a.size, v0_5.ParameterizedSize)}
    return {axis: max(size, 4 * halo.get(axis, 0) + steps.get(axis, 1)) for axis, size in preferred.items()}
