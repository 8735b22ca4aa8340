"""The tile plan of every tiled prediction: which input region each tile reads and which output region it writes.

Per tiled axis, *cores* of C voxels partition the image padded to a valid size (C a multiple of the
network's down-sampling step); each tile is a window of the valid tile length L >= C + 2 halo holding its
core and a halo on both sides (or the image border), starting on the step grid, so every core voxel sees
what it sees in the whole image. Each tile writes its core's output and nothing else (no blending): in
memory into an array (predict/tiled.py), streamed into a store (predict/stream.py), on Dask as tasks. Axes
the outputs drop (a projection's z) stay whole in every tile.

The plan is plain data (JSON), the same for every executor; a resumed run checks it is unchanged.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any, Optional

from ..errors import UserError
from .sizes import fixed_grid, input_axis_of, valid_size

Window = tuple[int, int, int, int]  # core start, core stop, tile start, tile stop (input voxels)


def axis_windows(size: int, length: int, halo: int, step: int, axis: str = "") -> list[Window]:
    """Cores of ``length - 2 halo`` (rounded down to ``step``) covering ``size``, each inside a tile of ``length``
    that starts on the step grid, widened by the halo where the image allows. One tile if ``length >= size``."""
    if length >= size:
        return [(0, size, 0, size)]
    core = (length - 2 * halo) // step * step
    if core < step:
        raise UserError(f"--tile {length} along {axis} leaves no core between the halos ({halo} each side); "
                        f"use tiles of at least {2 * halo + step}, or a smaller --halo")
    return [(c, min(c + core, size), start, start + length)
            for c in range(0, size, core) for start in [min(max(0, c - halo), size - length)]]


def valid_tile(axis: Any, wanted: int, size: int) -> int:
    """A valid size for ``axis`` near ``wanted``, at most ``size`` (which is itself valid); a fixed size is the tile."""
    if isinstance(axis.size, int):
        return axis.size
    low, step = axis.size.min, axis.size.step
    return min(size, max(low, low + (max(wanted, low) - low) // step * step))


def grid_step(axis: Any) -> int:
    """Tiles start on multiples of this: the down-sampling grid of a parameterized axis (sizes.fixed_grid for a
    fixed one)."""
    return fixed_grid(axis.size) if isinstance(axis.size, int) else axis.size.step


@dataclass(frozen=True)
class AxisPlan:
    axis: str  # input axis id ('z', 'y', 'x')
    size: int  # the image's size
    padded: int  # valid size the image is mirrored up to
    tile: int  # every tile's length (input voxels)
    core: int  # core length; the last core may be shorter
    tiled: bool  # False: the axis stays whole (one tile)
    halo: int = 0  # input voxels each tile reads beyond its core (rounded up to the step)
    step: int = 1

    def windows(self) -> list[Window]:
        """(core start, core stop, tile start, tile stop) per tile along this axis."""
        if not self.tiled:
            return [(0, self.padded, 0, self.padded)]
        return axis_windows(self.padded, self.tile, self.halo, self.step, self.axis)


@dataclass(frozen=True)
class OutputAxis:
    axis: str  # output axis id
    source: str | None  # the input axis it follows (None: not tiled, whole)
    ratio: float  # output voxels per input voxel
    offset: int
    size: int  # the whole output's size along it (-1: whatever the network gives, for an axis no input sizes)


@dataclass(frozen=True)
class Tile:
    index: int
    read: dict[str, tuple[int, int]]  # input axis -> [start, stop) on the padded grid
    cores: dict[str, tuple[int, int]]  # input axis -> the core [start, stop)


@dataclass(frozen=True)
class TilePlan:
    axes: list[AxisPlan]
    outputs: dict[str, list[OutputAxis]]  # output id -> its axes, in order

    def tiles(self) -> list[Tile]:
        combos = itertools.product(*[a.windows() for a in self.axes])
        return [Tile(i, {a.axis: (t0, t1) for a, (_, _, t0, t1) in zip(self.axes, combo)},
                     {a.axis: (c0, c1) for a, (c0, c1, _, _) in zip(self.axes, combo)})
                for i, combo in enumerate(combos)]

    def neighbours(self) -> dict[str, int]:
        """Per tiled axis with several tiles, the index of the first tile's neighbour along it (the halo check)."""
        counts = [len(a.windows()) for a in self.axes]
        found = {}
        for k, axis in enumerate(self.axes):
            if counts[k] > 1:
                found[axis.axis] = math.prod(counts[k + 1:])
        return found

    def output_region(self, output_id: str, tile: Tile, produced: tuple[int, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
        """(where in the tile's output, where in the whole output) of the tile's core, per output axis;
        ``produced`` is the shape the network gave for the tile.

        Output voxel J of the whole image and voxel j of a tile starting at t0 are one place when
        J = t0 * ratio + j (a size offset trims or widens both alike). A core [c0, c1) owns the outputs whose
        centres lie in it: [c0 * ratio + offset / 2, c1 * ratio + offset / 2), so a valid-convolution model
        (negative offset) needs |offset| / 2 output voxels of halo on each side, as its declared halo says."""
        sizes = {a.axis: a.padded for a in self.axes}
        local, place = [], []
        for axis, length in zip(self.outputs[output_id], produced):
            size = length if axis.size < 0 else axis.size
            if axis.source is None:
                local.append(slice(0, min(length, size)))
                place.append(slice(0, min(length, size)))
                continue
            (c0, c1), (t0, t1) = tile.cores[axis.source], tile.read[axis.source]
            shift = axis.offset / 2
            start = 0 if c0 == 0 else round(c0 * axis.ratio + shift)
            stop = size if c1 == sizes[axis.source] else min(round(c1 * axis.ratio + shift), size)
            origin = round(t0 * axis.ratio)
            if start < origin or stop - origin > length:
                raise UserError(f"the model's output along {axis.axis} ({length} voxels for a tile of {t1 - t0}) does "
                                f"not cover the tile's core; give a larger --halo along {axis.source}")
            local.append(slice(start - origin, max(start, stop) - origin))
            place.append(slice(start, max(start, stop)))
        return tuple(local), tuple(place)

    def chunks(self, output_id: str) -> tuple[int, ...]:
        """Output chunk lengths: one core per chunk along tiled axes, whole along the others."""
        cores = {a.axis: a.core for a in self.axes}
        return tuple(max(1, min(a.size, round(cores[a.source] * a.ratio))) if a.source else a.size
                     for a in self.outputs[output_id])

    def to_json(self) -> dict[str, Any]:
        return {"axes": [asdict(a) for a in self.axes],
                "outputs": {k: [asdict(a) for a in v] for k, v in self.outputs.items()}}


def plan_tiles(descr: Any, sizes: dict[str, int], tile: dict[str, int], halo: dict[str, int]) -> TilePlan:
    """The plan for a format 0.5 ``descr`` on an image of ``sizes`` (first input's axis id -> size); other inputs
    share its grid. ``tile``: wanted tile length per axis (axes not named stay whole); ``halo``: per axis, in
    input voxels."""
    from bioimageio.spec.model import v0_5

    tensor = descr.inputs[0]
    kept_ids = {source[0] for output in descr.outputs for axis in output.axes
                if (source := input_axis_of(axis, tensor)) is not None}
    axes = []
    for axis in tensor.axes:
        if axis.type != "space":
            continue
        name, size = str(axis.id), sizes[str(axis.id)]
        padded, step = valid_size(axis, size), grid_step(axis)
        tiled = name in kept_ids and isinstance(axis.size, (v0_5.ParameterizedSize, int))
        length = valid_tile(axis, tile.get(name, padded), padded) if tiled else padded
        h = math.ceil(halo.get(name, 0) / step) * step
        try:
            windows = axis_windows(padded, length, h, step, name) if tiled else [(0, padded, 0, padded)]
        except UserError:
            if not isinstance(axis.size, int):
                raise
            raise UserError(f"the model's fixed size {length} along {name} leaves no core between halos of {h} "
                            "each side; give a smaller --halo") from None
        core = windows[0][1] - windows[0][0]
        axes.append(AxisPlan(name, size, padded, length, core, tiled and length < padded, h, step))
    return TilePlan(axes, {str(o.id): _output_axes(o, tensor, sizes) for o in descr.outputs})


def _output_axes(output: Any, tensor: Any, sizes: dict[str, int]) -> list[OutputAxis]:
    axes = []
    for axis in output.axes:
        source = input_axis_of(axis, tensor)
        if source is not None:
            name, ratio, offset = source
            axes.append(OutputAxis(str(axis.id), name, ratio, offset, math.floor(sizes[name] * ratio) + offset))
        elif axis.type == "channel":
            axes.append(OutputAxis(str(axis.id), None, 1.0, 0, len(axis.channel_names)))
        else:
            size: Optional[int] = axis.size if isinstance(getattr(axis, "size", None), int) else None
            axes.append(OutputAxis(str(axis.id), None, 1.0, 0, 1 if axis.type == "batch" else (size or -1)))
    return axes
