"""Training images larger than memory: OME-Zarr / Zarr volumes read patch by patch.

A ``LazyImage`` looks like the arrays the patch sampler crops from (``shape``, ``ndim``, ``size``,
slicing gives float32 numpy), with singleton t and c axes dropped as ``read_image`` drops them. Its
normalization is the same per-image percentile or z-score as in memory, from exact statistics of one
streamed pass over the volume, which also refuses NaN and Inf (data/streamed_stats.py).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import UserError, refuse_non_finite
from .normalization import EPS
from .streamed_stats import Moments, integer_low, quantiles

PREVIEW_PATCHES = 4  # validation images of Zarr data: a central crop of this many patches per axis
BLOCK_VOXELS = 1 << 24  # statistics passes read blocks of at most this many voxels (64 MiB as float32)


def block_shape(shape: tuple[int, ...], chunks: tuple[int, ...] | None, budget: int | None = None) -> tuple[int, ...]:
    """Blocks that tile ``shape``: whole chunks along every axis, at most ``budget`` voxels (BLOCK_VOXELS) unless
    one chunk is larger. The axis with the most chunks per block is halved first."""
    budget = budget or BLOCK_VOXELS
    grain = list(chunks or (1,) * len(shape))
    block = list(shape)
    while math.prod(block) > budget:
        k = max(range(len(block)), key=lambda i: block[i] / grain[i])
        if block[k] <= grain[k]:
            break
        block[k] = max(grain[k], block[k] // 2 // grain[k] * grain[k])
    return tuple(block)


class LazyImage:
    """A Zarr array as float32 (Z, Y, X) or (Y, X), read where sliced; normalized as (x - offset) / divisor."""

    def __init__(self, source: Any, offset: float = 0.0, divisor: float = 1.0) -> None:
        self.source, self.offset, self.divisor = source, offset, divisor
        extra = [(a, s) for a, s in zip(source.axes, source.shape) if a in "tc" and s != 1]
        if extra:
            raise UserError(f"{source.name}: a training volume has one time point and one channel; it has "
                            f"{', '.join(f'{a} of {s}' for a, s in extra)}")
        self.axes = "".join(a for a in source.axes if a not in "tc")
        self.shape = tuple(s for a, s in zip(source.axes, source.shape) if a not in "tc")
        self._array: Any = None
        self._statistics: dict[tuple, tuple[float, float]] = {}

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers open the store themselves
        return {**self.__dict__, "_array": None}

    def __getitem__(self, window: tuple[slice, ...]) -> np.ndarray:
        if self._array is None:
            self._array = self.source.open()
        window = tuple(window) + (slice(None),) * (self.ndim - len(window))
        index, spatial = [], iter(window)
        for axis in self.source.axes:
            index.append(0 if axis in "tc" else next(spatial))
        block = np.asarray(self._array[tuple(index)], dtype=np.float32)
        if self.offset == 0.0 and self.divisor == 1.0:
            return block
        return ((block - np.float32(self.offset)) / np.float32(self.divisor)).astype(np.float32)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        block = self[tuple(slice(None) for _ in self.shape)]
        return block if dtype is None else block.astype(dtype)

    def _blocks(self) -> Iterator[np.ndarray]:
        chunks = tuple(self.source.chunks[self.source.axes.index(a)] for a in self.axes) if self.source.chunks else None
        block = block_shape(self.shape, chunks)
        for corner in itertools.product(*[range(0, n, b) for n, b in zip(self.shape, block)]):
            yield self[tuple(slice(c, c + b) for c, b in zip(corner, block))]

    def normalized(self, method: str, percentiles: tuple[float, float]) -> "LazyImage":
        """The same image, normalized as data/normalization.normalize would normalize it whole."""
        offset, divisor = self.measure(method, percentiles)
        return LazyImage(self.source, offset, divisor)

    def measure(self, method: str, percentiles: tuple[float, float]) -> tuple[float, float]:
        """(offset, divisor) of the normalization, from one streamed pass (more for float quantiles); NaN and
        Inf refused with the file named."""
        key = (method, tuple(percentiles))
        if key in self._statistics:
            return self._statistics[key]
        moments = Moments()
        for block in self._blocks():
            refuse_non_finite(block, str(self.source.path))
            moments.add(block)
        if method == "zscore":
            result = (moments.mean, float(np.sqrt(moments.var)) + EPS)
        elif method == "percentile":
            low_q, high_q = percentiles[0] / 100, percentiles[1] / 100
            found = quantiles(self._blocks, [low_q, high_q], moments, integer_low(self.source.dtype))
            result = (found[low_q], found[high_q] - found[low_q] + EPS)
        else:
            raise ValueError(f"unknown normalization {method!r}")
        self._statistics[key] = result
        return result

    def preview(self, patch: tuple[int, ...]) -> np.ndarray:
        """A central crop of up to PREVIEW_PATCHES patches per axis, in memory (validation metrics, samples)."""
        window = []
        for size, p in zip(self.shape, list(patch)[-self.ndim:]):
            length = min(size, PREVIEW_PATCHES * p)
            start = (size - length) // 2
            window.append(slice(start, start + length))
        return self[tuple(window)]


def open_lazy(path: Path) -> LazyImage:
    """An OME-Zarr image (full resolution) or Zarr array as a training image."""
    from ..image_io.volumes import open_volume

    return LazyImage(open_volume(path))
