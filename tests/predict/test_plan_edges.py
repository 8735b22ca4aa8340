"""Edges of the tile plan: statistics of the image as given, size offsets of valid-convolution models, and the
seam check along every tiled axis."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr
from torch import nn

from gvtnet_zoo.cli import main

from .zoo_builders import single_io_package


def _identity() -> nn.Conv2d:
    net = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        net.weight.fill_(1.0)
        net.bias.zero_()
    return net.eval()


def _run(package: Path, image: np.ndarray, tmp: Path, name: str, *flags: str) -> np.ndarray:
    tifffile.imwrite(tmp / f"{name}.tif", image.astype(np.float32), metadata={"axes": "ZYX"[3 - image.ndim:]})
    assert main(["predict", str(package), str(tmp / f"{name}.tif"), "--out", str(tmp / name), *flags]) == 0
    if "ome-zarr" in flags:
        return np.squeeze(zarr.open_group(str(tmp / name / f"{name}.pred.ome.zarr"), mode="r")["0"][:])
    return np.squeeze(tifffile.imread(tmp / name / f"{name}.tif"))


@pytest.mark.parametrize("flags", [["--whole"], ["--tile", "64,64"], ["--tile", "64,64", "--out-format", "ome-zarr"]])
def test_percentiles_come_from_the_image_as_given_not_its_padding(tmp_path: Path, flags: list[str]) -> None:
    """An image of 70 x 70 for a model of multiples of 32 is mirrored up to 96 x 96; the percentiles that normalize
    it must be the 70 x 70 image's own, whole, tiled or streamed."""
    from bioimageio.spec.model import v0_5 as bio

    scale_range = bio.ScaleRangeDescr(kwargs=bio.ScaleRangeKwargs(
        axes=[bio.AxisId("y"), bio.AxisId("x")], min_percentile=1.0, max_percentile=99.8))
    x = np.random.default_rng(1).normal(size=(1, 1, 32, 32)).astype(np.float32)
    package = single_io_package(tmp_path, _identity(), x, size=(32, 32), name="percentiles", preprocessing=[scale_range])
    image = np.zeros((70, 70), np.float32)
    image[:, 50:] = np.random.default_rng(2).random((70, 20)) * 100  # bright at the far edge: the mirror doubles it
    low, high = np.quantile(image, [0.01, 0.998], method="linear")
    expected = (image - low) / (high - low + 1e-6)
    np.testing.assert_allclose(_run(package, image, tmp_path, "img", *flags), expected, atol=1e-5, rtol=0)


def test_a_valid_convolution_model_is_tiled_and_streamed_like_the_whole_image(tmp_path: Path) -> None:
    """A 5 x 5 convolution without padding: each output is 4 voxels shorter (offset -4, halo 0 declared). Tiles
    need |offset| / 2 = 2 voxels of halo on each side of their cores, which the plan takes from the offset."""
    torch.manual_seed(3)
    net = nn.Conv2d(1, 1, 5).eval()
    x = np.random.default_rng(3).normal(size=(1, 1, 32, 32)).astype(np.float32)
    package = single_io_package(tmp_path, net, x, size=(8, 1), offset=-4, name="valid-conv")
    image = np.random.default_rng(4).normal(size=(100, 90)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(image[None, None])).numpy()[0, 0]
    assert expected.shape == (96, 86)
    for name, flags in {"tiles": ["--tile", "32,32", "--halo", "2,2"],
                        "stream": ["--tile", "32,32", "--halo", "2,2", "--out-format", "ome-zarr"]}.items():
        np.testing.assert_allclose(_run(package, image, tmp_path, name, *flags), expected, atol=1e-5, rtol=0,
                                   err_msg=name)


@pytest.mark.parametrize("stream", [False, True])
def test_the_seam_check_looks_along_z_too(tmp_path: Path, capsys: pytest.CaptureFixture[str], stream: bool) -> None:
    """A network that reaches 4 voxels along z and none along y and x, in a package that declares a halo of 2:
    only z seams are wrong, and the check (which once compared neighbours along x alone) names z."""
    torch.manual_seed(5)
    net = nn.Conv3d(1, 1, (9, 1, 1), padding=(4, 0, 0)).eval()
    x = np.random.default_rng(5).normal(size=(1, 1, 16, 16, 16)).astype(np.float32)
    package = single_io_package(tmp_path, net, x, size=(8, 1), halo=2, name="deep-in-z", space="zyx")
    image = np.random.default_rng(6).normal(size=(40, 60, 60)).astype(np.float32)
    capsys.readouterr()
    _run(package, image, tmp_path, "vol", "--tile", "16,32,32", *(["--out-format", "ome-zarr"] if stream else []))
    out = capsys.readouterr().out
    assert out.count("warning:") == 1 and "at their seam along z" in out


def test_an_output_at_another_resolution_keeps_the_inputs_position(tmp_path: Path) -> None:
    """A model whose output has twice the voxels per axis: output voxel j covers input voxels j / 2 .. (j + 1) / 2,
    so the first output voxel's centre lies a quarter of an input voxel before the input's first centre
    (issue 26, item 6: the half-voxel shift)."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    from .test_one_plan import _Upsampler

    torch.manual_seed(2)
    x = np.random.default_rng(7).normal(size=(1, 1, 32, 32)).astype(np.float32)
    package = single_io_package(tmp_path, _Upsampler(), x, size=(8, 8), output_scale=0.5, halo=4, name="upsampler")
    group = zarr.open_group(str(tmp_path / "placed.ome.zarr"), mode="w", zarr_format=3)
    axes = [{"name": a, "type": "space", "unit": "micrometer"} for a in "yx"]
    group.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": [{"path": "0", "coordinateTransformations": [
        {"type": "scale", "scale": [0.5, 0.5]}, {"type": "translation", "translation": [10.0, 5.0]}]}]}]}
    group.create_array("0", data=np.random.default_rng(8).normal(size=(60, 50)).astype(np.float32), chunks=(32, 32))
    assert main(["predict", str(package), str(tmp_path / "placed.ome.zarr"), "--out", str(tmp_path / "out"),
                 "--tile", "32,32"]) == 0
    node = next(iter(Reader(parse_url(str(tmp_path / "out" / "placed.pred.ome.zarr")))()))
    level0 = {t["type"]: t[t["type"]] for t in node.metadata["coordinateTransformations"][0]}
    assert level0["scale"][-2:] == [0.25, 0.25] and level0["translation"][-2:] == [9.875, 4.875]
    assert node.data[0].shape[-2:] == (120, 100)
