"""predict --pixel-size on a package with a per-sample z-score: the network sees the image z-scored at its own
pixel size, then resized (the original label-free recipe), and --keep-model-pixel-size leaves outputs there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from gvtnet_zoo.cli import main
from gvtnet_zoo.data.resample import resize_yx

from .zoo_builders import torchscript_weights

EPS = 1e-4  # not bioimage.io's default, so the package's own eps is seen to be used


class _Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1.0  # the output is exactly what the network was given


def _zscored_package(folder: Path) -> Path:
    """Identity network; input (b, c, y, x) at 0.29 um in y and x, multiples of 8, zero_mean_unit_variance per
    sample over c, y and x with eps EPS; output the same size and pixel size, no postprocessing."""
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5 as bio

    x = np.random.default_rng(0).normal(size=(1, 1, 16, 16)).astype(np.float32)
    np.save(folder / "in.npy", x)
    np.save(folder / "out.npy", x)
    (folder / "README.md").write_text("# identity\n")
    pixel = {"scale": 0.29, "unit": "micrometer"}
    channel = [bio.BatchAxis(), bio.ChannelAxis(channel_names=[bio.Identifier("c0")])]
    zscore = bio.ZeroMeanUnitVarianceDescr(kwargs=bio.ZeroMeanUnitVarianceKwargs(
        axes=[bio.AxisId("channel"), bio.AxisId("y"), bio.AxisId("x")], eps=EPS))
    descr = bio.ModelDescr(
        name="identity zscore", description="the network input, unchanged", authors=[bio.Author(name="Someone Else")],
        cite=[bio.CiteEntry(text="none", doi=bio.Doi("10.1038/s42256-020-00283-x"))], license=bio.LicenseId("MIT"),
        documentation=bio.FileDescr(source=folder / "README.md"),
        inputs=[bio.InputTensorDescr(
            id=bio.TensorId("raw"), test_tensor=bio.FileDescr(source=folder / "in.npy"),
            axes=channel + [bio.SpaceInputAxis(id=bio.AxisId(a), size=bio.ParameterizedSize(min=8, step=8), **pixel)
                            for a in "yx"],
            preprocessing=[zscore])],
        outputs=[bio.OutputTensorDescr(
            id=bio.TensorId("out"), test_tensor=bio.FileDescr(source=folder / "out.npy"),
            axes=channel + [bio.SpaceOutputAxis(id=bio.AxisId(a), size=bio.SizeReference(
                tensor_id=bio.TensorId("raw"), axis_id=bio.AxisId(a)), **pixel) for a in "yx"])],
        weights=torchscript_weights(_Identity(), folder),
    )
    return Path(save_bioimageio_package(descr, output_path=folder / "identity.zip"))


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _zscored_package(tmp_path_factory.mktemp("zscored"))


def _raw(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 0.145 um image with fine detail, so that halving its size shrinks its std (cubic splines smooth)."""
    rng = np.random.default_rng(1)
    image = (rng.gamma(2.0, 30.0, (61, 70)) + 500.0).astype(np.float32)
    tifffile.imwrite(tmp_path / "raw.tif", image)
    return tmp_path / "raw.tif", image


def _zscore_then_resize(image: np.ndarray) -> np.ndarray:
    """The original's test images: float64 z-score at the image's own pixel size, then resized y/x."""
    image = image.astype(np.float64)
    return resize_yx((image - image.mean()) / (image.std() + EPS), "yx", 0.5)


def _resize_then_zscore(image: np.ndarray) -> np.ndarray:
    resized = resize_yx(image, "yx", 0.5).astype(np.float64)
    return (resized - resized.mean()) / (resized.std() + EPS)


@pytest.mark.parametrize("mode", [["--whole"], ["--tile", "16,16"]])
def test_the_network_sees_the_image_zscored_at_its_own_pixel_size_then_resized(package: Path, tmp_path: Path,
                                                                               mode: list[str]) -> None:
    path, image = _raw(tmp_path)
    assert main(["predict", str(package), str(path), "--out", str(tmp_path / "out"), "--pixel-size", "0.145",
                 *mode]) == 0
    produced = tifffile.imread(tmp_path / "out" / "raw.tif")[0]  # channel, y, x: back at the input's size
    expected = _zscore_then_resize(image)
    assert expected.shape == (30, 35) and produced.shape == image.shape
    np.testing.assert_allclose(produced, resize_yx(expected, "yx", sizes=image.shape), atol=1e-5)
    # the two orders differ by far more than the tolerance, so the test tells them apart
    assert np.abs(_resize_then_zscore(image) - expected).max() > 0.05


def test_keep_model_pixel_size_writes_what_the_network_gave_at_its_pixel_size(package: Path, tmp_path: Path) -> None:
    path, image = _raw(tmp_path)
    assert main(["predict", str(package), str(path), "--out", str(tmp_path / "out"), "--pixel-size", "0.145",
                 "--keep-model-pixel-size"]) == 0
    produced = tifffile.imread(tmp_path / "out" / "raw.tif")[0]
    expected = _zscore_then_resize(image)
    assert produced.shape == expected.shape == (30, 35)  # 0.29 um: half the input's size, as the model sees it
    np.testing.assert_allclose(produced, expected, atol=1e-5)


def test_keep_model_pixel_size_without_pixel_size_is_one_line(package: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = _raw(tmp_path)
    for extra in ([], ["--out-format", "ome-zarr"]):
        assert main(["predict", str(package), str(path), "--out", str(tmp_path / "out"), "--keep-model-pixel-size",
                     *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "give --pixel-size too" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("size", [float("nan"), float("inf"), -1.0, 0.0])
def test_a_pixel_size_that_is_not_a_positive_number_is_one_line(size: float) -> None:
    from gvtnet_zoo.errors import UserError
    from gvtnet_zoo.predict.pixel_size import resample_factor

    with pytest.raises(UserError, match="--pixel-size"):
        resample_factor(None, size)
