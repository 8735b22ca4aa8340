"""The halo check: two neighbouring tiles predict their overlap twice; beyond a sufficient halo they agree.

A package's declared halo can be smaller than its network's reach (or missing), and then tiles change
the result where they meet. The first two tiles of an image overlap anyway, so comparing their outputs
there costs nothing extra: it measures the deviation beyond the halo and the halo that would remove it.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

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
