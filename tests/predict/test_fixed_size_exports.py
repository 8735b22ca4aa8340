"""Packages whose inputs and outputs both have fixed sizes (CAREamics' exports): images of any size are mirrored
up to the fixed size's grid, tiled at the fixed size, and cropped back; a network that fails says so in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from gvtnet_zoo.cli import main

from .zoo_builders import TinyUNet, careamics_style_package, single_io_package


def _reference(net: torch.nn.Module, image: np.ndarray, padded: tuple[int, ...]) -> np.ndarray:
    """The network on the whole image mirrored up to ``padded`` (what the tiles see), cropped back."""
    mirrored = np.pad(image, [(0, p - s) for s, p in zip(image.shape, padded)], mode="symmetric")
    with torch.no_grad():
        y = net(torch.from_numpy((mirrored[None, None] - 100) / 20).float()).numpy()[0, 0] * 20 + 100
    return y[tuple(slice(0, s) for s in image.shape)]


def _run(package: Path, image: np.ndarray, tmp: Path, name: str, *flags: str) -> np.ndarray:
    tifffile.imwrite(tmp / f"{name}.tif", image.astype(np.float32))
    assert main(["predict", str(package), str(tmp / f"{name}.tif"), "--out", str(tmp / name), *flags]) == 0
    return tifffile.imread(tmp / name / f"{name}.tif")


@pytest.mark.parametrize("space, fixed, shape, padded", [
    ("yx", (64, 64), (77, 101), (80, 112)),  # a 2D N2V2-like export (CAREamics wrote 76 x 100 before)
    ("zyx", (32, 32, 32), (19, 45, 37), (32, 48, 40)),  # a 3D N2N-like export (a traceback before)
])
def test_fixed_size_exports_take_any_size_and_give_it_back(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           space: str, fixed: tuple[int, ...], shape: tuple[int, ...],
                                                           padded: tuple[int, ...]) -> None:
    package, net = careamics_style_package(tmp_path, space, fixed)
    image = np.random.default_rng(5).normal(100, 20, size=shape).astype(np.float32)
    produced = _run(package, image, tmp_path, "img")
    assert produced.shape == (1, *shape)
    np.testing.assert_allclose(produced[0], _reference(net, image, padded), atol=1e-4, rtol=0)
    assert "warning:" not in capsys.readouterr().out  # the default halo covers the network's reach


def test_fixed_size_onnx_exports_are_tiled_in_memory_and_streamed(tmp_path: Path) -> None:
    """ONNX weights with fixed dimensions refuse any other size: a 150 x 150 image reaches them only in tiles
    of 64, in memory (TIFF out) and streamed (OME-Zarr out), and both give the whole image's result."""
    import zarr

    package, net = careamics_style_package(tmp_path, "yx", (64, 64), onnx=True)
    image = np.random.default_rng(6).normal(100, 20, size=(150, 150)).astype(np.float32)
    expected = _reference(net, image, (160, 160))
    in_memory = _run(package, image, tmp_path, "img", "--weight-format", "onnx")
    np.testing.assert_allclose(in_memory[0], expected, atol=1e-3, rtol=0)
    assert main(["predict", str(package), str(tmp_path / "img.tif"), "--out", str(tmp_path / "z"), "--weight-format",
                 "onnx", "--out-format", "ome-zarr"]) == 0
    streamed = np.asarray(zarr.open(str(next((tmp_path / "z").glob("*.ome.zarr"))), mode="r")["0"])
    np.testing.assert_allclose(streamed.reshape(150, 150), expected, atol=1e-3, rtol=0)


def test_a_network_that_fails_is_one_line_naming_the_weights_and_shapes(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A package that claims any size (min 8, step 1) for a network that needs even sizes: an odd image ends
    in one line, exit 2, no traceback, no output."""
    torch.manual_seed(0)
    x = np.random.default_rng(7).normal(size=(1, 1, 32, 32)).astype(np.float32)
    package = single_io_package(tmp_path, TinyUNet(2), x, size=(8, 1), name="any-size")
    tifffile.imwrite(tmp_path / "odd.tif", np.zeros((33, 35), np.float32))
    capsys.readouterr()
    assert main(["predict", str(package), str(tmp_path / "odd.tif"), "--out", str(tmp_path / "o"), "--whole"]) == 2
    err = capsys.readouterr().err
    assert "torchscript weights failed on an input of" in err and "33" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o" / "odd.tif").exists()
