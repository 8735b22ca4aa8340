"""The statistics a package's preprocessing needs (mean, std, var, quantiles), computed exactly over a volume
read block by block (data/streamed_stats.py), so that tiles of a lazy volume are normalized as the whole
image in memory would be.
"""

from __future__ import annotations

import math
import time as clock
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ..data.streamed_stats import Blocks, Moments, integer_low, quantiles
from ..errors import UserError
from .tile_step import StreamJob, read_tile, stat_measures


def streamed_statistics(measures: Iterable[Any], passes: Blocks, dims: list[str], source_dtype: str) -> dict[Any, Any]:
    """bioimageio.core sample measures (on the one input) -> values, from passes over blocks with ``dims``
    (the input's axis ids; blocks are float32 in those axes). Measures over all axes give numbers; measures
    keeping one axis (per channel) give a Tensor along it."""
    from bioimageio.core import Tensor

    measures = list(measures)
    kept_axes = {_kept(measure, dims) for measure in measures}
    values: dict[Any, Any] = {}
    for axis in kept_axes:
        sizes: list[int] = []

        def per_part(part: int | None, axis: str | None = axis) -> Blocks:
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
            by_method: dict[str, set[float]] = {}
            for m in measures:
                if m.name == "quantile" and _kept(m, dims) == axis:
                    by_method.setdefault(_method(m), set()).add(m.q)
            found = {(q, method): value for method, qs in by_method.items()
                     for q, value in quantiles(blocks, qs, moments, integer_low(source_dtype), method).items()}
            results.append((moments, found))
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
    """The one axis (besides the batch) a measure keeps, e.g. per channel; None for a single number."""
    reduced = set(map(str, measure.axes)) if measure.axes is not None else set(dims)
    kept = [d for d in dims if d not in reduced and d != "batch"]
    if len(kept) > 1:
        raise UserError(f"the package's preprocessing needs {measure.name} per {', '.join(kept)}; "
                        "predict this image without --out-format ome-zarr / --dask")
    return kept[0] if kept else None


def _axis_size(passes: Blocks, position: int) -> int:
    return next(iter(passes())).shape[position]


def _method(measure: Any) -> str:
    method = str(getattr(measure, "method", "linear"))
    if method not in ("linear", "inverted_cdf"):
        raise UserError(f"the package's preprocessing needs quantiles by the {method!r} method, which gvtnet-zoo cannot "
                        "stream; predict this image without --out-format ome-zarr / --dask")
    return method


def _value(measure: Any, moments: Moments, found: dict[tuple[float, str], float]) -> float:
    if measure.name == "mean":
        return moments.mean
    if measure.name == "var":
        return moments.var
    if measure.name == "std":
        return math.sqrt(moments.var)
    if measure.name == "quantile":
        return found[(measure.q, _method(measure))]
    raise UserError(f"the package's preprocessing needs the statistic {measure.name!r}, which gvtnet-zoo cannot "
                    "stream; predict this image without --out-format ome-zarr / --dask")


def volume_statistics(job: StreamJob, descr: Any, array: Any, time: int,
               echo: Callable[[str], None] = lambda _: None) -> dict[Any, Any]:
    """The sample statistics of one time point, from passes over the plan's cores within the image as given
    (no halo, no padding: each voxel once). The first time point's passes are counted to ``echo``."""
    measures, _, _ = stat_measures(descr)
    if not measures:
        return {}
    image = {a.axis: (a.before, a.before + a.size) for a in job.plan.axes}  # the image on the padded grid
    regions = [{a: (max(start, image[a][0]), min(stop, image[a][1])) for a, (start, stop) in tile.cores.items()}
               for tile in job.plan.tiles()]
    regions = [r for r in regions if all(start < stop for start, stop in r.values())]
    complete = [0]

    def passes() -> Iterator[np.ndarray]:
        for region in regions:
            yield read_tile(job, array, region, time)
        complete[0] += 1

    started = clock.perf_counter()
    values = streamed_statistics(measures, passes, list(job.input_dims), job.source.dtype)
    if time == 0:
        echo(f"{job.source.name}: statistics in {complete[0]} pass(es) over the volume "
             f"({job.source.dtype}, {clock.perf_counter() - started:.1f} s)")
    return values
