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


def _normalized(image: np.ndarray, steps: list[dict]) -> np.ndarray:
    """The package's per-image normalization in numpy (scale_range or zero_mean_unit_variance, float64)."""
    image = image.astype(np.float64)
    step = next(p for p in steps if p["id"] in ("scale_range", "zero_mean_unit_variance"))
    kwargs = step["kwargs"]
    if step["id"] == "scale_range":
        low, high = np.percentile(image, [kwargs["min_percentile"], kwargs["max_percentile"]])
        return ((image - low) / (high - low + float(kwargs["eps"]))).astype(np.float32)
    return ((image - image.mean()) / (image.std() + float(kwargs["eps"]))).astype(np.float32)


def _expected(package: Path, image: np.ndarray, tmp_path: Path) -> np.ndarray:
    """The package's network on the image normalized as its rdf says (statistics of the image as given), padded
    as the original's PadAndCropResizer pads (reflect to a multiple of the step, half before), cropped back."""
    with zipfile.ZipFile(package) as archive:
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
        archive.extract(rdf["weights"]["torchscript"]["source"], tmp_path)
    normalized = _normalized(image, rdf["inputs"][0]["preprocessing"])
    steps = [a["size"]["step"] for a in rdf["inputs"][0]["axes"] if a.get("type") == "space"]
    pads = []
    for step, size in zip(steps, image.shape):
        valid = -(-size // step) * step  # the step's multiple, even below the declared minimum
        pads.append(((valid - size) // 2, valid - size - (valid - size) // 2))
    padded = np.pad(normalized, pads, mode="reflect")
    network = torch.jit.load(str(tmp_path / rdf["weights"]["torchscript"]["source"])).eval()
    with torch.no_grad():
        out = network(torch.from_numpy(padded)[None, None]).numpy()[0, 0]
    return out[tuple(slice(b, b + s) for (b, _), s in zip(pads, image.shape))]


def _shapes(dims: int, count: int, seed: int) -> list[tuple[int, ...]]:
    """Seeded sizes off the step grid, now and then an axis of 1 or 2 (reflect padding of tiny axes)."""
    rng = np.random.default_rng(seed)
    limits = [(1, 14), (1, 70), (1, 70)][3 - dims:]
    return [tuple(int(rng.integers(lo, hi)) if rng.random() > 0.15 else int(rng.integers(1, 3)) for lo, hi in limits)
            for _ in range(count)]


@pytest.mark.parametrize(("key", "shape"), [("3d", s) for s in [(10, 55, 61), (9, 53, 54), (5, 21, 27), *_shapes(3, 5, 1)]]
                         + [("2d", s) for s in _shapes(2, 6, 2)])
def test_whole_prediction_pads_as_the_original(packages: dict[str, Path], tmp_path: Path, key: str,
                                               shape: tuple[int, ...]) -> None:
    image = (np.random.default_rng(7).random(shape) * 3000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "img.tif", image, metadata={"axes": "ZYX"[3 - len(shape):]})
    assert main(["predict", str(packages[key]), str(tmp_path / "img.tif"), "--out", str(tmp_path / "out"), "--whole",
                 "--weight-format", "torchscript", "--axes", "zyx"[3 - len(shape):]]) == 0
    predicted = tifffile.imread(tmp_path / "out" / "img.tif").reshape(shape)
    expected = _expected(packages[key], image.astype(np.float32), tmp_path)
    np.testing.assert_allclose(predicted, expected, atol=1e-5 * max(float(np.ptp(expected)), 1e-6), rtol=0)


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
