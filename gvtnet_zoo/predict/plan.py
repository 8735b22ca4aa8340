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
from .sizes import Border, border_of, fixed_grid, input_axis_of, output_length, padding, valid_size

Window = tuple[int, int, int, int]  # core start, core stop, tile start, tile stop (input voxels)


def axis_windows(size: int, length: int, halo: int, step: int, axis: str = "", image: Optional[int] = None,
                 asked: Optional[int] = None) -> list[Window]:
    """Cores of ``length - 2 halo`` (rounded down to ``step``) covering ``size``, each inside a tile of ``length``
    that starts on the step grid, widened by the halo where the image allows. One tile if ``length >= size``.
    For messages: ``image``, the image's own size (``size`` may be padded); ``asked``, the tile the user gave."""
    if length >= size:
        return [(0, size, 0, size)]
    core = (length - 2 * halo) // step * step
    if core < step:
        smallest, image = 2 * halo + step, image or size
        given = f"--tile {asked if asked is not None else length} along {axis}"
        if smallest >= image:  # no tile that leaves a core fits in the image: never name a size it cannot have
            raise UserError(f"{given} leaves no core between the halos ({halo} each side), and the image's {image} "
                            f"voxels along {axis} are fewer than the {smallest} a tile needs; leave {axis} whole "
                            f"(give a tile of at least {image} along {axis}), or a smaller --halo")
        raise UserError(f"{given} leaves no core between the halos ({halo} each side); "
                        f"use tiles of at least {smallest}, or a smaller --halo")
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
    before: int = 0  # padded voxels before the image (the original GVTNets' centred padding); the rest after

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
    position: tuple[int, ...] = ()  # the window's index along each of the plan's axes


