"""Statistics streamed block by block equal bioimageio.core's on the whole array."""

from __future__ import annotations

import numpy as np
import pytest
from bioimageio.core import Tensor
from bioimageio.core.axis import AxisId
from bioimageio.core.common import MemberId
from bioimageio.core.sample import Sample
from bioimageio.core.stat_measures import SampleMean, SampleQuantile, SampleStd

from gvtnet_zoo.predict import stats

DIMS = ["batch", "channel", "y", "x"]


def _passes(array: np.ndarray, rows: int):
    """Blocks of ``rows`` along y, as a tile plan's cores would give them."""
    def run():
        for start in range(0, array.shape[2], rows):
            yield array[:, :, start:start + rows]
    return run


def _measures(axes: tuple[str, ...] | None) -> list:
    member = MemberId("input")
    dims = None if axes is None else tuple(AxisId(a) for a in axes)
    # clip's percentiles are inverted_cdf in bioimageio.core, scale_range's linear (issue 26, item 3)
    return [SampleQuantile(member_id=member, q=q, axes=dims, method=method) for q in (0.0, 0.01, 0.35, 0.5, 0.998, 1.0)
            for method in ("linear", "inverted_cdf")] + [
        SampleMean(member_id=member, axes=dims), SampleStd(member_id=member, axes=dims)]


def _core(array: np.ndarray, measures: list) -> dict:
    sample = Sample(members={MemberId("input"): Tensor.from_numpy(array, dims=DIMS)}, stat={}, id="s")
    return {m: m.compute(sample) for m in measures}


@pytest.mark.parametrize("kind", ["uint16", "float-with-ties-and-outliers"])
def test_quantiles_mean_and_std_equal_the_whole_array(kind: str) -> None:
    rng = np.random.default_rng(0)
    if kind == "uint16":
        array = rng.integers(0, 4000, (1, 1, 97, 61)).astype(np.float32)
        dtype = "uint16"
    else:  # a narrow bulk, exact ties and far outliers: still two radix passes
        array = rng.normal(100.0, 1e-3, (1, 1, 97, 61)).astype(np.float32)
        array[0, 0, ::7, ::5] = 100.0
        array[0, 0, 3, 4], array[0, 0, 50, 2] = -1e6, 3e7
        dtype = "float32"
    measures = _measures(None)
    found = stats.streamed_statistics(measures, _passes(array, 10), DIMS, dtype)
    expected = _core(array, measures)
    for measure in measures:
        want = float(expected[measure].item()) if hasattr(expected[measure], "item") else float(expected[measure])
        tolerance = 0 if measure.name == "quantile" else 1e-6 * abs(want) + 1e-9
        assert abs(found[measure] - want) <= tolerance, (measure, found[measure], want)


def test_per_channel_statistics_are_tensors_along_the_channel() -> None:
    rng = np.random.default_rng(1)
    array = np.stack([rng.integers(0, 100, (40, 30)), rng.integers(1000, 5000, (40, 30))])[None].astype(np.float32)
    measures = _measures(("y", "x"))
    found = stats.streamed_statistics(measures, _passes(array, 7), DIMS, "uint16")
    expected = _core(array, measures)
    for measure in measures:
        np.testing.assert_allclose(found[measure].data.to_numpy(), expected[measure].data.to_numpy(), rtol=1e-6)
        assert [str(d) for d in found[measure].dims] == [str(d) for d in expected[measure].dims] == ["batch", "channel"]
