"""Exact statistics of data read block by block: mean and variance from per-block moments (Chan et al.),
'linear' quantiles (as numpy and bioimageio.core) from the order statistics at ranks floor(q (n-1)) and the
next. Integer data up to 16 bits count every value (one pass); other data narrow a histogram around those
ranks pass by pass until few enough values remain to sort (usually three passes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

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


def quantiles(passes: Blocks, qs: Iterable[float], moments: Moments, lowest_integer: int | None) -> dict[float, float]:
    """Exact 'linear' quantiles of all values the passes yield; ``lowest_integer``: the data are integers from it."""
    result = {}
    for q in qs:
        below, above, fraction = _ranks(q, moments.count)
        if lowest_integer is not None:
            a, b = _select_integer(passes, [below, above], lowest_integer)
        else:
            a = _select_float(passes, below, moments.low, moments.high)
            b = a if above == below else _select_float(passes, above, moments.low, moments.high)
        result[q] = a + fraction * (b - a)
    return result


def integer_low(dtype: np.dtype | str) -> int | None:
    """The lowest value of an integer type of up to 16 bits, whose values can all be counted; else None."""
    dtype = np.dtype(dtype)
    return int(np.iinfo(dtype).min) if dtype.kind in "ui" and dtype.itemsize <= 2 else None
