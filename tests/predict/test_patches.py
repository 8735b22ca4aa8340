"""--patches: the original GVTNets' cropped prediction, against a numpy reimplementation of its rule (written
here from unet/data/pred_utils.py's behaviour: normalize the whole image, pad it to the step, patches of the
size rounded up to the step, a start every size - overlap and the last flush with the end, outputs averaged)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from gvtnet_zoo.cli import main

from .zoo_builders import single_io_package, torchscript_weights

STEP = 4  # every test package: ParameterizedSize(min=STEP, step=STEP), so valid sizes are multiples of STEP


class MeanShiftedConv(nn.Module):
    """A convolution plus the mean of its whole input: not translation-local, so patches differ from the whole.
    ``project``: a 3D input's z is averaged away (a 3D-to-2D projection)."""

    def __init__(self, dims: int, project: bool = False) -> None:
        super().__init__()
        self.conv = (nn.Conv2d if dims == 2 else nn.Conv3d)(1, 1, 3, padding=1)
        self.dims, self.project = dims, project

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.flatten(2).mean(-1)
        for _ in range(self.dims):
            mean = mean.unsqueeze(-1)
        y = self.conv(x) + mean
        return y.mean(2) if self.project else y


def _net(dims: int, project: bool = False) -> nn.Module:
    torch.manual_seed(dims + 10 * project)
    return MeanShiftedConv(dims, project).eval()


def _zmuv(space: str) -> list:
    from bioimageio.spec.model import v0_5 as bio

    return [bio.ZeroMeanUnitVarianceDescr(kwargs=bio.ZeroMeanUnitVarianceKwargs(
        axes=[bio.AxisId(a) for a in space], eps=1e-6))]


def _projection_package(folder: Path, net: nn.Module) -> Path:
    """Input (b, c, z, y, x), z of any size, y and x multiples of STEP; output (b, c, y, x) on the input's grid."""
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5 as bio

    x = np.random.default_rng(0).random((1, 1, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        np.save(folder / "out.npy", net(torch.from_numpy(x)).numpy())
    np.save(folder / "in.npy", x)
    (folder / "README.md").write_text("# projection\n")
    size = {"z": bio.ParameterizedSize(min=1, step=1), "y": bio.ParameterizedSize(min=STEP, step=STEP),
            "x": bio.ParameterizedSize(min=STEP, step=STEP)}
    ref = lambda a: bio.SizeReference(tensor_id=bio.TensorId("raw"), axis_id=bio.AxisId(a))  # noqa: E731
    descr = bio.ModelDescr(
        name="projection", description="3D to 2D", authors=[bio.Author(name="Someone Else")],
        cite=[bio.CiteEntry(text="none", doi=bio.Doi("10.1038/s42256-020-00283-x"))], license=bio.LicenseId("MIT"),
        documentation=bio.FileDescr(source=folder / "README.md"),
        inputs=[bio.InputTensorDescr(
            id=bio.TensorId("raw"), test_tensor=bio.FileDescr(source=folder / "in.npy"),
            axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=[bio.Identifier("c0")]),
                  *[bio.SpaceInputAxis(id=bio.AxisId(a), size=size[a]) for a in "zyx"]],
            preprocessing=_zmuv("zyx"))],
        outputs=[bio.OutputTensorDescr(
            id=bio.TensorId("out"), test_tensor=bio.FileDescr(source=folder / "out.npy"),
            axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=[bio.Identifier("p")]),
                  *[bio.SpaceOutputAxis(id=bio.AxisId(a), size=ref(a)) for a in "yx"]])],
        weights=torchscript_weights(net, folder))
    return Path(save_bioimageio_package(descr, output_path=folder / "projection.zip"))


@pytest.fixture(scope="module")
def patch_packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, nn.Module]]:
    """2D and 3D packages (whole-image z-scoring in, a sigmoid out) and a 3D-to-2D projection package."""
    from bioimageio.spec.model import v0_5 as bio

    made = {}
    for key, space in (("2d", "yx"), ("3d", "zyx")):
        folder = tmp_path_factory.mktemp(key)
        net = _net(len(space))
        x = np.random.default_rng(1).random((1, 1, *[8] * len(space))).astype(np.float32)
        made[key] = (single_io_package(folder, net, x, size=(STEP, STEP), space=space, name=f"patch{key}",
                                       preprocessing=_zmuv(space), postprocessing=[bio.SigmoidDescr()]), net)
    net = _net(3, project=True)
    made["projection"] = (_projection_package(tmp_path_factory.mktemp("projection"), net), net)
    return made


