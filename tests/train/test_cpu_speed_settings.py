"""What the CPU training step runs in: channels-last memory by default, bf16 autocast when asked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from gvtnet_zoo.cli import main
from gvtnet_zoo.models import build_model
from gvtnet_zoo.models.layout import channels_last_format, prefers_channels_last, to_channels_last
from gvtnet_zoo.spec_loading import load_spec

from .conftest import tiny_args, weights


def _train_and_watch(data: Path, out: Path, monkeypatch: pytest.MonkeyPatch, *overrides: str) -> list[torch.Tensor]:
    """Train the tiny 2D spec; returns the outputs of the stem convolution in the training steps."""
    seen: list[torch.Tensor] = []
    real_init = nn.Conv2d.__init__

    def watched_init(self: nn.Conv2d, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)
        if self.in_channels == 1:  # the stem
            self.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()) if torch.is_grad_enabled() else None)

    monkeypatch.setattr(nn.Conv2d, "__init__", watched_init)
    assert main(["train", "demo-gvtnet-label-free-2d", "--data", str(data / "train"), "--out", str(out),
                 "--device", "cpu", *tiny_args(*overrides)]) == 0
    return seen


def test_cpu_training_runs_channels_last_by_default(denoise_2d: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = _train_and_watch(denoise_2d, tmp_path / "run", monkeypatch, "model.base_channels=8")
    assert len(outputs) == 6
    assert all(o.is_contiguous(memory_format=torch.channels_last) and not o.is_contiguous() for o in outputs)
    assert all(o.dtype == torch.float32 for o in outputs)


def test_channels_last_can_be_switched_off(denoise_2d: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = _train_and_watch(denoise_2d, tmp_path / "run", monkeypatch, "train.channels_last=false")
    assert outputs and all(o.is_contiguous() for o in outputs)


def test_bf16_autocast_runs_on_the_cpu(denoise_2d: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = _train_and_watch(denoise_2d, tmp_path / "run", monkeypatch, "train.amp=bf16")
    assert len(outputs) == 6 and all(o.dtype == torch.bfloat16 for o in outputs)
    trained = weights(tmp_path / "run" / "checkpoints" / "last.pt")
    floats = [v for v in trained.values() if v.dtype.kind == "f"]
    assert floats and all(v.dtype == np.float32 and np.isfinite(v).all() for v in floats)  # the weights stay float32


def test_networks_mixing_2d_and_3d_layers_convert_each_layer_by_its_rank() -> None:
    network = to_channels_last(build_model(load_spec("demo-gvtnet-projection")))
    ranks = {p.dim() for p in network.parameters()}
    assert {4, 5} <= ranks  # the projection net is 3D, the GVTNet after it 2D
    for p in network.parameters():
        if p.dim() in (4, 5) and p.shape[1] > 1 and p.shape[2:].numel() > 1:  # else both layouts coincide
            assert p.is_contiguous(memory_format=channels_last_format(p.dim())) and not p.is_contiguous()


def test_networks_with_layers_onednn_breaks_on_stay_contiguous(denoise_2d: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Strided 1x1 2D convolutions from < 8 channels crash oneDNN's channels-last weight gradient (AVX2 CPUs)."""
    cpu = torch.device("cpu")
    assert not prefers_channels_last(cpu, build_model(load_spec("demo-gvtnet-label-free-2d", ["model.base_channels=4"])))
    assert prefers_channels_last(cpu, build_model(load_spec("demo-gvtnet-label-free-2d", ["model.base_channels=8"])))
    assert not prefers_channels_last(torch.device("meta"), build_model(load_spec("demo-gvtnet-label-free-2d")))
    outputs = _train_and_watch(denoise_2d, tmp_path / "run", monkeypatch)  # the tiny spec: 4 channels
    assert len(outputs) == 6 and all(o.is_contiguous() for o in outputs)
