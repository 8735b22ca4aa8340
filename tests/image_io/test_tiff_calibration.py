"""TIFF outputs of ``predict`` carry the input's calibration (issue 33, item 3): ImageJ hyperstack metadata
(X/YResolution per ``unit``, z ``spacing``) that Fiji reads, resampled with the model's output size, while
tifffile still reads the output's own axes (a channel axis of 1 included)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import torch

from gvtnet_zoo.cli import main
from gvtnet_zoo.image_io.files import read_calibration, write_output
from gvtnet_zoo.image_io.tiff_meta import Calibration
from gvtnet_zoo.image_io.volumes import MetadataWarning

from ..predict.test_executors_differential import _Resample
from ..predict.test_pixel_size import _zscored_package
from ..predict.zoo_builders import single_io_package

UM = {a: "micrometer" for a in "zyx"}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny packages built in seconds: a 3D convolution, x2 and x0.5 resampling (2D), and a 0.29 um identity."""
    root = tmp_path_factory.mktemp("calibration")
    rng = np.random.default_rng(0)
    torch.manual_seed(0)

    def folder(name: str) -> Path:
        (root / name).mkdir()
        return root / name

    def x(*shape: int) -> np.ndarray:
        return rng.normal(size=(1, 1, *shape)).astype(np.float32)

    return {
        "conv3d": single_io_package(folder("c"), torch.nn.Conv3d(1, 1, 3, padding=1), x(8, 8, 8), size=(8, 4),
                                    space="zyx", name="conv3d"),
        "up": single_io_package(folder("u"), _Resample(2), x(16, 16), size=(8, 8), output_scale=0.5, halo=4,
                                name="upsample"),
        "down": single_io_package(folder("d"), _Resample(0.5), x(16, 16), size=(16, 2), output_scale=2.0, halo=2,
                                  name="downsample"),
        "pixel": _zscored_package(folder("p")),
    }


def _predict(package: Path, image: Path, *flags: str) -> Path:
    out = image.parent / "out"
    assert main(["predict", str(package), str(image), "--out", str(out), *flags]) == 0
    return out / image.name


def _read(path: Path) -> tuple[Any, ...]:
    """(tifffile's shape and axes, ImageJ metadata, (x, y) resolution in voxels per unit) of a TIFF."""
    with tifffile.TiffFile(path) as tiff:
        return tiff.series[0].shape, tiff.series[0].axes, tiff.imagej_metadata or {}, tiff.pages[0].resolution


def _volume() -> np.ndarray:
    return np.random.default_rng(1).normal(100, 10, size=(7, 12, 16)).astype(np.float32)


def test_an_imagej_input_gives_an_output_with_its_spacing_resolution_and_unit(zoo: dict[str, Path],
                                                                             tmp_path: Path) -> None:
    image = tmp_path / "cell.tif"
    tifffile.imwrite(image, _volume(), imagej=True, resolution=(1 / 0.325, 1 / 0.325),
                     metadata={"axes": "ZYX", "spacing": 2.0, "unit": "um"})
    shape, axes, meta, resolution = _read(_predict(zoo["conv3d"], image))
    assert (shape, axes) == ((1, 7, 12, 16), "CZYX")  # the channel axis of 1 stays (README)
    assert meta["spacing"] == pytest.approx(2.0) and meta["unit"] == "um" and meta["slices"] == 7
    assert resolution == pytest.approx((1 / 0.325, 1 / 0.325))
    assert read_calibration(tmp_path / "out" / "cell.tif").sizes == pytest.approx({"z": 2.0, "y": 0.325, "x": 0.325})


def test_an_ome_tiff_input_gives_a_calibrated_output_in_one_unit(zoo: dict[str, Path], tmp_path: Path) -> None:
    image = tmp_path / "cell.ome.tif"
    tifffile.imwrite(image, _volume(), metadata={"axes": "ZYX", "PhysicalSizeX": 200.0, "PhysicalSizeXUnit": "nm",
                                                 "PhysicalSizeY": 250.0, "PhysicalSizeYUnit": "nm",
                                                 "PhysicalSizeZ": 1.5, "PhysicalSizeZUnit": "µm"})
    shape, _, meta, resolution = _read(_predict(zoo["conv3d"], image))
    assert shape == (1, 7, 12, 16) and meta["unit"] == "nm" and meta["spacing"] == pytest.approx(1500.0)
    assert resolution == pytest.approx((1 / 200.0, 1 / 250.0))


def test_an_uncalibrated_input_gives_an_output_without_units(zoo: dict[str, Path], tmp_path: Path) -> None:
    image = tmp_path / "plain.tif"
    tifffile.imwrite(image, _volume())
    shape, axes, meta, resolution = _read(_predict(zoo["conv3d"], image))
    assert (shape, axes) == ((1, 7, 12, 16), "CZYX") and meta["slices"] == 7  # a hyperstack for Fiji all the same
    assert "unit" not in meta and "spacing" not in meta and resolution == (1.0, 1.0)
    assert read_calibration(tmp_path / "out" / "plain.tif") == Calibration()


