"""Exact streamed quantiles in a bounded number of passes, whatever the ties (issue 26, item 2)."""

from __future__ import annotations

import numpy as np
import pytest

from gvtnet_zoo.data.streamed_stats import Moments, integer_low, quantiles

QS = [0.0, 0.001, 0.003, 0.35, 0.5, 0.998, 0.999, 1.0]


@pytest.mark.parametrize("dtype,max_passes", [(np.float32, 2), (np.float64, 4), (np.int32, 2), (np.uint32, 2),
                                              (np.float16, 1)])
def test_a_zero_background_gives_numpys_quantiles_in_bounded_passes(dtype: type, max_passes: int) -> None:
    rng = np.random.default_rng(1)
    volume = np.abs(rng.standard_normal((20, 480, 480)) * 50).astype(dtype)
    volume[:, :, :440] = 0  # 4.2 M zeros: more ties at the low quantiles' ranks than any histogram bin can split
    volume[0, 0, 0] = 100  # a fill value's ties as well
    passes = []

    def blocks():
        passes.append(1)
        return iter(volume)

    moments = Moments()
    for block in volume:
        moments.add(block)
    found = quantiles(blocks, QS, moments, integer_low(volume.dtype))
    assert len(passes) <= max_passes
    expected = np.quantile(volume.astype(np.float64), QS)
    np.testing.assert_array_equal([found[q] for q in QS], expected)
