"""Zoo models at every image size: fixed-size inputs tiled and padded, format 0.4 brought to 0.5 and tiled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml
import zarr
from torch import nn

from gvtnet_zoo.cli import main

from .zoo_builders import single_io_package

HALO = 8  # declared; the network's receptive-field radius is 2


def _conv(kernel: int = 5) -> nn.Conv2d:
    """The same seeded convolution each call; it reaches kernel // 2 voxels (zero padding at the borders)."""
    torch.manual_seed(0)
    return nn.Conv2d(1, 1, kernel, padding=kernel // 2).eval()


def _test_input() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(1, 1, 64, 64)).astype(np.float32)


def _fixed_size_package(tmp: Path) -> Path:
    """Format 0.5 with fixed 64 x 64 inputs, as CAREamics exports its models, and a declared halo."""
    return single_io_package(tmp, _conv(), _test_input(), size=64, halo=HALO, name="fixed")


def _format_04_package(tmp: Path) -> Path:
    """The same network described in format 0.4 (parameterized 32 + 8n inputs, a halo of 8), as a folder."""
    net, x = _conv(), _test_input()
    torch.jit.script(net).save(str(tmp / "w.pt"))
    np.save(tmp / "in.npy", x)
    with torch.no_grad():
        np.save(tmp / "out.npy", net(torch.from_numpy(x)).numpy())
    (tmp / "README.md").write_text("# other\n")
    rdf = {
        "format_version": "0.4.10", "type": "model", "name": "conv 0.4", "description": "format 0.4",
        "authors": [{"name": "Someone Else"}], "cite": [{"text": "none", "doi": "10.1038/s42256-020-00283-x"}],
        "license": "MIT", "documentation": "README.md", "timestamp": "2024-01-01T00:00:00",
        "test_inputs": ["in.npy"], "test_outputs": ["out.npy"],
        "inputs": [{"name": "raw", "axes": "bcyx", "data_type": "float32", "data_range": [-1e9, 1e9],
                    "shape": {"min": [1, 1, 32, 32], "step": [0, 0, 8, 8]}}],
        "outputs": [{"name": "out", "axes": "bcyx", "data_type": "float32", "data_range": [-1e9, 1e9],
                     "shape": {"reference_tensor": "raw", "scale": [1, 1, 1, 1], "offset": [0, 0, 0, 0]},
                     "halo": [0, 0, HALO, HALO]}],
        "weights": {"torchscript": {"source": "w.pt", "pytorch_version": "2.0"}},
    }
    (tmp / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    return tmp / "rdf.yaml"


def _reference(image: np.ndarray, grid: int = 1) -> np.ndarray:
    """The network applied to the whole image at once, in PyTorch (zero padding at the borders), the image first
    mirrored on its far side up to a multiple of ``grid`` beyond a fixed size of 64 (as tiles of 64 see it)."""
    padded = [64 + -(-(s - 64) // grid) * grid if s > 64 else s for s in image.shape]
    mirrored = np.pad(image, [(0, p - s) for s, p in zip(image.shape, padded)], mode="symmetric")
    with torch.no_grad():
        out = _conv()(torch.from_numpy(mirrored[None, None].astype(np.float32))).numpy()[0]
    return out[(slice(None), *[slice(0, s) for s in image.shape])]


def _predict(model: Path, image: np.ndarray, tmp: Path, name: str, *flags: str) -> np.ndarray:
    tifffile.imwrite(tmp / f"{name}.tif", image.astype(np.float32))
    assert main(["predict", str(model), str(tmp / f"{name}.tif"), "--out", str(tmp / f"out-{name}"), *flags]) == 0
    return tifffile.imread(tmp / f"out-{name}" / f"{name}.tif")


def _predict_streamed(model: Path, image: np.ndarray, tmp: Path, name: str, *flags: str) -> np.ndarray:
    """The same image streamed to OME-Zarr tile by tile (predict/stream.py)."""
    tifffile.imwrite(tmp / f"{name}.tif", image.astype(np.float32))
    assert main(["predict", str(model), str(tmp / f"{name}.tif"), "--out", str(tmp / f"zarr-{name}"),
                 "--out-format", "ome-zarr", *flags]) == 0
    return zarr.open_group(str(tmp / f"zarr-{name}" / f"{name}.pred.ome.zarr"), mode="r")["0"][:]


@pytest.mark.parametrize("shape", [(160, 144), (128, 128), (150, 131)])
def test_fixed_size_models_are_tiled_over_larger_images(tmp_path: Path, shape: tuple[int, int],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    package = _fixed_size_package(tmp_path)
    image = np.random.default_rng(2).normal(size=shape).astype(np.float32)
    produced = _predict(package, image, tmp_path, "big")  # auto: tiles of the fixed size, starts on its grid of 16
    expected = _reference(image, grid=16)
    assert produced.shape == expected.shape == (1, *shape)
    # a halo (8) wider than the network's reach (2): the tiles agree with the whole image everywhere
    np.testing.assert_allclose(produced, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(_predict_streamed(package, image, tmp_path, "big"), expected, atol=1e-5, rtol=0)
    capsys.readouterr()
    assert main(["predict", str(package), str(tmp_path / "big.tif"), "--out", str(tmp_path / "w"), "--whole"]) == 2
    assert "fixed size" in capsys.readouterr().err


def test_images_smaller_than_the_fixed_size_are_mirrored_and_cropped_back(tmp_path: Path) -> None:
    package = _fixed_size_package(tmp_path)
    image = np.random.default_rng(3).normal(size=(40, 50)).astype(np.float32)
    produced = _predict(package, image, tmp_path, "small")
    expected = _reference(image)
    assert produced.shape == (1, 40, 50)
    # the padding is a mirror on the far sides, not zeros: equal away from those two borders
    np.testing.assert_allclose(produced[:, :-2, :-2], expected[:, :-2, :-2], atol=1e-5, rtol=0)


def test_format_04_models_are_padded_and_tiled_like_format_05(tmp_path: Path) -> None:
    rdf = _format_04_package(tmp_path)
    odd = np.random.default_rng(4).normal(size=(70, 66)).astype(np.float32)  # no multiple of the step 8
    whole = _predict(rdf, odd, tmp_path, "odd", "--whole")
    assert whole.shape == (1, 70, 66)
    np.testing.assert_allclose(whole[:, :-2, :-2], _reference(odd)[:, :-2, :-2], atol=1e-5, rtol=0)
    big = np.random.default_rng(5).normal(size=(160, 152)).astype(np.float32)
    tiled = _predict(rdf, big, tmp_path, "big", "--tile", "64,64")
    np.testing.assert_allclose(tiled, _reference(big), atol=1e-5, rtol=0)


class _Half(nn.Module):
    """Output at half resolution: a 3x3 convolution, then 2x2 average pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(x))


class _Up4Valid(nn.Module):
    """Output 4x up-sampled, then a 'valid' 3x3 convolution: 4 n - 2 voxels (an offset of -2)."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=4.0, mode="nearest")
        self.conv = nn.Conv2d(1, 1, 3, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.up(x))


@pytest.mark.parametrize("kind", ["half", "up4"])
@pytest.mark.parametrize("shape", [(64, 64), (128, 96), (75, 61)])
def test_outputs_at_another_resolution_are_tiled_in_output_coordinates(tmp_path: Path, kind: str,
                                                                       shape: tuple[int, int]) -> None:
    torch.manual_seed(0)
    net, scale, offset, halo = (_Half(), 2.0, 0, 2) if kind == "half" else (_Up4Valid(), 0.25, -2, 4)
    x = np.random.default_rng(6).normal(size=(1, 1, 64, 64)).astype(np.float32)
    package = single_io_package(tmp_path, net, x, size=(32, 8), output_scale=scale, offset=offset, halo=halo,
                                name=f"{kind}-resolution")
    image = np.random.default_rng(7).normal(size=shape).astype(np.float32)
    whole = _predict(package, image, tmp_path, "w", "--whole")
    tiled = _predict(package, image, tmp_path, "t", "--tile", "48,48")
    expected_size = [int(n / scale) + offset for n in shape]
    assert whole.shape == tiled.shape == (1, *expected_size)
    span = float(np.ptp(whole))
    # the far borders of an invalid size see mirrored padding in both; everything agrees
    np.testing.assert_allclose(tiled, whole, atol=1e-4 * span, rtol=0)
    streamed = _predict_streamed(package, image, tmp_path, "s", "--tile", "48,48")
    np.testing.assert_allclose(streamed, whole, atol=1e-5 * span, rtol=0)


def test_a_halo_too_small_is_measured_once_and_override_removes_the_seams(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The package states no halo: tiles keep 1/8 of their length (8 of 64) for it; the network reaches 12, so
    the seam check warns once, and --halo 16 removes the seams."""
    x = np.random.default_rng(8).normal(size=(1, 1, 64, 64)).astype(np.float32)
    package = single_io_package(tmp_path, _conv(25), x, size=(32, 8), name="no-halo")  # reaches 12, declares none
    image = np.random.default_rng(9).normal(size=(200, 200)).astype(np.float32)
    whole = _predict(package, image, tmp_path, "w", "--whole")
    capsys.readouterr()
    tiled = _predict(package, image, tmp_path, "t", "--tile", "64,64")
    out = capsys.readouterr().out
    assert out.count("warning:") == 1 and "beyond the halo of 8" in out and "larger --halo along" in out
    assert np.abs(tiled - whole).max() > 1e-3 * np.ptp(whole)  # the seams the warning is about
    fixed = _predict(package, image, tmp_path, "h", "--tile", "64,64", "--halo", "16,16")
    assert "warning:" not in capsys.readouterr().out
    np.testing.assert_allclose(fixed, whole, atol=1e-5 * np.ptp(whole), rtol=0)


def test_fixed_size_without_a_halo_is_tiled_with_the_default_halo_and_equals_the_whole_image(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No halo declared: tiles of the fixed 64 keep 16 voxels each side (1/8 of it, rounded up to the grid of 16
    their starts keep), more than the 5 x 5 convolution's reach of 2, so the result is the whole image's (mirrored
    up to 128 on the far side, as the tiles see it), and the seam check is quiet."""
    x = np.random.default_rng(10).normal(size=(1, 1, 64, 64)).astype(np.float32)
    package = single_io_package(tmp_path, _conv(), x, size=64, name="no-halo-fixed")
    image = np.random.default_rng(11).normal(size=(120, 120)).astype(np.float32)
    capsys.readouterr()
    produced = _predict(package, image, tmp_path, "img")[0]
    assert "warning:" not in capsys.readouterr().out
    np.testing.assert_allclose(produced, _reference(image, grid=16)[0], atol=1e-5, rtol=0)


def test_fixed_size_3d_inputs_are_tiled_in_z_y_and_x(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = nn.Conv3d(1, 1, 3, padding=1)
    x = np.random.default_rng(12).normal(size=(1, 1, 32, 32, 32)).astype(np.float32)
    package = single_io_package(tmp_path, net, x, size=32, halo=4, name="fixed-3d", space="zyx")
    image = np.random.default_rng(13).normal(size=(40, 70, 50)).astype(np.float32)
    produced = _predict(package, image, tmp_path, "vol")
    mirrored = np.pad(image, [(0, 0), (0, 2), (0, 6)], mode="symmetric")  # up to 32 + a multiple of its grid of 8
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(mirrored[None, None])).numpy()[0][:, :, :70, :50]
    assert produced.shape == (1, 40, 70, 50)
    np.testing.assert_allclose(produced, expected, atol=1e-5, rtol=0)


class _TwoInTwoOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 1, 5, padding=2)
        self.b = nn.Conv2d(1, 1, 5, padding=2)

    def forward(self, raw: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.a(raw) * mask, self.b(raw + mask)


def _two_in_two_out_package(tmp: Path, halo: int) -> tuple[Path, _TwoInTwoOut]:
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5 as bio

    torch.manual_seed(0)
    net = _TwoInTwoOut().eval()
    rng = np.random.default_rng(14)
    inputs = {"raw": rng.normal(size=(1, 1, 64, 64)).astype(np.float32),
              "mask": (rng.random((1, 1, 64, 64)) > 0.5).astype(np.float32)}
    with torch.no_grad():
        outputs = dict(zip(("first", "second"), net(*(torch.from_numpy(v) for v in inputs.values()))))
    for name, array in [*inputs.items(), *((n, t.numpy()) for n, t in outputs.items())]:
        np.save(tmp / f"{name}.npy", array)
    torch.jit.script(net).save(str(tmp / "w.pt"))
    (tmp / "README.md").write_text("# two in, two out\n")

    def channel(name: str) -> list:
        return [bio.BatchAxis(), bio.ChannelAxis(channel_names=[bio.Identifier(name)])]

    def space(a: str) -> object:
        size = bio.SizeReference(tensor_id=bio.TensorId("raw"), axis_id=bio.AxisId(a))
        return bio.SpaceOutputAxisWithHalo(id=bio.AxisId(a), halo=halo, size=size) if halo else \
            bio.SpaceOutputAxis(id=bio.AxisId(a), size=size)

    descr = bio.ModelDescr(
        name="two in two out", description="two inputs, two outputs", authors=[bio.Author(name="Someone Else")],
        cite=[bio.CiteEntry(text="none", doi=bio.Doi("10.1038/s42256-020-00283-x"))], license=bio.LicenseId("MIT"),
        documentation=bio.FileDescr(source=tmp / "README.md"),
        inputs=[bio.InputTensorDescr(id=bio.TensorId(n), test_tensor=bio.FileDescr(source=tmp / f"{n}.npy"),
                                     axes=channel(n) + [bio.SpaceInputAxis(id=bio.AxisId(a), size=bio.ParameterizedSize(
                                         min=32, step=8)) for a in "yx"]) for n in inputs],
        outputs=[bio.OutputTensorDescr(id=bio.TensorId(n), test_tensor=bio.FileDescr(source=tmp / f"{n}.npy"),
                                       axes=channel(n) + [space(a) for a in "yx"]) for n in outputs],
        weights=bio.WeightsDescr(torchscript=bio.TorchscriptWeightsDescr(source=tmp / "w.pt",
                                                                           pytorch_version=bio.Version("2.0"))),
    )
    return Path(save_bioimageio_package(descr, output_path=tmp / "two.zip")), net


@pytest.mark.parametrize("shape", [(64, 64), (128, 128), (101, 93)])
def test_two_inputs_and_two_outputs_are_tiled_like_one(tmp_path: Path, shape: tuple[int, int],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    package, net = _two_in_two_out_package(tmp_path, halo=4)
    rng = np.random.default_rng(15)
    raw, mask = rng.normal(size=shape).astype(np.float32), (rng.random(shape) > 0.5).astype(np.float32)
    for folder, array in (("raw", raw), ("mask", mask)):
        (tmp_path / folder).mkdir()
        tifffile.imwrite(tmp_path / folder / "cell.tif", array)
    results = {}
    for mode, flags in (("whole", ["--whole"]), ("tiles", ["--tile", "48,48"])):
        assert main(["predict", str(package), "--input", f"raw={tmp_path / 'raw'}", "--input", f"mask={tmp_path / 'mask'}",
                     "--out", str(tmp_path / mode), *flags]) == 0
        results[mode] = [tifffile.imread(tmp_path / mode / o / "cell.tif") for o in ("first", "second")]
    assert "warning:" not in capsys.readouterr().out
    for whole, tiled in zip(results["whole"], results["tiles"]):
        assert whole.shape == tiled.shape == (1, *shape)
        np.testing.assert_allclose(tiled, whole, atol=1e-4 * np.ptp(whole), rtol=0)
    if shape == (128, 128):  # the network applied to the whole image in PyTorch: the same
        with torch.no_grad():
            first, _ = net(torch.from_numpy(raw[None, None]), torch.from_numpy(mask[None, None]))
        np.testing.assert_allclose(results["tiles"][0], first.numpy()[0], atol=1e-5, rtol=0)


def test_a_two_input_model_without_a_halo_gets_the_default_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No halo declared: tiles of 64 keep 8 voxels each side for the 5 x 5 convolutions' reach of 2: the two
    inputs tiled alike give the whole image's outputs, and the seam check (it compares them) is quiet."""
    package, _ = _two_in_two_out_package(tmp_path, halo=0)
    rng = np.random.default_rng(16)
    for folder in ("raw", "mask"):
        (tmp_path / folder).mkdir()
        tifffile.imwrite(tmp_path / folder / "cell.tif", rng.normal(size=(128, 128)).astype(np.float32))
    capsys.readouterr()
    for mode, flags in (("t", ["--tile", "64,64"]), ("w", ["--whole"])):
        assert main(["predict", str(package), "--input", f"raw={tmp_path / 'raw'}", "--input",
                     f"mask={tmp_path / 'mask'}", "--out", str(tmp_path / mode), *flags]) == 0
    assert "warning:" not in capsys.readouterr().out
    for output in ("first", "second"):
        whole, tiled = (tifffile.imread(tmp_path / m / output / "cell.tif") for m in ("w", "t"))
        np.testing.assert_allclose(tiled, whole, atol=1e-5 * np.ptp(whole), rtol=0)
