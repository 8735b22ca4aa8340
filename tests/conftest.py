"""Shared test helpers: the shipped specs and small valid input sizes for each."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gvtnet_zoo.data.synthetic import write_synthetic
from gvtnet_zoo.spec_loading import bundled_spec_names, load_spec

PAPER_SPECS = [
    "gvtnet-label-free",
    "gvtnet-care-denoise",
    "gvtnet-flywing-projection",
    "unet-fnet-label-free",
    "unet-care-denoise",
]
ALL_SPECS = bundled_spec_names()


def valid_input(spec_name: str, multiples: tuple[int, ...], batch: int = 1, z_slices: int = 5) -> torch.Tensor:
    """A random (B, 1, *S) input whose axes are ``multiples`` times the network's step (z free for projection)."""
    spec = load_spec(spec_name)
    step = spec.model.size_step()
    shape = [m * s for m, s in zip(multiples, step)]
    if spec.model.architecture == "gvtnet_projection":
        shape[0] = z_slices
    return torch.randn(batch, 1, *shape)


@pytest.fixture(scope="session")
def denoise_2d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 training + 1 test synthetic 2D denoising pairs of 64x64."""
    return write_synthetic("denoise", tmp_path_factory.mktemp("denoise2d"), 4, 1, (64, 64), seed=0)


@pytest.fixture(scope="session")
def denoise_3d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 training + 1 test synthetic 3D denoising pairs of 8x64x64."""
    return write_synthetic("denoise", tmp_path_factory.mktemp("denoise3d"), 3, 1, (8, 64, 64), seed=1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
