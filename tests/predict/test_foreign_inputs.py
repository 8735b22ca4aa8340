"""Packages from other tools: channel axes of plain TIFFs, and state dicts whose code needs a missing library."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from torch import nn

from gvtnet_zoo.cli import main

from .zoo_builders import single_io_package

MISSING = "careamics_is_not_installed_here"


def _package(tmp: Path, state_dict_code: str | None = None) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 2-channel 2D package as other tools write it: TorchScript weights, or a state dict with ``state_dict_code``."""
    from bioimageio.spec.model import v0_5 as bio

    torch.manual_seed(0)
    net = nn.Conv2d(2, 1, 3, padding=1).eval()
    x = np.random.default_rng(1).normal(size=(1, 2, 96, 96)).astype(np.float32)
    with torch.no_grad():
        y = net(torch.from_numpy(x)).numpy()
    weights = None
    if state_dict_code is not None:
        torch.save(net.state_dict(), tmp / "w.pt")
        (tmp / "net.py").write_text(state_dict_code)
        (tmp / "environment.yaml").write_text(f"name: other\ndependencies:\n  - pip:\n    - {MISSING}\n")
        weights = bio.WeightsDescr(pytorch_state_dict=bio.PytorchStateDictWeightsDescr(
            source=tmp / "w.pt", pytorch_version=bio.Version("2.0"),
            architecture=bio.ArchitectureFromFileDescr(source=tmp / "net.py", callable=bio.Identifier("Net")),
            dependencies=bio.FileDescr(source=tmp / "environment.yaml")))
    package = single_io_package(tmp, net, x, size=(16, 8), weights=weights, channels=2, name="two channels")
    return package, x, y


def test_a_plain_tiff_whose_leading_axis_matches_the_channels_is_read_as_channels(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    package, x, y = _package(tmp_path)
    tifffile.imwrite(tmp_path / "sample.tif", x[0])  # 2 x 96 x 96, no axes metadata
    assert main(["predict", str(package), str(tmp_path / "sample.tif"), "--out", str(tmp_path / "pred")]) == 0
    assert "leading axis of 2 is read as the model's 2 channels" in capsys.readouterr().out
    np.testing.assert_allclose(tifffile.imread(tmp_path / "pred" / "sample.tif"), y[0], atol=1e-5, rtol=0)
    # --axes still decides: read as z, y, x the image does not fit the model
    assert main(["predict", str(package), str(tmp_path / "sample.tif"), "--out", str(tmp_path / "p2"), "--axes", "zyx"]) == 2


def test_a_state_dict_needing_a_missing_library_is_one_line_naming_it(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code = f"import {MISSING}\nimport torch\n\nclass Net(torch.nn.Module):\n    pass\n"
    package, x, _ = _package(tmp_path, code)
    tifffile.imwrite(tmp_path / "sample.tif", x[0])
    assert main(["predict", str(package), str(tmp_path / "sample.tif"), "--out", str(tmp_path / "pred")]) == 2
    assert "the package's file net.py" in capsys.readouterr().err  # refused by default, saying where the code is
    assert main(["predict", str(package), str(tmp_path / "sample.tif"), "--out", str(tmp_path / "pred"),
                 "--weight-format", "pytorch_state_dict"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"Python module '{MISSING}'" in err and "environment.yaml" in err
    assert not (tmp_path / "pred").exists()
