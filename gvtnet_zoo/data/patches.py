"""Random training patches that are a pure function of (seed, rank, index): resumable and worker-safe.

Item i of a PatchSampler is always the same patch, however many DataLoader workers there are, so a
run resumed at step k draws exactly the patches an uninterrupted run would have drawn.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .pairs import ImagePair

FOREGROUND_CANDIDATES = 8


class PatchSampler(Dataset):
    """Item i -> (source (1, *patch), target (1, *patch[-out_dims:])) float32 tensors.

    Images are chosen in proportion to their number of voxels; the corner uniformly; with
    probability ``foreground_bias`` the brightest (mean target) of 8 candidate corners wins.
    Flips and 90-degree rotations act on the y-x plane of source and target alike.
    """

    def __init__(
        self,
        pairs: Sequence[ImagePair],
        patch_size: Sequence[int],
        seed: int,
        rank: int = 0,
        flips: bool = False,
        rotations: bool = False,
        foreground_bias: float = 0.0,
    ) -> None:
        self.pairs = list(pairs)
        self.patch = tuple(patch_size)
        self.seed, self.rank = seed, rank
        self.flips, self.rotations, self.foreground_bias = flips, rotations, foreground_bias
        sizes = np.array([p.source.size for p in self.pairs], dtype=np.float64)
        self.weights = sizes / sizes.sum()

    def __len__(self) -> int:
        return 2**62  # indices come from the sampler; every index is a valid patch

    def _corner(self, rng: np.random.Generator, shape: Sequence[int]) -> tuple[int, ...]:
        return tuple(int(rng.integers(0, s - p + 1)) for s, p in zip(shape, self.patch))

    def _crop(self, pair: ImagePair, corner: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        window = tuple(slice(c, c + p) for c, p in zip(corner, self.patch))
        out_dims = pair.target.ndim
        return pair.source[window], pair.target[window[len(window) - out_dims:]]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.rank, index])
        pair = self.pairs[int(rng.choice(len(self.pairs), p=self.weights))]
        source, target = self._crop(pair, self._corner(rng, pair.source.shape))
        if self.foreground_bias and rng.random() < self.foreground_bias:
            candidates = [self._crop(pair, self._corner(rng, pair.source.shape)) for _ in range(FOREGROUND_CANDIDATES)]
            source, target = max(candidates, key=lambda c: float(c[1].mean()))
        if self.flips:
            for axis in (-1, -2):
                if rng.random() < 0.5:
                    source, target = np.flip(source, axis), np.flip(target, axis)
        if self.rotations:
            k = int(rng.integers(0, 4))
            source, target = np.rot90(source, k, axes=(-2, -1)), np.rot90(target, k, axes=(-2, -1))
        return (torch.from_numpy(np.ascontiguousarray(source)[None]),
                torch.from_numpy(np.ascontiguousarray(target)[None]))
