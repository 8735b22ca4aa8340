"""The halo check: two neighbouring tiles predict their overlap twice; beyond a sufficient halo they agree.

A package's declared halo can be smaller than its network's reach (or missing), and then tiles change
the result where they meet. Neighbouring tiles read each other's core seam anyway (their halos), so comparing
the first tile with its neighbour along each tiled axis costs no extra prediction: it measures the deviation
beyond the halo at every tiled axis's seam and, where the overlap is wide enough, the halo that would remove it.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np

from .plan import Tile, TilePlan

TOLERANCE = 1e-4  # of the output's range: what tiles with a correct halo reach (float rounding is far below)


def overlap_deviation(first: np.ndarray, second: np.ndarray, first_place: slice, second_place: slice,
                      position: int, halo: int) -> tuple[float, Optional[int]]:
    """(largest difference of two neighbouring tiles' outputs in their overlap, at least ``halo`` voxels from
    both tiles' inner edges, as a fraction of their range; the smallest such distance beyond which they agree
    within TOLERANCE, None if none inside the overlap). ``first`` precedes ``second`` along axis ``position``;
    the places are their output voxels in the whole output along that axis."""
    low, high = second_place.start, first_place.stop
    if high <= low:
        return 0.0, halo
    a = np.take(first, np.arange(low - first_place.start, high - first_place.start), axis=position)
    b = np.take(second, np.arange(low - second_place.start, high - second_place.start), axis=position)
    span = max(float(np.ptp(first)), float(np.ptp(second)), 1e-12)
    others = tuple(i for i in range(a.ndim) if i != position)
    profile = np.abs(a.astype(np.float64) - b).max(axis=others) / span
    distance = np.minimum(np.arange(high - low), np.arange(high - low)[::-1])  # from the second's start, the first's end
    beyond = profile[distance >= halo]
    deviation = float(beyond.max()) if beyond.size else 0.0
    needed = next((d for d in range(int(distance.max()) + 1) if profile[distance >= d].max() <= TOLERANCE), None)
    return deviation, needed


class SeamCheck:
    """The halo check of a plan's tiles: the first tile against its neighbour along every tiled axis, wherever
    each executor runs them. ``offer`` every tile's first output (whole tile, before its core is cut); tiles
    the check does not need are ignored, so nothing is predicted or kept beyond a few tiles."""

    def __init__(self, plan: TilePlan, name: str, warn: Callable[[str], None]) -> None:
        self.plan, self.name, self.warn = plan, name, warn
        self.output_id = next(iter(plan.outputs))
        self.axis_of = {index: axis for axis, index in plan.neighbours().items()}
        self.first: Optional[tuple[Tile, np.ndarray]] = None
        self.waiting: list[tuple[Tile, np.ndarray]] = []
        self.warned = False

    def wants(self, index: int) -> bool:
        return index == 0 or index in self.axis_of

    def offer(self, tile: Tile, data: np.ndarray) -> None:
        """``data``: the tile's first output as the network gave it, in the output's axes."""
        if not self.wants(tile.index):
            return
        if tile.index == 0:
            self.first = (tile, data)
            for waiting in self.waiting:
                self._compare(*waiting)
            self.waiting = []
        elif self.first is None:
            self.waiting.append((tile, data))
        else:
            self._compare(tile, data)

    def _compare(self, tile: Tile, data: np.ndarray) -> None:
        axis = self.axis_of[tile.index]
        outputs = self.plan.outputs[self.output_id]
        found = [(p, a) for p, a in enumerate(outputs) if a.source == axis]
        if not found or self.warned or self.first is None:
            return
        (position, out_axis), (first_tile, first) = found[0], self.first
        planned = next(a for a in self.plan.axes if a.axis == axis)
        places = [slice(round(t.read[axis][0] * out_axis.ratio), round(t.read[axis][0] * out_axis.ratio) + d.shape[position])
                  for t, d in ((first_tile, first), (tile, data))]
        halo = max(0, round(planned.halo * out_axis.ratio + out_axis.offset / 2))
        deviation, needed = overlap_deviation(first, data, places[0], places[1], position, halo)
        if deviation <= TOLERANCE:
            return
        self.warned = True
        if needed is not None and needed > halo:
            wider = math.ceil((needed - out_axis.offset / 2) / out_axis.ratio)
            fix = f"a halo of {wider} along {axis} would remove it (--halo; it also needs tiles large enough)"
        else:
            fix = (f"give a larger --halo along {axis} (with tiles large enough); a network that sees its whole "
                   "tile (an attention network) needs --whole")  # gvtnet-zoo's GVTNets never get here
        self.warn(f"warning: {self.name}: neighbouring tiles differ by up to {deviation:.2g} of the output's range "
                  f"at their seam along {axis}, beyond the halo of {planned.halo}; {fix}")


class PlainGVTNetTiles:
    """In place of the seam check for a GVTNet's plain tiles: their outputs differ from the whole image's
    everywhere, neighbours alike, so a seam says nothing; ``warning`` (tile_mode.plain_tiles_warning) is given
    once, when the plan has several tiles (one tile is the whole image)."""

    def __init__(self, plan: TilePlan, warning: str, warn: Callable[[str], None]) -> None:
        if len(plan.tiles()) > 1:
            warn(warning)

    def wants(self, index: int) -> bool:
        return False

    def offer(self, tile: Tile, data: np.ndarray) -> None:
        """Nothing to compare."""


def tile_check(plan: TilePlan, name: str, warn: Callable[[str], None],
               plain_warning: Optional[str] = None) -> SeamCheck | PlainGVTNetTiles:
    """The seam check of a local network's tiles, or the plain-tiles warning of a GVTNet's (``plain_warning``)."""
    return PlainGVTNetTiles(plan, plain_warning, warn) if plain_warning else SeamCheck(plan, name, warn)
