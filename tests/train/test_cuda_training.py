"""Training on a CUDA GPU with mixed precision and channels-last (skipped where no GPU exists)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gvtnet_zoo.cli import main

from .conftest import tiny_args

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("amp, channels_last", [("off", False), ("bf16", True), ("fp16", False), ("fp16", True)])
def test_trains_on_cuda(denoise_2d: Path, tmp_path: Path, amp: str, channels_last: bool) -> None:
    run = tmp_path / "run"
    code = main(["train", "demo-gvtnet-label-free-2d", "--data", str(denoise_2d / "train"), "--out", str(run),
                 "--device", "cuda", *tiny_args(f"train.amp={amp}", f"train.channels_last={str(channels_last).lower()}")])
    assert code == 0
    checkpoint = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert checkpoint["step"] == 6
    assert all(torch.isfinite(v).all() for v in checkpoint["model"].values() if v.is_floating_point())
