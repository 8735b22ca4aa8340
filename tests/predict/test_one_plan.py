"""One tile plan under every executor: in memory (TIFF out), streamed (OME-Zarr out) and on Dask, the same image
in the same tiles gives the same result, for a U-Net, a GVTNet with and without global context, a model whose
output has another resolution, and a model of fixed size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr
from torch import nn

from gvtnet_zoo.cli import main

from .zoo_builders import TinyUNet, careamics_style_package, single_io_package

# float32 rounding: streamed tiles are normalized one by one and Dask workers run one thread each, so the
# last bits of a sum may differ; 1e-6 of the output's range is far below any seam or statistics error
BOUND = 1e-6


class _Upsampler(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))


def _case(name: str, tmp: Path, packages: dict[str, Path]) -> tuple[Path, np.ndarray, str, list[str]]:
    """(package, image, --tile, extra flags) of one case."""
    rng = np.random.default_rng(21)
    if name.startswith("gvtnet"):
        image = (rng.random((12, 100, 90)) * 1000).astype(np.uint16)
        return packages["3d"], image, "12,56,56", ["--global-context"] if name == "gvtnet-global" else ["--plain-tiles"]
    if name == "unet":
        torch.manual_seed(1)
        x = rng.normal(size=(1, 1, 16, 32, 32)).astype(np.float32)
        package = single_io_package(tmp, TinyUNet(3), x, size=(16, 2), halo=6, name="tiny-unet", space="zyx")
        return package, rng.normal(size=(21, 70, 61)).astype(np.float32), "16,32,32", []
    if name == "resampling":
        torch.manual_seed(2)
        x = rng.normal(size=(1, 1, 32, 32)).astype(np.float32)
        package = single_io_package(tmp, _Upsampler(), x, size=(8, 8), output_scale=0.5, halo=4, name="upsampler")
        return package, rng.normal(size=(75, 83)).astype(np.float32), "40,40", []
    package, _ = careamics_style_package(tmp, "yx", (64, 64))
    return package, rng.normal(100, 20, size=(150, 131)).astype(np.float32), "64,64", []


@pytest.mark.parametrize("name", ["unet", "gvtnet", "gvtnet-global", "resampling", "fixed"])
def test_in_memory_streamed_and_dask_predictions_are_equal(packages: dict[str, Path], tmp_path: Path, name: str) -> None:
    package, image, tile, flags = _case(name, tmp_path, packages)
    axes = "ZYX" if image.ndim == 3 else "YX"
    tifffile.imwrite(tmp_path / "img.tif", image, metadata={"axes": axes})
    runs = {"memory": [], "streamed": ["--out-format", "ome-zarr"], "dask": ["--dask", "--dask-workers", "1"]}
    results = {}
    for run, extra in runs.items():
        assert main(["predict", str(package), str(tmp_path / "img.tif"), "--out", str(tmp_path / run), "--tile", tile,
                     *flags, *extra]) == 0
        if run == "memory":
            results[run] = np.squeeze(tifffile.imread(tmp_path / run / "img.tif"))
        else:
            results[run] = np.squeeze(zarr.open_group(str(tmp_path / run / "img.pred.ome.zarr"), mode="r")["0"][:])
    scale = 2 if name == "resampling" else 1
    assert results["memory"].shape == tuple(s * scale if k >= image.ndim - 2 else s for k, s in enumerate(image.shape))
    span = float(np.ptp(results["memory"]))
    for run in ("streamed", "dask"):
        np.testing.assert_allclose(results[run], results["memory"], atol=BOUND * span, rtol=0, err_msg=run)
