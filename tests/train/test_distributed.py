"""Data-parallel training under torchrun with two CPU processes (gloo)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import torch

from .conftest import tiny_args


def test_torchrun_two_cpu_processes(denoise_2d: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "gvtnet_zoo", "train", "demo-gvtnet-label-free-2d", "--data", str(denoise_2d / "train"),
               "--out", str(run), "--device", "cpu", *tiny_args("train.steps=4", "train.val_every=2")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    assert checkpoint["step"] == 4
    assert not any(key.startswith(("module.", "model.")) for key in checkpoint["model"])  # the unwrapped network
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows if r["train_loss"]] == [1, 2, 3, 4]  # one writer: rank 0
    assert (result.stdout + result.stderr).count("step 4: val loss") == 1
