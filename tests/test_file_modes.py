"""Outputs written atomically end with the mode a plain write would have had (issue 33 item 4): a colleague on a
shared server can read predictions, metrics and checkpoints under the usual umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import tifffile
import torch

from gvtnet_zoo.atomic import write_text_atomically
from gvtnet_zoo.cli import main


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_atomic_write_gets_the_umasks_mode(tmp_path: Path, umask_022: None) -> None:
    write_text_atomically(tmp_path / "a.txt", "x")
    (tmp_path / "plain.txt").write_text("x")
    assert _mode(tmp_path / "a.txt") == _mode(tmp_path / "plain.txt") == 0o644


def test_prediction_tiffs_are_readable_by_others(tmp_path: Path, umask_022: None) -> None:
    from tests.predict.zoo_builders import single_io_package

    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    x = np.random.default_rng(0).normal(size=(1, 1, 16, 16)).astype(np.float32)
    package = single_io_package(tmp_path, net, x, size=(8, 8), name="conv2d")
    tifffile.imwrite(tmp_path / "img.tif", np.ones((16, 16), np.float32), metadata={"axes": "YX"})
    assert main(["predict", str(package), str(tmp_path / "img.tif"), "--out", str(tmp_path / "out")]) == 0
    assert _mode(tmp_path / "out" / "img.tif") == 0o644
