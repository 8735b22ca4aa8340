"""Patch sampling is a pure function of (seed, rank, index); normalization matches the zoo's operators."""

from __future__ import annotations

import numpy as np
import torch

from gvtnet_zoo.data.normalization import EPS, normalize
from gvtnet_zoo.data.pairs import ImagePair
from gvtnet_zoo.data.patches import PatchSampler


def _pairs() -> list[ImagePair]:
    rng = np.random.default_rng(0)
    images = [rng.random((12, 40, 40)).astype(np.float32) for _ in range(3)]
    return [ImagePair(f"i{k}", image, image * 2) for k, image in enumerate(images)]


def test_item_is_a_pure_function_of_seed_rank_and_index() -> None:
    sampler = PatchSampler(_pairs(), (8, 16, 16), seed=3, flips=True, rotations=True)
    later_first = [sampler[i] for i in (5, 2)]
    again = PatchSampler(_pairs(), (8, 16, 16), seed=3, flips=True, rotations=True)
    torch.testing.assert_close(again[2], later_first[1], rtol=0, atol=0)
    torch.testing.assert_close(again[5], later_first[0], rtol=0, atol=0)
    other_rank = PatchSampler(_pairs(), (8, 16, 16), seed=3, rank=1, flips=True, rotations=True)
    assert not torch.equal(other_rank[2][0], again[2][0])


def test_augmentations_keep_source_and_target_aligned() -> None:
    sampler = PatchSampler(_pairs(), (8, 16, 16), seed=0, flips=True, rotations=True)
    for i in range(20):
        source, target = sampler[i]
        assert source.shape == target.shape == (1, 8, 16, 16)
        torch.testing.assert_close(target, source * 2)


def test_projection_targets_are_cropped_in_y_x_only() -> None:
    stack = np.random.default_rng(1).random((10, 32, 32)).astype(np.float32)
    sampler = PatchSampler([ImagePair("p", stack, stack.max(0))], (10, 16, 16), seed=0, flips=True, rotations=True)
    source, target = sampler[7]
    assert source.shape == (1, 10, 16, 16) and target.shape == (1, 16, 16)
    torch.testing.assert_close(target[0], source[0].max(0).values)


def test_foreground_bias_prefers_bright_patches() -> None:
    image = np.zeros((64, 64), np.float32)
    image[:16, :16] = 1.0
    pair = [ImagePair("spot", image, image)]
    plain = PatchSampler(pair, (16, 16), seed=0)
    biased = PatchSampler(pair, (16, 16), seed=0, foreground_bias=1.0)
    mean = lambda s: float(np.mean([s[i][1].mean() for i in range(200)]))  # noqa: E731
    assert mean(biased) > 2 * mean(plain)


def test_percentile_normalization_is_scale_range() -> None:
    image = np.arange(1000, dtype=np.float32).reshape(10, 100)
    low, high = np.percentile(image, (1, 99))
    np.testing.assert_allclose(normalize(image, "percentile", (1, 99)), (image - low) / (high - low + EPS), rtol=1e-6)


def test_zscore_normalization() -> None:
    image = np.random.default_rng(0).normal(5, 3, size=(50, 50)).astype(np.float32)
    out = normalize(image, "zscore", (0, 100))
    assert abs(float(out.mean())) < 1e-5 and abs(float(out.std()) - 1) < 1e-4
