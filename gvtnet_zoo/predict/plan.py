"""The tile plan of a streamed prediction: which input region each tile reads and which output region it writes.

Per tiled axis, *cores* of C voxels partition the image padded to a valid size (C a multiple of the
network's down-sampling step); each tile is a window of the valid tile length L >= C + 2 halo holding its
core and a halo on both sides (or the image border), starting on the step grid, so every core voxel sees
what it sees in the whole image. Outputs are written core by core: cores map to output chunks, so no two
tiles write one chunk. Axes the outputs drop (a projection's z) stay whole in every tile.

The plan is plain data (JSON), the same for every executor; a resumed run checks it is unchanged.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import UserError
from .sizes import valid_size
from .tiling import grid_step, valid_tile


@dataclass(frozen=True)
class AxisPlan:
    axis: str  # input axis id ('z', 'y', 'x')
    size: int  # the image's size
    padded: int  # valid size the image is mirrored up to
    tile: int  # every tile's length (input voxels)
    core: int  # core length; the last core may be shorter
    tiled: bool  # False: the axis stays whole (one tile)

    def windows(self) -> list[tuple[int, int, int]]:
        """(core start, core stop, tile start) per tile along this axis."""
        if not self.tiled or self.tile >= self.padded:
            return [(0, self.padded, 0)]
        halo = (self.tile - self.core) // 2
        return [(c, min(c + self.core, self.padded), min(max(0, c - halo), self.padded - self.tile))
                for c in range(0, self.padded, self.core)]


@dataclass(frozen=True)
class OutputAxis:
    axis: str  # output axis id
    source: str | None  # the input axis it is sized by (None: not tiled, whole)
    ratio: float  # output voxels per input voxel
    offset: int
    size: int  # the whole output's size along it


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
        return [Tile(i, {a.axis: (t0, t0 + min(a.tile, a.padded)) for a, (_, _, t0) in zip(self.axes, combo)},
                     {a.axis: (c0, c1) for a, (c0, c1, _) in zip(self.axes, combo)})
                for i, combo in enumerate(combos)]

    def output_region(self, output_id: str, tile: Tile, produced: tuple[int, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
        """(where in the tile's output, where in the whole output) of the tile's core, per output axis;
        ``produced`` is the shape the network gave for the tile."""
        local, place = [], []
        for axis, length in zip(self.outputs[output_id], produced):
            if axis.source is None:
                local.append(slice(None))
                place.append(slice(0, min(length, axis.size)))
                continue
            (c0, c1), (t0, _) = tile.cores[axis.source], tile.read[axis.source]
            start, stop = round(c0 * axis.ratio), min(round(c1 * axis.ratio), axis.size)
            origin = round(t0 * axis.ratio)
            if stop - origin > length:
                raise UserError(f"the model's output along {axis.axis} ({length} voxels for a tile of "
                                f"{tile.read[axis.source][1] - t0}) is too short for its core; give a larger --halo")
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
    """The plan for a format 0.5, single-input ``descr`` on an image of ``sizes`` (input axis id -> size).

    ``tile``: wanted tile length per axis (axes not named stay whole); ``halo``: per axis, in input voxels.
    """
    from bioimageio.spec.model import v0_5

    (tensor,) = descr.inputs
    kept = {str(ref.axis_id) for output in descr.outputs for axis in output.axes
            if isinstance(ref := getattr(axis, "size", None), v0_5.SizeReference) and ref.tensor_id == tensor.id}
    axes = []
    for axis in tensor.axes:
        if axis.type != "space":
            continue
        name, size = str(axis.id), sizes[str(axis.id)]
        padded, step = valid_size(axis, size), grid_step(axis)
        tiled = name in kept and isinstance(axis.size, (v0_5.ParameterizedSize, int))
        length = valid_tile(axis, tile.get(name, padded), padded) if tiled else padded
        h = math.ceil(halo.get(name, 0) / step) * step
        core = (length - 2 * h) // step * step if length < padded else padded
        if tiled and length < padded and core < step:
            fix = (f"the model's fixed size {length} leaves no room; give a smaller --halo" if isinstance(axis.size, int)
                   else f"use tiles of at least {2 * h + step}")
            raise UserError(f"--tile {length} along {name} leaves no core between the halos ({h} each side); {fix}")
        axes.append(AxisPlan(name, size, padded, length, core, tiled and length < padded))
    scales = {str(a.id): getattr(a, "scale", 1.0) for a in tensor.axes}
    outputs = {}
    for output in descr.outputs:
        out_axes = []
        for axis in output.axes:
            ref = getattr(axis, "size", None)
            if isinstance(ref, v0_5.SizeReference) and ref.tensor_id == tensor.id and axis.type == "space":
                ratio = scales[str(ref.axis_id)] / axis.scale
                size = math.floor(sizes[str(ref.axis_id)] * ratio) + ref.offset
                out_axes.append(OutputAxis(str(axis.id), str(ref.axis_id), ratio, ref.offset, size))
            else:
                if axis.type not in ("batch", "channel"):
                    raise UserError(f"the model's output axis {axis.id} is not sized by its input; "
                                    "predict this model without --out-format ome-zarr / --dask")
                out_axes.append(OutputAxis(str(axis.id), None, 1.0, 0, len(axis.channel_names) if axis.type == "channel" else 1))
        outputs[str(output.id)] = out_axes
    return TilePlan(axes, outputs)
