"""Packages in other tools' styles, built with bioimageio.spec's own API for the prediction tests."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch


def torchscript_weights(net: torch.nn.Module, folder: Path) -> object:
    from bioimageio.spec.model import v0_5 as bio

    torch.jit.script(net.eval()).save(str(folder / "w.pt"))
    return bio.WeightsDescr(torchscript=bio.TorchscriptWeightsDescr(source=folder / "w.pt",
                                                                     pytorch_version=bio.Version("2.0")))


def single_io_package(folder: Path, net: torch.nn.Module, x: np.ndarray, *, size: int | tuple[int, int],
                      weights: Optional[object] = None, output_scale: float = 1.0, offset: int = 0, halo: int = 0,
                      channels: int = 1, name: str = "other", space: str = "yx",
                      preprocessing: Optional[list] = None, postprocessing: Optional[list] = None) -> Path:
    """A package: input (B, channels, *space) of fixed ``size`` or (min, step) on every space axis; output
    (B, 1, *space) sized by reference to the input (x input scale / ``output_scale`` + ``offset``), with ``halo``;
    test tensors from ``net`` (on the raw test input: give ``preprocessing`` only where that does not matter)."""
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5 as bio

    with torch.no_grad():
        y = net.eval()(torch.from_numpy(x)).numpy()
    np.save(folder / "in.npy", x)
    np.save(folder / "out.npy", y)
    (folder / "README.md").write_text("# other\n")
    space_size = size if isinstance(size, int) else bio.ParameterizedSize(min=size[0], step=size[1])
    reference = {a: bio.SizeReference(tensor_id=bio.TensorId("raw"), axis_id=bio.AxisId(a), offset=offset) for a in space}
    output_axes = [bio.SpaceOutputAxisWithHalo(id=bio.AxisId(a), halo=halo, size=reference[a], scale=output_scale)
                   if halo else bio.SpaceOutputAxis(id=bio.AxisId(a), size=reference[a], scale=output_scale) for a in space]
    descr = bio.ModelDescr(
        name=name, description="not made by gvtnet-zoo", authors=[bio.Author(name="Someone Else")],
        cite=[bio.CiteEntry(text="none", doi=bio.Doi("10.1038/s42256-020-00283-x"))], license=bio.LicenseId("MIT"),
        documentation=bio.FileDescr(source=folder / "README.md"),
        inputs=[bio.InputTensorDescr(
            id=bio.TensorId("raw"), test_tensor=bio.FileDescr(source=folder / "in.npy"),
            axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=[bio.Identifier(f"c{i}") for i in range(channels)]),
                  *[bio.SpaceInputAxis(id=bio.AxisId(a), size=space_size) for a in space]],
            preprocessing=preprocessing or [])],
        outputs=[bio.OutputTensorDescr(
            id=bio.TensorId("out"), test_tensor=bio.FileDescr(source=folder / "out.npy"),
            axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=[bio.Identifier("p")]), *output_axes],
            postprocessing=postprocessing or [])],
        weights=weights or torchscript_weights(net, folder),
    )
    return Path(save_bioimageio_package(descr, output_path=folder / f"{name}.zip"))  # name: 5+ characters


class _TwoInputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, raw: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.conv(raw) * mask


def two_input_package(folder: Path) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    """A masked filter with inputs 'raw' and 'mask' (b, c, y, x; multiples of 8), output 'out'; TorchScript.
    Returns (package, raw, mask, expected output), each array (1, 1, 48, 40)."""
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5 as bio

    torch.manual_seed(0)
    net = _TwoInputs().eval()
    rng = np.random.default_rng(2)
    raw = rng.random((1, 1, 48, 40)).astype(np.float32)
    mask = (rng.random((1, 1, 48, 40)) > 0.5).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(raw), torch.from_numpy(mask)).numpy()
    for name, array in (("raw", raw), ("mask", mask), ("out", expected)):
        np.save(folder / f"{name}.npy", array)
    (folder / "README.md").write_text("# two inputs\n")

    def space(kind: type) -> list:
        return [kind(id=bio.AxisId(a), size=bio.ParameterizedSize(min=8, step=8)) for a in "yx"]

    def axes(name: str) -> list:
        return [bio.BatchAxis(), bio.ChannelAxis(channel_names=[bio.Identifier(name)])]

    descr = bio.ModelDescr(
        name="two inputs", description="masked filter", authors=[bio.Author(name="Someone Else")],
        cite=[bio.CiteEntry(text="none", doi=bio.Doi("10.1038/s42256-020-00283-x"))], license=bio.LicenseId("MIT"),
        documentation=bio.FileDescr(source=folder / "README.md"),
        inputs=[bio.InputTensorDescr(id=bio.TensorId(n), test_tensor=bio.FileDescr(source=folder / f"{n}.npy"),
                                     axes=axes(n) + space(bio.SpaceInputAxis)) for n in ("raw", "mask")],
        outputs=[bio.OutputTensorDescr(
            id=bio.TensorId("out"), test_tensor=bio.FileDescr(source=folder / "out.npy"),
            axes=axes("o") + [bio.SpaceOutputAxis(id=bio.AxisId(a), size=bio.SizeReference(
                tensor_id=bio.TensorId("raw"), axis_id=bio.AxisId(a))) for a in "yx"])],
        weights=torchscript_weights(net, folder),
    )
    return Path(save_bioimageio_package(descr, output_path=folder / "two.zip")), raw, mask, expected


class TinyUNet(torch.nn.Module):
    """One pooling level and a skip connection: sizes must be even (an odd one fails in torch.cat, as CAREamics'
    U-Nets fail on sizes off their grid)."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        conv = torch.nn.Conv2d if dims == 2 else torch.nn.Conv3d
        self.encode, self.middle, self.decode = conv(1, 4, 3, padding=1), conv(4, 4, 3, padding=1), conv(8, 1, 3, padding=1)
        self.pool = torch.nn.MaxPool2d(2) if dims == 2 else torch.nn.MaxPool3d(2)
        self.up = torch.nn.Upsample(scale_factor=2.0, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = torch.relu(self.encode(x))
        return self.decode(torch.cat([skip, self.up(torch.relu(self.middle(self.pool(skip))))], dim=1))


def careamics_style_package(folder: Path, space: str, size: tuple[int, ...], onnx: bool = False) -> tuple[Path, torch.nn.Module]:
    """A package as CAREamics 0.3.5 exports one: input and output axes both of the test image's fixed ``size``
    (ints, no size reference, no halo), fixed mean/std normalization in and its inverse out; TorchScript weights
    (and ONNX with fixed dimensions, as `bioimageio add-weights` converts them, when ``onnx``)."""
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5 as bio

    torch.manual_seed(3)
    net = TinyUNet(len(space)).eval()
    x = np.random.default_rng(4).normal(100, 20, size=(1, 1, *size)).astype(np.float32)
    with torch.no_grad():
        y = (net(torch.from_numpy((x - 100) / 20)) * 20 + 100).numpy()
    np.save(folder / "in.npy", x)
    np.save(folder / "out.npy", y)
    (folder / "README.md").write_text("# careamics style\n")
    weights = torchscript_weights(net, folder)
    if onnx:
        torch.onnx.export(net, torch.from_numpy(x), str(folder / "w.onnx"), dynamo=False, opset_version=15,
                          input_names=["input"], output_names=["prediction"])
        weights = bio.WeightsDescr(torchscript=weights.torchscript,
                                   onnx=bio.OnnxWeightsDescr(source=folder / "w.onnx", opset_version=15))

    def axes(kind: type) -> list:
        return [bio.BatchAxis(), bio.ChannelAxis(channel_names=[bio.Identifier("channel")]),
                *[kind(id=bio.AxisId(a), size=n) for a, n in zip(space, size)]]

    norm = bio.FixedZeroMeanUnitVarianceDescr(kwargs=bio.FixedZeroMeanUnitVarianceAlongAxisKwargs(
        mean=[100.0], std=[20.0], axis=bio.AxisId("channel")))
    inverse = bio.FixedZeroMeanUnitVarianceDescr(kwargs=bio.FixedZeroMeanUnitVarianceAlongAxisKwargs(
        mean=[-5.0], std=[0.05 - 1e-6], axis=bio.AxisId("channel")))
    descr = bio.ModelDescr(
        name="careamics style", description="fixed sizes in and out", authors=[bio.Author(name="Someone Else")],
        cite=[bio.CiteEntry(text="none", doi=bio.Doi("10.1038/s42256-020-00283-x"))], license=bio.LicenseId("MIT"),
        documentation=bio.FileDescr(source=folder / "README.md"),
        inputs=[bio.InputTensorDescr(id=bio.TensorId("input"), test_tensor=bio.FileDescr(source=folder / "in.npy"),
                                     axes=axes(bio.SpaceInputAxis), preprocessing=[norm])],
        outputs=[bio.OutputTensorDescr(id=bio.TensorId("prediction"), test_tensor=bio.FileDescr(source=folder / "out.npy"),
                                       axes=axes(bio.SpaceOutputAxis), postprocessing=[inverse])],
        weights=weights,
    )
    return Path(save_bioimageio_package(descr, output_path=folder / "careamics.zip")), net
