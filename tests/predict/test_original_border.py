"""gvtnet-zoo packages are padded as the original GVTNets' predict.py pads (issue 32): numpy 'reflect', half the
padding before the image and the rest after, in every mode; other packages keep bioimageio.core's far-side mirror."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml

from gvtnet_zoo.cli import main


def _expected(package: Path, image: np.ndarray, tmp_path: Path) -> np.ndarray:
    """The package's network on the image normalized as its rdf says (percentiles of the image as given), padded
    as the original's PadAndCropResizer pads (to a multiple of the step), cropped back."""
    with zipfile.ZipFile(package) as archive:
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
        archive.extract(rdf["weights"]["torchscript"]["source"], tmp_path)
    kwargs = next(p["kwargs"] for p in rdf["inputs"][0]["preprocessing"] if p["id"] == "scale_range")
    low, high = np.percentile(image.astype(np.float64), [kwargs["min_percentile"], kwargs["max_percentile"]])
    normalized = ((image - low) / (high - low + float(kwargs["eps"]))).astype(np.float32)
    sizes = {a["id"]: a["size"] for a in rdf["inputs"][0]["axes"] if a.get("type") == "space"}
    pads = []
    for axis, size in zip("zyx", image.shape):
        valid = -(-size // sizes[axis]["step"]) * sizes[axis]["step"]  # the step's multiple, even below the minimum
        pads.append(((valid - size) // 2, valid - size - (valid - size) // 2))
    padded = np.pad(normalized, pads, mode="reflect")
    network = torch.jit.load(str(tmp_path / rdf["weights"]["torchscript"]["source"])).eval()
    with torch.no_grad():
        out = network(torch.from_numpy(padded)[None, None]).numpy()[0, 0]
    return out[tuple(slice(b, b + s) for (b, _), s in zip(pads, image.shape))]


@pytest.mark.parametrize("shape", [(10, 55, 61), (9, 53, 54), (5, 21, 27)])  # the last below the declared minimum
def test_whole_prediction_pads_as_the_original(packages: dict[str, Path], tmp_path: Path, shape: tuple[int, ...]) -> None:
    image = (np.random.default_rng(7).random(shape) * 3000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "img.tif", image)
    assert main(["predict", str(packages["3d"]), str(tmp_path / "img.tif"), "--out", str(tmp_path / "out"), "--whole",
                 "--weight-format", "torchscript"]) == 0
    predicted = np.squeeze(tifffile.imread(tmp_path / "out" / "img.tif"))
    expected = _expected(packages["3d"], image.astype(np.float32), tmp_path)
    np.testing.assert_allclose(predicted, expected, atol=1e-5 * float(np.ptp(expected)), rtol=0)


def test_global_context_in_tiles_equals_the_whole_image_at_an_odd_size(packages: dict[str, Path], tmp_path: Path) -> None:
    image = (np.random.default_rng(8).random((9, 111, 97)) * 3000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "img.tif", image)
    runs = {"whole": ["--whole"], "global": ["--global-context", "--tile", "12,56,56"],
            "streamed": ["--global-context", "--tile", "12,56,56", "--out-format", "ome-zarr"]}
    for run, flags in runs.items():
        assert main(["predict", str(packages["3d"]), str(tmp_path / "img.tif"), "--out", str(tmp_path / run), *flags]) == 0
    whole = np.squeeze(tifffile.imread(tmp_path / "whole" / "img.tif"))
    import zarr

    for run in ("global", "streamed"):
        other = (np.squeeze(tifffile.imread(tmp_path / run / "img.tif")) if run == "global" else
                 np.squeeze(zarr.open_group(str(tmp_path / run / "img.pred.ome.zarr"), mode="r")["0"][:]))
        np.testing.assert_allclose(other, whole, atol=1e-5 * float(np.ptp(whole)), rtol=0, err_msg=run)


def test_other_packages_keep_the_far_side_mirror(tmp_path: Path) -> None:
    from .zoo_builders import single_io_package

    torch.manual_seed(0)
    net = torch.nn.Conv2d(1, 1, 5, padding=2)
    x = np.random.default_rng(1).normal(size=(1, 1, 16, 16)).astype(np.float32)
    package = single_io_package(tmp_path, net, x, size=(8, 8), name="conv5x5")
    image = np.random.default_rng(9).normal(size=(21, 19)).astype(np.float32)
    tifffile.imwrite(tmp_path / "img.tif", image, metadata={"axes": "YX"})
    assert main(["predict", str(package), str(tmp_path / "img.tif"), "--out", str(tmp_path / "out"), "--whole"]) == 0
    padded = np.pad(image, ((0, 3), (0, 5)), mode="symmetric")
    with torch.no_grad():
        expected = net(torch.from_numpy(padded)[None, None]).numpy()[0, 0, :21, :19]
    np.testing.assert_allclose(np.squeeze(tifffile.imread(tmp_path / "out" / "img.tif")), expected, atol=1e-5)
