"""``predict --denormalize`` (issue 32): outputs back in the input's units as CSBDeep and the original GVTNets compute
them, out * (p99.8 - p2) + p2 with numpy's linear percentiles of each image as given; refused where undefined."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr
from torch import nn

from gvtnet_zoo.cli import main
from gvtnet_zoo.predict.run import predict_image

from .zoo_builders import single_io_package, two_input_package

LOW, HIGH, EPS = 2.0, 99.8, 1e-6  # what gvtnet_zoo/export/rdf.py writes for CARE-type models


def _pointwise() -> nn.Module:
    """A per-voxel, non-linear network: whole, tiled and streamed outputs are the same, and numpy can compute them."""
    conv = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(0.8)
        conv.bias.fill_(-0.3)
    return nn.Sequential(conv, nn.Tanh()).eval()


def _scale_range(*axes: str) -> object:
    from bioimageio.spec.model import v0_5 as bio

    return bio.ScaleRangeDescr(kwargs=bio.ScaleRangeKwargs(axes=[bio.AxisId(a) for a in axes or ("y", "x")],
                                                           min_percentile=LOW, max_percentile=HIGH, eps=EPS))


def _package(folder: Path, name: str, **processing: list) -> Path:
    x = np.random.default_rng(0).normal(size=(1, 1, 32, 32)).astype(np.float32)
    return single_io_package(folder, _pointwise(), x, size=(16, 16), name=name, **processing)


@pytest.fixture(scope="module")
def percentile_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _package(tmp_path_factory.mktemp("pkg"), "percentiles", preprocessing=[_scale_range()])


def _image() -> np.ndarray:
    """Two time points (each normalized alone) of an odd size, in very different intensity ranges, float32."""
    rng = np.random.default_rng(7)
    first = rng.normal(200, 30, size=(45, 61)) + np.linspace(0, 80, 61)
    second = rng.gamma(2.0, 150.0, size=(45, 61)) + 1000
    return np.stack([first, second]).astype(np.float32)


def _expected(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(normalized output, denormalized output, range) per time point, computed with numpy on the raw image."""
    normalized, denormalized, ranges = [], [], []
    for plane in image.astype(np.float64):
        low, high = np.percentile(plane, [LOW, HIGH], method="linear")
        out = np.tanh(0.8 * (plane - low) / (high - low + EPS) - 0.3)
        normalized.append(out)
        denormalized.append(out * (high - low) + low)
        ranges.append(high - low)
    return np.stack(normalized), np.stack(denormalized), np.array(ranges)


def _run(package: Path, image: np.ndarray, tmp: Path, name: str, *flags: str) -> np.ndarray:
    tifffile.imwrite(tmp / f"{name}.tif", image, metadata={"axes": "TYX"})
    assert main(["predict", str(package), str(tmp / f"{name}.tif"), "--out", str(tmp / name), *flags]) == 0
    if "ome-zarr" in flags:
        return np.squeeze(zarr.open_group(str(tmp / name / f"{name}.pred.ome.zarr"), mode="r")["0"][:])
    return np.squeeze(tifffile.imread(tmp / name / f"{name}.tif"))


def _close(actual: np.ndarray, expected: np.ndarray, ranges: np.ndarray, what: str) -> None:
    assert actual.shape == expected.shape, what
    for t, (a, e, r) in enumerate(zip(actual, expected, ranges)):
        np.testing.assert_allclose(a, e, atol=1e-5 * r, rtol=0, err_msg=f"{what}, time point {t}")


@pytest.mark.parametrize("flags", [["--whole"], ["--tile", "32,32"], ["--tile", "32,32", "--out-format", "ome-zarr"]],
                         ids=["whole", "tiled", "streamed"])
def test_denormalized_outputs_are_in_the_input_units(percentile_package: Path, tmp_path: Path, flags: list[str]) -> None:
    """Whole, tiled and streamed: the normalized output * (p99.8 - p2) + p2, each time point with its own percentiles
    of the image as given (45 x 61 is mirrored up to 48 x 64, which must not change them)."""
    image = _image()
    normalized, denormalized, ranges = _expected(image)
    _close(_run(percentile_package, image, tmp_path, "plain", *flags), normalized, np.ones(2), "without --denormalize")
    _close(_run(percentile_package, image, tmp_path, "img", *flags, "--denormalize"), denormalized, ranges, " ".join(flags))


def test_predict_image_denormalizes_in_memory(percentile_package: Path) -> None:
    """The in-memory API (napari's) takes the same flag: one image, auto mode."""
    image = _image()[1]
    _, denormalized, ranges = _expected(image[None])
    outputs = predict_image(percentile_package, {"raw": image}, axes="yx", device="cpu", denormalize=True,
                            echo=lambda _: None)
    array, letters = outputs["out"]
    assert letters == "bcyx"
    _close(array[:, 0], denormalized, ranges, "predict_image")


@pytest.mark.parametrize("case, processing, words", [
    ("zero_mean_unit_variance", "zmuv", "no scale_range preprocessing (it has: zero_mean_unit_variance)"),
    ("no preprocessing", "none", "no scale_range preprocessing (it has: none)"),
    ("dataset statistics", "dataset", "dataset statistics"),
    ("postprocessing", "post", "already has postprocessing (scale_linear)"),
])
@pytest.mark.parametrize("stream", [False, True], ids=["files", "streamed"])
def test_undefined_denormalization_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str,
                                                          processing: str, words: str, stream: bool) -> None:
    """Where the output is not in scale_range's units of the image, --denormalize names the case; nothing is written."""
    from bioimageio.spec.model import v0_5 as bio

    kinds = {
        "zmuv": {"preprocessing": [bio.ZeroMeanUnitVarianceDescr(kwargs=bio.ZeroMeanUnitVarianceKwargs(
            axes=[bio.AxisId("y"), bio.AxisId("x")], eps=1e-6))]},
        "none": {},
        "dataset": {"preprocessing": [_scale_range("batch", "y", "x")]},
        "post": {"preprocessing": [_scale_range()],
                 "postprocessing": [bio.ScaleLinearDescr(kwargs=bio.ScaleLinearKwargs(gain=2.0, offset=1.0))]},
    }
    package = _package(tmp_path, f"refused-{processing}", **kinds[processing])
    tifffile.imwrite(tmp_path / "img.tif", _image()[0])
    capsys.readouterr()
    flags = ["--out-format", "ome-zarr"] if stream else []
    code = main(["predict", str(package), str(tmp_path / "img.tif"), "--out", str(tmp_path / "out"), "--denormalize", *flags])
    err = capsys.readouterr().err
    assert code == 2, case
    assert len(err.strip().splitlines()) == 1 and words in err and "--denormalize" in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_several_inputs_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    package, raw, mask, _ = two_input_package(tmp_path)
    for name, array in (("raw", raw), ("mask", mask)):
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "a.npy", array)
    capsys.readouterr()
    code = main(["predict", str(package), "--input", f"raw={tmp_path / 'raw'}", "--input", f"mask={tmp_path / 'mask'}",
                 "--out", str(tmp_path / "out"), "--denormalize"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "2 inputs" in err, err
    assert not (tmp_path / "out" / "a.npy").exists()
