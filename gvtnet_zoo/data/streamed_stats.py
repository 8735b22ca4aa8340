"""Exact statistics of data read block by block: mean and variance from per-block moments (Chan et al.),
quantiles as numpy and bioimageio.core compute them ('linear': the order statistics at ranks floor(q (n-1))
and the next, interpolated; 'inverted_cdf': the one at rank ceil(q n) - 1). Integer data up to 16 bits
count every value (one pass); other data are selected by radix: each value becomes an unsigned integer key
of its bit pattern ordered as the values, and each pass counts the next 16 bits of the keys that share the
ranks' prefix so far. Every rank is exact after itemsize / 2 passes (float32: two, float64: four), however
many values tie (a zero background, a fill value).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

Blocks = Callable[[], Iterator[np.ndarray]]  # a fresh pass over the data: blocks (C, ...) or (...)


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


def _ranks(q: float, count: int, method: str) -> tuple[int, int, float]:
    """(rank below, rank above, weight of the one above) of quantile ``q`` among ``count`` sorted values, as
    numpy's ``linear`` (interpolated) and ``inverted_cdf`` (the smallest value whose CDF reaches q) compute it."""
    if method == "inverted_cdf":
        rank = min(max(math.ceil(q * count) - 1, 0), count - 1)
        return rank, rank, 0.0
    if method != "linear":
        raise ValueError(f"quantile method {method!r}")
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


def _keys(block: np.ndarray) -> np.ndarray:
    """Unsigned integer keys that order as the values: floats by their sign-flipped bits, signed integers offset."""
    values = np.ascontiguousarray(block).ravel()
    unsigned = np.dtype(f"u{values.dtype.itemsize}")
    bits = values.view(unsigned)
    top = unsigned.type(1 << (8 * values.dtype.itemsize - 1))
    if values.dtype.kind == "f":
        return np.where(bits & top, ~bits, bits | top)
    return bits ^ top if values.dtype.kind == "i" else bits


def _value(key: int, dtype: np.dtype) -> float:
    unsigned = np.dtype(f"u{dtype.itemsize}")
    top = 1 << (8 * dtype.itemsize - 1)
    if dtype.kind == "f":
        key = key ^ top if key & top else ~key & ((1 << 8 * dtype.itemsize) - 1)
    elif dtype.kind == "i":
        key ^= top
    return float(np.array([key], unsigned).view(dtype)[0])


def _select_radix(passes: Blocks, ranks: list[int]) -> dict[int, float]:
    """The values of the given ranks (0-based, ascending), 16 bits of their keys per pass, all ranks together."""
    prefix, below = {r: 0 for r in ranks}, {r: 0 for r in ranks}
    dtype, shift = np.dtype(np.float32), None  # the blocks' type, and the lowest bit of the last pass's digit
    while shift != 0:
        counts = {p: np.zeros(1 << 16, np.int64) for p in set(prefix.values())}
        digit_at = None if shift is None else shift - 16
        for block in passes():
            if digit_at is None:  # the first pass: the keys are the blocks' own bit patterns
                dtype = block.dtype
                digit_at = 8 * dtype.itemsize - 16
            keys = _keys(block)
            digits = ((keys >> digit_at) & 0xFFFF).astype(np.int64)
            if shift is None:  # every value shares the empty prefix
                counts[0] += np.bincount(digits, minlength=1 << 16)
                continue
            high = keys >> shift
            for p in counts:
                counts[p] += np.bincount(digits[high == p], minlength=1 << 16)
        shift = digit_at
        for r in prefix:
            cumulative = np.cumsum(counts[prefix[r]])
            digit = int(np.searchsorted(cumulative, r - below[r], side="right"))
            below[r] += int(cumulative[digit - 1]) if digit else 0
            prefix[r] = (prefix[r] << 16) | digit
    return {r: _value(prefix[r], dtype) for r in prefix}


def quantiles(passes: Blocks, qs: Iterable[float], moments: Moments, lowest_integer: int | None,
              method: str = "linear") -> dict[float, float]:
    """Exact quantiles (numpy's ``method``: linear or inverted_cdf) of all values the passes yield;
    ``lowest_integer``: the data are integers from it (counted in one pass)."""
    ranks = {q: _ranks(q, moments.count, method) for q in qs}
    wanted = sorted({r for below, above, _ in ranks.values() for r in (below, above)})
    if lowest_integer is not None:
        values = dict(zip(wanted, _select_integer(passes, wanted, lowest_integer)))
    else:
        values = _select_radix(passes, wanted)
    return {q: values[below] + fraction * (values[above] - values[below]) for q, (below, above, fraction) in ranks.items()}


def integer_low(dtype: np.dtype | str) -> int | None:
    """The lowest value of an integer type of up to 16 bits, whose values can all be counted; else None."""
    dtype = np.dtype(dtype)
    return int(np.iinfo(dtype).min) if dtype.kind in "ui" and dtype.itemsize <= 2 else None
