"""gvtnet-zoo predict: our packages and packages in other styles, whole and tiled, files in and out."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from torch import nn

from gvtnet_zoo.cli import main
from gvtnet_zoo.export.package import package_run
from gvtnet_zoo.spec_loading import load_spec
from gvtnet_zoo.train.trainer import train

from ..conftest import PACKAGE_RUN
from .zoo_builders import two_input_package


def _from_package(package: Path, name: str) -> np.ndarray:
    with zipfile.ZipFile(package) as archive:
        return np.load(archive.open(name))


@pytest.mark.parametrize("key", ["2d", "3d"])
@pytest.mark.parametrize("weight_format", ["onnx", "torchscript", "pytorch_state_dict"])
def test_our_packages_reproduce_their_test_output(packages: dict[str, Path], tmp_path: Path, key: str,
                                                  weight_format: str) -> None:
    test_input = _from_package(packages[key], "test_input.npy")
    tifffile.imwrite(tmp_path / "image.tif", test_input[0, 0])  # a plain (Z,) Y, X stack, as microscopists have
    args = ["predict", str(packages[key]), str(tmp_path / "image.tif"), "--out", str(tmp_path / "out"),
            "--weight-format", weight_format, "--device", "cpu"]
    assert main(args) == 0
    produced = tifffile.imread(tmp_path / "out" / "image.tif")
    expected = _from_package(packages[key], "test_output.npy")[0]  # the singleton batch is dropped in TIFFs
    np.testing.assert_allclose(produced, expected, atol=1e-4 * max(1.0, np.abs(expected).max()), rtol=0)


def test_npy_with_all_model_axes_is_used_as_is_and_written_as_npy(packages: dict[str, Path], tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", _from_package(packages["2d"], "test_input.npy"))
    assert main(["predict", str(packages["2d"]), str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    produced = np.load(tmp_path / "out" / "x.npy")
    expected = _from_package(packages["2d"], "test_output.npy")
    assert produced.shape == expected.shape
    np.testing.assert_allclose(produced, expected, atol=1e-4, rtol=0)


def test_sizes_the_network_cannot_take_are_mirrored_and_cropped_back(packages: dict[str, Path], tmp_path: Path) -> None:
    image = np.random.default_rng(0).random((70, 66)).astype(np.float32)
    tifffile.imwrite(tmp_path / "odd.tif", image)
    assert main(["predict", str(packages["2d"]), str(tmp_path / "odd.tif"), "--out", str(tmp_path / "out")]) == 0
    assert tifffile.imread(tmp_path / "out" / "odd.tif").shape == (1, 70, 66)  # channel, y, x


def test_outputs_are_not_overwritten_without_asking(packages: dict[str, Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    tifffile.imwrite(tmp_path / "a.tif", _from_package(packages["2d"], "test_input.npy")[0, 0])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.tif").write_bytes(b"keep me")
    assert main(["predict", str(packages["2d"]), str(tmp_path / "a.tif"), "--out", str(tmp_path / "out")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "out" / "a.tif").read_bytes() == b"keep me"
    assert main(["predict", str(packages["2d"]), str(tmp_path / "a.tif"), "--out", str(tmp_path / "out"),
                 "--overwrite"]) == 0
    assert tifffile.imread(tmp_path / "out" / "a.tif").ndim == 3


def test_an_input_with_nan_is_refused_in_one_line_and_writes_nothing(packages: dict[str, Path], tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Hostile review of issue 33: files mode predicted NaN inputs into NaN outputs where streaming refused them."""
    image = _from_package(packages["2d"], "test_input.npy")[0, 0].copy()
    image[3, 5] = np.nan
    tifffile.imwrite(tmp_path / "a.tif", image)
    assert main(["predict", str(packages["2d"]), str(tmp_path / "a.tif"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "NaN or Inf" in err and len(err.splitlines()) == 1 and not (tmp_path / "out" / "a.tif").exists()


@pytest.mark.parametrize("argv, fragment", [
    (["nowhere.zip", "x.tif"], "model nowhere.zip not found"),
    (["{pkg}", "missing.tif"], "input missing.tif not found"),
    (["{pkg}", "{img3d}"], "has a z axis of size 4"),
    (["{pkg}", "{rgba}"], "has 4 channel(s) but the model takes 1"),
])
def test_bad_input_is_one_line(packages: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               argv: list[str], fragment: str) -> None:
    tifffile.imwrite(tmp_path / "vol.tif", np.zeros((4, 64, 64), np.float32), photometric="minisblack")
    tifffile.imwrite(tmp_path / "rgba.tif", np.zeros((4, 64, 64), np.float32))  # tifffile reads 4 samples
    filled = [a.format(pkg=packages["2d"], img3d=tmp_path / "vol.tif", rgba=tmp_path / "rgba.tif") for a in argv]
    assert main(["predict", *filled, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


# ---- packages in styles unlike ours, built here with bioimageio.spec's public API ----------------------------

class _Conv(nn.Module):
    def __init__(self, padding: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 5, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _foreign_package(tmp: Path, *, weight_format: str, crop: bool) -> tuple[Path, np.ndarray, np.ndarray]:
    """2D: zero_mean_unit_variance in, sigmoid out; one weight format; optionally a 'valid' conv (output smaller)."""
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5 as bio

    torch.manual_seed(0)
    net = _Conv(padding=0 if crop else 2).eval()
    x = np.random.default_rng(1).normal(3, 2, size=(1, 1, 64, 48)).astype(np.float32)
    with torch.no_grad():
        y = torch.sigmoid(net(torch.from_numpy((x - x.mean()) / (x.std() + 1e-6)))).numpy()
    np.save(tmp / "in.npy", x)
    np.save(tmp / "out.npy", y)
    if weight_format == "torchscript":
        torch.jit.script(net).save(str(tmp / "w.pt"))
        weights = bio.WeightsDescr(torchscript=bio.TorchscriptWeightsDescr(source=tmp / "w.pt",
                                                                             pytorch_version=bio.Version("2.0")))
    else:
        torch.onnx.export(net, torch.from_numpy(x), str(tmp / "w.onnx"), dynamo=False, opset_version=15,
                          input_names=["raw"], output_names=["prob"],
                          dynamic_axes={"raw": {0: "b", 2: "y", 3: "x"}, "prob": {0: "b", 2: "y", 3: "x"}})
        weights = bio.WeightsDescr(onnx=bio.OnnxWeightsDescr(source=tmp / "w.onnx", opset_version=15))
    offset = -4 if crop else 0
    (tmp / "README.md").write_text("# other\n\n# Validation\nnone\n")
    descr = bio.ModelDescr(
        name="foreign style", description="not made by gvtnet-zoo", authors=[bio.Author(name="Someone Else")],
        cite=[bio.CiteEntry(text="none", doi=bio.Doi("10.1038/s42256-020-00283-x"))], license=bio.LicenseId("MIT"),
        documentation=bio.FileDescr(source=tmp / "README.md"),
        inputs=[bio.InputTensorDescr(
            id=bio.TensorId("raw"), test_tensor=bio.FileDescr(source=tmp / "in.npy"),
            axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=[bio.Identifier("c0")]),
                  bio.SpaceInputAxis(id=bio.AxisId("y"), size=bio.ParameterizedSize(min=16, step=8)),
                  bio.SpaceInputAxis(id=bio.AxisId("x"), size=bio.ParameterizedSize(min=16, step=8))],
            preprocessing=[bio.ZeroMeanUnitVarianceDescr(kwargs=bio.ZeroMeanUnitVarianceKwargs(
                axes=[bio.AxisId("y"), bio.AxisId("x")]))])],
        outputs=[bio.OutputTensorDescr(
            id=bio.TensorId("prob"), test_tensor=bio.FileDescr(source=tmp / "out.npy"),
            axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=[bio.Identifier("p")]),
                  *[bio.SpaceOutputAxis(id=bio.AxisId(a), size=bio.SizeReference(
                      tensor_id=bio.TensorId("raw"), axis_id=bio.AxisId(a), offset=offset)) for a in "yx"]],
            postprocessing=[bio.SigmoidDescr()])],
        weights=weights,
    )
    return Path(save_bioimageio_package(descr, output_path=tmp / "foreign.zip")), x, y


@pytest.mark.parametrize("weight_format, crop", [("torchscript", False), ("onnx", True)])
def test_packages_in_other_styles_reproduce_their_test_output(tmp_path: Path, weight_format: str, crop: bool) -> None:
    package, x, y = _foreign_package(tmp_path, weight_format=weight_format, crop=crop)
    tifffile.imwrite(tmp_path / "image.tif", x[0, 0])
    assert main(["predict", str(package), str(tmp_path / "image.tif"), "--out", str(tmp_path / "pred")]) == 0
    produced = tifffile.imread(tmp_path / "pred" / "image.tif")
    assert produced.shape == y[0].shape  # smaller than the input for the cropping model
    np.testing.assert_allclose(produced, y[0], atol=1e-5, rtol=0)


def test_state_dict_code_runs_only_when_asked(packages: dict[str, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    run = packages["2d"].parent / "run"
    only_state_dict = package_run(run, tmp_path / "sd.zip", weight_formats=["pytorch_state_dict"], echo=lambda _: None)
    tifffile.imwrite(tmp_path / "a.tif", _from_package(only_state_dict, "test_input.npy")[0, 0])
    capsys.readouterr()
    assert main(["predict", str(only_state_dict), str(tmp_path / "a.tif"), "--out", str(tmp_path / "o")]) == 2
    assert "--weight-format pytorch_state_dict" in capsys.readouterr().err
    assert main(["predict", str(only_state_dict), str(tmp_path / "a.tif"), "--out", str(tmp_path / "o"),
                 "--weight-format", "pytorch_state_dict"]) == 0
    assert "running the network code from the package's file gvtnet_zoo_network.py" in capsys.readouterr().out


def test_tiled_equals_whole_for_a_unet_away_from_the_border(denoise_2d: Path, tmp_path: Path) -> None:
    from gvtnet_zoo.data.synthetic import synthetic_pair

    spec = load_spec("demo-unet-label-free-2d", PACKAGE_RUN + ["model.base_channels=4", "data.patch_size=[32,32]"])
    train(spec, denoise_2d / "train", tmp_path / "run", val=denoise_2d / "test", device="cpu")
    image, _ = synthetic_pair("denoise", (256, 240), np.random.default_rng(5))
    tifffile.imwrite(tmp_path / "big.tif", image)
    package = package_run(tmp_path / "run", tmp_path / "unet.zip", weight_formats=["torchscript"],
                          sample=tmp_path / "big.tif", echo=lambda _: None)
    assert main(["predict", str(package), str(tmp_path / "big.tif"), "--out", str(tmp_path / "whole"), "--whole"]) == 0
    assert main(["predict", str(package), str(tmp_path / "big.tif"), "--out", str(tmp_path / "tiles"),
                 "--tile", "160,160"]) == 0
    whole = tifffile.imread(tmp_path / "whole" / "big.tif")
    tiled = tifffile.imread(tmp_path / "tiles" / "big.tif")
    assert whole.shape == tiled.shape == (1, 256, 240)
    # the halo covers the U-Net's receptive field and the tiles see the same (padded) image: equal everywhere
    np.testing.assert_allclose(tiled, whole, atol=1e-4 * np.abs(whole).max(), rtol=0)


def test_tiles_of_models_without_a_halo_keep_a_default_one(tmp_path: Path) -> None:
    """A halo-less foreign model (5x5 conv, zero padding) in tiles of 64: each keeps 8 voxels each side for the
    halo its package does not state, more than the convolution's reach, so no seams remain."""
    package, x, _ = _foreign_package(tmp_path, weight_format="torchscript", crop=False)
    big = np.random.default_rng(3).normal(3, 2, size=(200, 184)).astype(np.float32)
    tifffile.imwrite(tmp_path / "big.tif", big)
    assert main(["predict", str(package), str(tmp_path / "big.tif"), "--out", str(tmp_path / "w"), "--whole"]) == 0
    assert main(["predict", str(package), str(tmp_path / "big.tif"), "--out", str(tmp_path / "t"),
                 "--tile", "64,64"]) == 0
    whole, tiled = tifffile.imread(tmp_path / "w" / "big.tif"), tifffile.imread(tmp_path / "t" / "big.tif")
    assert whole.shape == tiled.shape
    np.testing.assert_allclose(tiled, whole, atol=1e-5 * np.ptp(whole), rtol=0)


def test_torchrun_shards_files_across_processes(packages: dict[str, Path], tmp_path: Path) -> None:
    image = _from_package(packages["2d"], "test_input.npy")[0, 0]
    for i in range(3):
        tifffile.imwrite(tmp_path / f"img{i}.tif", image)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "gvtnet_zoo",
               "predict", str(packages["2d"]), *[str(tmp_path / f"img{i}.tif") for i in range(3)],
               "--out", str(tmp_path / "out"), "--device", "cpu"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img0.tif", "img1.tif", "img2.tif"]
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("predicted")]
    assert sorted(line.split()[1] for line in lines) == ["1", "2"]  # files split 2 + 1 between the processes


def test_models_with_two_inputs_pair_files_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    package, raw, mask, expected = two_input_package(tmp_path)
    for folder, array in (("raws", raw), ("masks", mask)):
        (tmp_path / folder).mkdir()
        tifffile.imwrite(tmp_path / folder / "cell.tif", array[0, 0])
    assert main(["predict", str(package), str(tmp_path / "raws"), "--out", str(tmp_path / "x")]) == 2
    assert "--input NAME=PATH" in capsys.readouterr().err
    assert main(["predict", str(package), "--input", f"raw={tmp_path / 'raws'}", "--input", f"mask={tmp_path / 'masks'}",
                 "--out", str(tmp_path / "pred")]) == 0
    np.testing.assert_allclose(tifffile.imread(tmp_path / "pred" / "cell.tif"), expected[0], atol=1e-6, rtol=0)
    tifffile.imwrite(tmp_path / "raws" / "other.tif", raw[0, 0])
    assert main(["predict", str(package), "--input", f"raw={tmp_path / 'raws'}", "--input", f"mask={tmp_path / 'masks'}",
                 "--out", str(tmp_path / "pred2")]) == 2
    assert "other.tif" in capsys.readouterr().err


def test_auto_mode_tiles_when_the_image_would_not_fit(packages: dict[str, Path], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from gvtnet_zoo.predict import memory, run

    tifffile.imwrite(tmp_path / "a.tif", _from_package(packages["2d"], "test_input.npy")[0, 0])
    calls: list[str] = []
    for name in ("_predict_tiled", "_predict_global"):
        real = getattr(run, name)
        monkeypatch.setattr(run, name, lambda *a, name=name, real=real: calls.append(name) or real(*a))
    assert main(["predict", str(packages["2d"]), str(tmp_path / "a.tif"), "--out", str(tmp_path / "o1")]) == 0
    assert calls == []  # small enough: whole
    monkeypatch.setattr(memory, "BYTES_PER_VOXEL", 10**15)
    assert main(["predict", str(packages["2d"]), str(tmp_path / "a.tif"), "--out", str(tmp_path / "o2")]) == 0
    assert calls == ["_predict_global"]  # a GVTNet's tiles: with global context (issue 33 item 5)
    whole = tifffile.imread(tmp_path / "o1" / "a.tif")
    np.testing.assert_allclose(tifffile.imread(tmp_path / "o2" / "a.tif"), whole, atol=1e-5 * float(np.ptp(whole)))


def test_pixel_size_needs_a_model_that_declares_one_and_an_image_in_memory(packages: dict[str, Path], tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((64, 64), np.float32))
    for extra, expected in (([], "declares no pixel size"), (["--out-format", "ome-zarr"], "resizes images read into memory")):
        assert main(["predict", str(packages["2d"]), str(tmp_path / "a.tif"), "--out", str(tmp_path / "out"),
                     "--pixel-size", "0.1", *extra]) == 2
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
