"""Shared test helpers: the shipped specs and small valid input sizes for each."""

from __future__ import annotations

import pytest
import torch

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


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
