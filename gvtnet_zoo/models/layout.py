"""Channels-last memory for networks and batches: oneDNN's CPU convolutions run in it without layout conversions.

Measured on 2 CPU cores: the paper's label-free GVTNet trains 1.5x faster (benchmarks/train_throughput.py) and
infers a whole volume 1.4-1.7x faster (benchmarks/inference_modes.py). Per tensor rank, so networks that mix 2D
and 3D layers (the projection model) convert too.
"""

from __future__ import annotations

import torch
from torch import nn


def channels_last_format(ndim: int) -> torch.memory_format:
    """channels_last for (B, C, Y, X), channels_last_3d for (B, C, Z, Y, X), contiguous for other ranks."""
    return {4: torch.channels_last, 5: torch.channels_last_3d}.get(ndim, torch.contiguous_format)


def _breaks_onednn(layer: nn.Module) -> bool:
    """A strided 1x1 2D convolution with fewer than 8 input channels: oneDNN's AVX2 kernel for its weight gradient
    in channels-last memory crashes or never returns (PyTorch 2.13 on an AMD EPYC with AVX2 and no AVX-512; a
    4 -> 8 channel layer on 16x16 crashed in 3 of 3 single-threaded runs). Only tiny networks have such layers."""
    return (isinstance(layer, nn.Conv2d) and layer.kernel_size == (1, 1) and layer.stride != (1, 1)
            and layer.in_channels < 8)


def prefers_channels_last(device: torch.device, network: nn.Module | None = None) -> bool:
    """Whether gvtnet-zoo runs ``network`` channels-last on ``device``: on the CPU (oneDNN), not on CUDA (not yet
    measured there), and not for a network with a layer oneDNN's channels-last kernels break on."""
    if device.type != "cpu":
        return False
    return network is None or not any(_breaks_onednn(layer) for layer in network.modules())


def to_channels_last(module: nn.Module) -> nn.Module:
    """Every layer's 4D or 5D weight in channels-last memory, in place; returns ``module``."""
    for layer in module.modules():
        weight = getattr(layer, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.dim() in (4, 5) and not any(True for _ in layer.children()):
            layer.to(memory_format=channels_last_format(weight.dim()))
    return module


def channels_last_input(x: torch.Tensor) -> torch.Tensor:
    """A batch (B, C, *S) in the channels-last memory of its rank (copied only if it is not already)."""
    return x.contiguous(memory_format=channels_last_format(x.ndim))