def _original_rule(image: np.ndarray, net: nn.Module, patch: list[int], overlap: list[int], whole_axes: int = 0,
                   sigmoid: bool = True) -> np.ndarray:
    """The original's cropped prediction of a (space...) image, written independently of gvtnet_zoo: z-score the
    whole image, pad its far side (mirroring, as a non-gvtnet-zoo package is padded) to a multiple of STEP, patches of
    ceil(p / STEP) * STEP (at most the padded image) starting every size - overlap with the last flush with the end,
    average the raw outputs, postprocess, crop. The first ``whole_axes`` axes are dropped by the net (never cut)."""
    normalized = (image - image.mean()) / (image.std() + 1e-6)
    cut = image.shape[whole_axes:]
    padded_shape = [-(-s // STEP) * STEP for s in cut]
    padded = np.pad(normalized, [(0, 0)] * whole_axes + [(0, p - s) for p, s in zip(padded_shape, cut)],
                    mode="symmetric")
    sizes = [min(-(-p // STEP) * STEP, s) for p, s in zip(patch, padded_shape)]
    starts = [list(range(0, s - n, n - o)) + [s - n] for s, n, o in zip(padded_shape, sizes, overlap)]
    total, count = np.zeros(padded_shape), np.zeros(padded_shape)
    for corner in np.stack(np.meshgrid(*starts, indexing="ij"), -1).reshape(-1, len(cut)):
        region = tuple(slice(c, c + n) for c, n in zip(corner, sizes))
        with torch.no_grad():
            out = net(torch.from_numpy(padded[(Ellipsis, *region)][None, None].astype(np.float32))).numpy()[0, 0]
        total[region] += out
        count[region] += 1
    averaged = total / count
    result = 1 / (1 + np.exp(-averaged)) if sigmoid else averaged
    return result[tuple(slice(0, s) for s in cut)]


def _predict(package: Path, image: np.ndarray, tmp_path: Path, *flags: str) -> np.ndarray:
    np.save(tmp_path / "image.npy", image[None, None])  # every model axis: b, c, space...
    out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
    assert main(["predict", str(package), str(tmp_path / "image.npy"), "--out", str(out), "--device", "cpu",
                 *flags]) == 0
    return np.load(out / "image.npy")[0, 0]


@pytest.mark.parametrize("shape, patches, overlap", [
    ((37, 29), "12,8", "4,3"),  # several patches each way, overlap > 0, odd sizes
    ((37, 29), "10,6", "0,0"),  # rounded up to 12,8; overlap 0
    ((37, 29), "37,29", "8,8"),  # equal to the image: rounded to its padded size, one patch
    ((37, 29), "64,40", "8,8"),  # larger than the image: one patch, never padded on its own
    ((37, 29), "64,8", "0,5"),  # larger in y, smaller in x
    ((40, 32), "40,32", "8,8"),  # a valid image: equal to it, one patch
    ((40, 32), "16,16", "4,4"),  # a valid image: the last patch ends exactly at its end
])
def test_2d_patches_follow_the_original_rule(patch_packages: dict, tmp_path: Path, shape: tuple[int, int], patches: str,
                                             overlap: str) -> None:
    package, net = patch_packages["2d"]
    image = np.random.default_rng(5).normal(3, 2, shape).astype(np.float32)
    produced = _predict(package, image, tmp_path, "--patches", patches, "--overlap", overlap)
    expected = _original_rule(image, net, [int(v) for v in patches.split(",")], [int(v) for v in overlap.split(",")])
    assert produced.shape == shape
    np.testing.assert_allclose(produced, expected, atol=2e-5, rtol=0)


def test_several_patches_differ_from_the_whole_image_and_one_patch_equals_it(patch_packages: dict, tmp_path: Path) -> None:
    package, _ = patch_packages["2d"]
    image = np.random.default_rng(6).normal(3, 2, (37, 29)).astype(np.float32)
    whole = _predict(package, image, tmp_path, "--whole")
    several = _predict(package, image, tmp_path, "--patches", "12,8", "--overlap", "4,3")
    one = _predict(package, image, tmp_path, "--patches", "64,64")
    assert np.abs(several - whole).max() > 1e-3  # the net is not local: the test above can tell patches apart
    np.testing.assert_allclose(one, whole, atol=2e-5, rtol=0)


@pytest.mark.parametrize("shape, patches, overlap", [
    ((11, 21, 19), "8,12,8", "4,4,0"),  # several patches along every axis
    ((11, 21, 19), "16,8,24", "0,4,2"),  # z and x larger than the image
    ((11, 21, 19), "8,8", "3,5"),  # Y,X only: z stays whole
])
def test_3d_patches_follow_the_original_rule(patch_packages: dict, tmp_path: Path, shape: tuple[int, ...], patches: str,
                                             overlap: str) -> None:
    package, net = patch_packages["3d"]
    image = np.random.default_rng(7).normal(3, 2, shape).astype(np.float32)
    produced = _predict(package, image, tmp_path, "--patches", patches, "--overlap", overlap)
    size, over = [int(v) for v in patches.split(",")], [int(v) for v in overlap.split(",")]
    if len(size) == 2:  # z not named: one patch of the whole (padded) z
        size, over = [10**6, *size], [0, *over]
    expected = _original_rule(image, net, size, over)
    assert produced.shape == shape
    np.testing.assert_allclose(produced, expected, atol=2e-5, rtol=0)


@pytest.mark.parametrize("patches, overlap", [("2,12,8", "1,4,3"), ("12,8", "0,0")])
def test_projection_keeps_z_whole_in_every_patch(patch_packages: dict, tmp_path: Path, patches: str, overlap: str) -> None:
    package, net = patch_packages["projection"]
    image = np.random.default_rng(8).normal(3, 2, (5, 37, 29)).astype(np.float32)
    produced = _predict(package, image, tmp_path, "--patches", patches, "--overlap", overlap)
    yx = [int(v) for v in patches.split(",")][-2:]
    expected = _original_rule(image, net, yx, [int(v) for v in overlap.split(",")][-2:], whole_axes=1, sigmoid=False)
    assert produced.shape == (37, 29)
    np.testing.assert_allclose(produced, expected, atol=2e-5, rtol=0)


@pytest.mark.parametrize("flags, message", [
    (["--patches", "8,8", "--tile", "16,16"], "--patches and --tile are different modes"),
    (["--patches", "8,8", "--whole"], "--patches and --whole are different modes"),
    (["--patches", "8,8", "--global-context"], "--patches and --global-context are different modes"),
    (["--patches", "8,8", "--halo", "4,4"], "--patches and --halo are different modes"),
    (["--overlap", "4,4"], "--overlap applies to --patches"),
    (["--patches", "8,8", "--out-format", "ome-zarr"], "--patches runs in memory;"),
    (["--patches", "8,8", "--dask"], "--patches runs in memory;"),
    (["--patches", "6,8", "--overlap", "8,2"], "--overlap along y (8) must be smaller than the patch (8 after"),
    (["--patches", "8,8,8"], "--patches names axis z, which the model's input (y,x) does not have"),
    (["--patches", "8,x"], "--patches expects integers"),
])
def test_refusals_are_one_line(patch_packages: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str],
                               message: str) -> None:
    np.save(tmp_path / "image.npy", np.ones((1, 1, 16, 16), np.float32))
    code = main(["predict", str(patch_packages["2d"][0]), str(tmp_path / "image.npy"), "--out", str(tmp_path / "out"),
                 "--device", "cpu", *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_gvtnet_package_one_patch_is_the_whole_image_and_several_are_not(packages: dict[str, Path],
                                                                        tmp_path: Path) -> None:
    """gvtnet-zoo's own 2D GVTNet (attention over its whole input; sizes min + n * step, its own padding)."""
    image = np.random.default_rng(9).random((70, 66)).astype(np.float32)
    whole = _predict(packages["2d"], image, tmp_path, "--whole")
    one = _predict(packages["2d"], image, tmp_path, "--patches", "512,512", "--overlap", "64,64")
    several = _predict(packages["2d"], image, tmp_path, "--patches", "24,24", "--overlap", "8,8")
    assert several.shape == whole.shape == (70, 66) and np.isfinite(several).all()
    np.testing.assert_allclose(one, whole, atol=1e-5 * np.abs(whole).max(), rtol=0)
    assert np.abs(several - whole).max() > 1e-4 * np.abs(whole).max()