def test_a_zero_spacing_is_dropped_with_a_warning_and_the_rest_kept(zoo: dict[str, Path], tmp_path: Path) -> None:
    image = tmp_path / "flat.tif"
    tifffile.imwrite(image, _volume(), imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "ZYX", "spacing": 0.0, "unit": "um"})
    with pytest.warns(MetadataWarning, match="axis z"):
        _, _, meta, resolution = _read(_predict(zoo["conv3d"], image))
    assert "spacing" not in meta and meta["unit"] == "um" and resolution == pytest.approx((2.0, 2.0))


@pytest.mark.parametrize("package, size", [("up", 0.25), ("down", 1.0)])
def test_a_resampling_model_scales_the_voxel_size(zoo: dict[str, Path], tmp_path: Path, package: str,
                                                  size: float) -> None:
    image = tmp_path / "plane.tif"
    tifffile.imwrite(image, np.random.default_rng(2).normal(size=(20, 24)).astype(np.float32), imagej=True,
                     resolution=(2.0, 2.0), metadata={"axes": "YX", "unit": "um"})
    shape, _, meta, resolution = _read(_predict(zoo[package], image))
    assert shape == (1, round(20 * 0.5 / size), round(24 * 0.5 / size))
    assert meta["unit"] == "um" and resolution == pytest.approx((1 / size, 1 / size))


@pytest.mark.parametrize("keep", [True, False])
def test_outputs_kept_at_the_models_pixel_size_carry_it(zoo: dict[str, Path], tmp_path: Path, keep: bool) -> None:
    image = tmp_path / "raw.tif"
    tifffile.imwrite(image, np.random.default_rng(3).gamma(2.0, 30.0, (61, 70)).astype(np.float32), imagej=True,
                     resolution=(1 / 0.145, 1 / 0.145), metadata={"axes": "YX", "unit": "um"})
    flags = ["--pixel-size", "0.145"] + (["--keep-model-pixel-size"] if keep else [])
    shape, _, _, resolution = _read(_predict(zoo["pixel"], image, *flags))
    if keep:  # 30 x 35 voxels over the input's 61 x 70 at 0.145 um
        assert shape == (1, 30, 35) and resolution == pytest.approx((1 / 0.29, 30 / (61 * 0.145)))
    else:
        assert shape == (1, 61, 70) and resolution == pytest.approx((1 / 0.145, 1 / 0.145))


def test_the_pixel_size_given_replaces_the_files(zoo: dict[str, Path], tmp_path: Path) -> None:
    """--pixel-size says what the file's metadata got wrong (or lacks): the output follows the user, not the file."""
    image = tmp_path / "mislabelled.tif"
    tifffile.imwrite(image, np.random.default_rng(4).gamma(2.0, 30.0, (61, 70)).astype(np.float32), imagej=True,
                     resolution=(1 / 0.2, 1 / 0.2), metadata={"axes": "YX", "unit": "um"})
    shape, _, meta, resolution = _read(_predict(zoo["pixel"], image, "--pixel-size", "0.145"))
    assert shape == (1, 61, 70) and meta["unit"] == "um" and resolution == pytest.approx((1 / 0.145, 1 / 0.145))


def test_an_output_without_z_carries_no_spacing(tmp_path: Path) -> None:
    """A projection's output (z dropped, as gvtnet-zoo's projection packages): y and x only."""
    source = Calibration({"z": 2.0, "y": 0.5, "x": 0.5}, UM, {"z": 7, "y": 12, "x": 16})
    write_output(tmp_path / "p.tif", np.zeros((1, 1, 12, 16), np.float32), "bcyx", source)
    shape, _, meta, resolution = _read(tmp_path / "p.tif")
    assert shape == (1, 12, 16) and "spacing" not in meta and meta["unit"] == "um"
    assert resolution == pytest.approx((2.0, 2.0))


def test_several_channels_of_a_volume_are_written_in_imagejs_plane_order(tmp_path: Path) -> None:
    """ImageJ reads planes as TZCYX: channels of a volume interleave, and tifffile reads them so too."""
    array = np.arange(2 * 5 * 3 * 4, dtype=np.float32).reshape(1, 2, 5, 3, 4)
    write_output(tmp_path / "c.tif", array, "bczyx", Calibration({"z": 3.0, "y": 1.0, "x": 1.0}, UM,
                                                                  {"z": 5, "y": 3, "x": 4}))
    shape, axes, meta, _ = _read(tmp_path / "c.tif")
    assert (shape, axes) == ((5, 2, 3, 4), "ZCYX") and (meta["channels"], meta["slices"]) == (2, 5)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "c.tif"), array[0].transpose(1, 0, 2, 3))
    assert meta["spacing"] == pytest.approx(3.0)