@dataclass(frozen=True)
class TilePlan:
    axes: list[AxisPlan]
    outputs: dict[str, list[OutputAxis]]  # output id -> its axes, in order
    border: Border = Border()  # how the image is padded up to the plan's valid sizes

    def tiles(self) -> list[Tile]:
        windows = [a.windows() for a in self.axes]
        positions = itertools.product(*[range(len(w)) for w in windows])
        return [Tile(i, {a.axis: w[k][2:] for a, w, k in zip(self.axes, windows, position)},
                     {a.axis: w[k][:2] for a, w, k in zip(self.axes, windows, position)}, position)
                for i, position in enumerate(positions)]

    def write_waves(self, tiles: list[Tile]) -> list[list[Tile]]:
        """``tiles`` in waves within which no two tiles write to one chunk of any output (``chunks``): writers
        running at once (Dask workers) must never share a chunk, or one's voxels are lost. One wave where the
        cores' outputs are whole chunks; where a size offset shifts them off the chunk grid, tiles whose windows
        lie a stride apart along some axis (2 for a shift under a chunk) share none."""
        strides = []
        for plan_axis in self.axes:
            stride = 1
            for output_id, axes in self.outputs.items():
                for axis, chunk in zip(axes, self.chunks(output_id)):
                    if axis.source != plan_axis.axis:
                        continue
                    owned = [self._owned(axis, c0, c1) for c0, c1, _, _ in plan_axis.windows()]
                    touched = [(start // chunk, (stop - 1) // chunk) for start, stop in owned if stop > start]
                    # owned ranges increase along the axis, so a stride that separates neighbours separates all
                    while any(touched[i][1] >= touched[i + stride][0] for i in range(len(touched) - stride)):
                        stride += 1
            strides.append(stride)
        waves: dict[tuple[int, ...], list[Tile]] = {}
        for tile in tiles:
            waves.setdefault(tuple(p % s for p, s in zip(tile.position, strides)), []).append(tile)
        return list(waves.values())

    def _owned(self, axis: OutputAxis, c0: int, c1: int) -> tuple[int, int]:
        """[start, stop) of the whole output along ``axis`` that the core [c0, c1) (padded grid) of its source axis
        owns: the outputs whose centres lie in it (see ``output_region``), less the padding's."""
        source = next(a for a in self.axes if a.axis == axis.source)
        shift, before = axis.offset / 2, round(source.before * axis.ratio)
        start = 0 if c0 == 0 else min(max(0, round(c0 * axis.ratio + shift) - before), axis.size)
        stop = axis.size if c1 == source.padded else min(max(0, round(c1 * axis.ratio + shift) - before), axis.size)
        return start, max(start, stop)

    def _before(self, axis: OutputAxis) -> int:
        """Output voxels of the padding before the image along ``axis``."""
        return round(next(a.before for a in self.axes if a.axis == axis.source) * axis.ratio)

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

        Output voxel J of the whole padded image and voxel j of a tile starting at t0 are one place when
        J = t0 * ratio + j (a size offset trims or widens both alike); the image's output starts after the
        padding's. A core [c0, c1) owns the outputs whose
        centres lie in it: [c0 * ratio + offset / 2, c1 * ratio + offset / 2), so a valid-convolution model
        (negative offset) needs |offset| / 2 output voxels of halo on each side, as its declared halo says."""
        local, place = [], []
        for axis, length in zip(self.outputs[output_id], produced):
            size = length if axis.size < 0 else axis.size
            if axis.source is None:
                local.append(slice(0, min(length, size)))
                place.append(slice(0, min(length, size)))
                continue
            (start, stop), (t0, t1) = self._owned(axis, *tile.cores[axis.source]), tile.read[axis.source]
            origin = round(t0 * axis.ratio) - self._before(axis)
            if start < max(start, stop) and (start < origin or stop - origin > length):
                raise UserError(f"the model's output along {axis.axis} ({length} voxels for a tile of {t1 - t0}) does "
                                f"not cover the tile's core; give a larger --halo along {axis.source}")
            local.append(slice(start - origin, stop - origin))
            place.append(slice(start, stop))
        return tuple(local), tuple(place)

    def chunks(self, output_id: str) -> tuple[int, ...]:
        """Output chunk lengths: one core per chunk along tiled axes, whole along the others."""
        cores = {a.axis: a.core for a in self.axes}
        return tuple(max(1, min(a.size, round(cores[a.source] * a.ratio))) if a.source else a.size
                     for a in self.outputs[output_id])

    def to_json(self) -> dict[str, Any]:
        return {"axes": [asdict(a) for a in self.axes], "border": asdict(self.border),
                "outputs": {k: [asdict(a) for a in v] for k, v in self.outputs.items()}}


def plan_tiles(descr: Any, sizes: dict[str, int], tile: dict[str, int], halo: dict[str, int],
               batch: int = 1) -> TilePlan:
    """The plan for a format 0.5 ``descr`` on an image of ``sizes`` (first input's space axis id -> size); other
    inputs share its grid. ``tile``: wanted tile length per axis (axes not named stay whole); ``halo``: per axis,
    in input voxels; ``batch``: the images in one sample (an in-memory time series; streamed: one at a time)."""
    from bioimageio.spec.model import v0_5

    tensor = descr.inputs[0]
    border = border_of(descr)
    kept_ids = {source[0] for output in descr.outputs for axis in output.axes
                if (source := input_axis_of(axis, tensor)) is not None}
    axes = []
    for axis in tensor.axes:
        if axis.type != "space":
            continue
        name, size = str(axis.id), sizes[str(axis.id)]
        padded, step = valid_size(axis, size, border.step_only), grid_step(axis)
        tiled = name in kept_ids and isinstance(axis.size, (v0_5.ParameterizedSize, int))
        asked = tile.get(name, padded)
        # a tile of at least the image's size leaves the axis whole (rounding it down to the grid would cut it)
        length = valid_tile(axis, asked, padded) if tiled and (asked < size or isinstance(axis.size, int)) else padded
        h = math.ceil(halo.get(name, 0) / step) * step
        try:
            windows = axis_windows(padded, length, h, step, name, size, asked) if tiled else [(0, padded, 0, padded)]
        except UserError:
            if not isinstance(axis.size, int):
                raise
            raise UserError(f"the model's fixed size {length} along {name} leaves no core between halos of {h} "
                            "each side; give a smaller --halo") from None
        core = windows[0][1] - windows[0][0]
        axes.append(AxisPlan(name, size, padded, length, core, tiled and length < padded, h, step,
                             padding(descr, axis, size)[0]))
    return TilePlan(axes, {str(o.id): _output_axes(o, tensor, sizes, batch) for o in descr.outputs}, border)


def _output_axes(output: Any, tensor: Any, sizes: dict[str, int], batch: int) -> list[OutputAxis]:
    axes = []
    for axis in output.axes:
        source = input_axis_of(axis, tensor)
        if source is not None:
            name, ratio, offset = source
            axes.append(OutputAxis(str(axis.id), name, ratio, offset, output_length(sizes[name], ratio, offset, name)))
        elif axis.type == "channel":
            axes.append(OutputAxis(str(axis.id), None, 1.0, 0, len(axis.channel_names)))
        else:
            size: Optional[int] = axis.size if isinstance(getattr(axis, "size", None), int) else None
            axes.append(OutputAxis(str(axis.id), None, 1.0, 0, batch if axis.type == "batch" else (size or -1)))
    return axes
