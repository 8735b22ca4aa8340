"""Shared test helpers: the shipped specs and small valid input sizes for each."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gvtnet_zoo.data.synthetic import write_synthetic
from gvtnet_zoo.export.package import package_run
from gvtnet_zoo.spec_loading import bundled_spec_names, load_spec
from gvtnet_zoo.train.trainer import train

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


PACKAGE_RUN = ["data.workers=0", "data.val_patches=2", "train.steps=3", "train.val_every=3", "train.checkpoint_every=3",
        "train.log_every=1", "data.batch_size=2"]
RUNS = {
    "2d": ("demo-gvtnet-label-free-2d", ["model.base_channels=4", "data.patch_size=[32,32]"]),
    "3d": ("demo-gvtnet-care-denoise-3d", ["model.base_channels=4", "data.patch_size=[8,32,32]"]),
}


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory, denoise_2d: Path, denoise_3d: Path) -> dict[str, Path]:
    """A tiny trained and packaged run per dimensionality (the package step runs the zoo's test_model)."""
    out = {}
    for key, (name, overrides) in RUNS.items():
        root = tmp_path_factory.mktemp(f"package{key}")
        data = denoise_2d if key == "2d" else denoise_3d
        train(load_spec(name, PACKAGE_RUN + overrides), data / "train", root / "run", val=data / "test", device="cpu")
        out[key] = package_run(root / "run", root / f"model{key}.zip", echo=lambda _: None)
    return out


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
