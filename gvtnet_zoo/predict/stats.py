"""The statistics a package's preprocessing needs (mean, std, var, quantiles), computed exactly over a volume
read block by block, so that tiles of a lazy volume are normalized as the whole image in memory would be.

Mean and variance combine per-block moments (Chan et al.). A quantile ('linear' method, as numpy and
bioimageio.core) needs the order statistics at ranks floor(q (n-1)) and the next: integer data up to
16 bits count every value (one pass, exact); other data narrow a histogram around those ranks pass by
pass until few enough values remain to sort (exact, usually three passes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ..errors import UserError

Blocks = Callable[[], Iterator[np.ndarray]]  # a fresh pass over the data: blocks (C, ...) or (...)
BINS = 4096
SORT_LIMIT = 4_000_000  # values gathered and sorted in the last pass


@dataclass
class Moments:
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    low: float = math.inf
    high: float = -math.inf

    def add(self, block: np.ndarray) -> None:
        values = block.astype(np.float64, copy=False).ravel()
        if values.size == 0:
            return
        n, mean = values.size, float(values.mean())
        m2 = float(((values - mean) ** 2).sum())
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total
        self.low, self.high = min(self.low, float(values.min())), max(self.high, float(values.max()))

    @property
    def var(self) -> float:
        return self.m2 / self.count if self.count else float("nan")


def _ranks(q: float, count: int) -> tuple[int, int, float]:
    position = q * (count - 1)
    below = math.floor(position)
    return below, min(below + 1, count - 1), position - below


def _select_integer(passes: Blocks, ranks: list[int], low: int) -> list[float]:
    counts: np.ndarray = np.zeros(0, np.int64)
    for block in passes():
        found = np.bincount((block.ravel().astype(np.int64) - low))
        if len(found) > len(counts):
            counts = np.pad(counts, (0, len(found) - len(counts)))
        counts[: len(found)] += found
    cumulative = np.cumsum(counts)
    return [float(np.searchsorted(cumulative, r, side="right") + low) for r in ranks]


def _select_float(passes: Blocks, rank: int, low: float, high: float) -> float:
    """The value of the given rank (0-based, ascending): narrow [low, high] until few values remain, then sort."""
    below = 0  # values < low (outside the current range)
    while True:
        if low == high:
            return low
        edges = np.linspace(low, high, BINS + 1)
        counts = np.zeros(BINS, np.int64)
        for block in passes():
            values = block.ravel()
            inside = values[(values >= low) & (values <= high)]
            counts += np.histogram(inside, bins=edges)[0]
        cumulative = below + np.cumsum(counts)
        index = int(np.searchsorted(cumulative, rank, side="right"))
        start = below + (int(cumulative[index - 1] - below) if index else 0)
        left, right = edges[index], edges[index + 1]
        if counts[index] <= SORT_LIMIT or np.nextafter(left, right) >= right:
            closed_right = index == BINS - 1  # np.histogram's last bin includes its right edge
            gathered = [b[(b >= left) & ((b <= right) if closed_right else (b < right))] for b in map(np.ravel, passes())]
            return float(np.sort(np.concatenate(gathered))[rank - start])
        below, low, high = start, float(left), float(np.nextafter(right, left))


def quantiles(passes: Blocks, qs: Iterable[float], moments: Moments, integer_low: int | None) -> dict[float, float]:
    """Exact 'linear' quantiles of all values the passes yield; ``integer_low``: the data are integers from it."""
    result = {}
    for q in qs:
        below, above, fraction = _ranks(q, moments.count)
        if integer_low is not None:
            a, b = _select_integer(passes, [below, above], integer_low)
        else:
            a = _select_float(passes, below, moments.low, moments.high)
            b = a if above == below else _select_float(passes, above, moments.low, moments.high)
        result[q] = a + fraction * (b - a)
    return result


def _integer_low(dtype: np.dtype) -> int | None:
    dtype = np.dtype(dtype)
    return int(np.iinfo(dtype).min) if dtype.kind in "ui" and dtype.itemsize <= 2 else None


def streamed_statistics(measures: Iterable[Any], passes: Blocks, dims: list[str], source_dtype: str) -> dict[Any, Any]:
    """bioimageio.core sample measures (on the one input) -> values, from passes over blocks with ``dims``
    (the input's axis ids; blocks are float32 in those axes). Measures over all axes give numbers; measures
    keeping one axis (per channel) give a Tensor along it."""
    from bioimageio.core import Tensor

    measures = list(measures)
    kept_axes = set()
    for measure in measures:
        reduced = set(map(str, measure.axes)) if measure.axes is not None else set(dims)
        kept = [d for d in dims if d not in reduced and d != "batch"]
        if len(kept) > 1:
            raise UserError(f"the package's preprocessing needs {measure.name} per {', '.join(kept)}; "
                            "predict this image without --out-format ome-zarr / --dask")
        kept_axes.add(kept[0] if kept else None)
    values: dict[Any, Any] = {}
    for axis in kept_axes:
        sizes: list[int] = []

        def per_part(part: int | None) -> Blocks:
            def run() -> Iterator[np.ndarray]:
                for block in passes():
                    yield block if part is None else np.take(block, part, axis=dims.index(axis))
            return run

        parts: list[int | None] = [None]
        if axis is not None:
            parts = list(range(_axis_size(passes, dims.index(axis))))
            sizes.append(len(parts))
        results = []
        for part in parts:
            blocks = per_part(part)
            moments = Moments()
            for block in blocks():
                moments.add(block)
            qs = {m.q for m in measures if m.name == "quantile" and _kept(m, dims) == axis}
            results.append((moments, quantiles(blocks, qs, moments, _integer_low(source_dtype))))
        for measure in [m for m in measures if _kept(m, dims) == axis]:
            numbers = np.array([_value(measure, moments, found) for moments, found in results], np.float64)
            if axis is None and measure.axes is None:
                values[measure] = float(numbers[0])
                continue
            # as bioimageio.core reduces: the axes not reduced stay, the batch (one sample) as a singleton
            reduced = set(map(str, measure.axes)) if measure.axes is not None else set(dims)
            left = [d for d in dims if d not in reduced]
            values[measure] = Tensor.from_numpy(numbers.reshape([len(numbers) if d == axis else 1 for d in left]), dims=left)
    return values


def _kept(measure: Any, dims: list[str]) -> str | None:
    reduced = set(map(str, measure.axes)) if measure.axes is not None else set(dims)
    kept = [d for d in dims if d not in reduced and d != "batch"]
    return kept[0] if kept else None


def _axis_size(passes: Blocks, position: int) -> int:
    return next(iter(passes())).shape[position]


def _value(measure: Any, moments: Moments, found: dict[float, float]) -> float:
    if measure.name == "mean":
        return moments.mean
    if measure.name == "var":
        return moments.var
    if measure.name == "std":
        return math.sqrt(moments.var)
    if measure.name == "quantile":
        return found[measure.q]
    raise UserError(f"the package's preprocessing needs the statistic {measure.name!r}, which gvtnet-zoo cannot "
                    "stream; predict this image without --out-format ome-zarr / --dask")
