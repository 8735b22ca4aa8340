"""Pre-activation residual blocks of the GVTNets code (norm -> ReLU6 -> conv)."""

from __future__ import annotations

import torch
from torch import nn

from .layers import KernelSize, PreActivation, conv


class ResidualBlock(nn.Module):
    """Pre-activation residual block: (B, C_in, *S) -> (B, C_out, *S).

    Main path: act(norm(x)) -> conv -> norm -> act -> conv. The shortcut is x itself when
    C_in == C_out, else a bias-free 1x1 convolution of act(norm(x)).
    """

    def __init__(
        self, spatial_dims: int, in_channels: int, out_channels: int, use_norm: bool, kernel_size: KernelSize = 3
    ) -> None:
        super().__init__()
        self.pre = PreActivation(spatial_dims, in_channels, use_norm)
        self.shortcut = (
            nn.Identity() if in_channels == out_channels else conv(spatial_dims, in_channels, out_channels, 1)
        )
        self.project_input = in_channels != out_channels
        self.conv1 = conv(spatial_dims, in_channels, out_channels, kernel_size)
        self.pre2 = PreActivation(spatial_dims, out_channels, use_norm, input_is_temporary=True)
        self.conv2 = conv(spatial_dims, out_channels, out_channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.pre(x)
        shortcut = self.shortcut(a) if self.project_input else x
        return self.conv2(self.pre2(self.conv1(a))).add_(shortcut)  # in place: the sum is the block's only use


class DownResidualBlock(nn.Module):
    """Down-sampling residual block: (B, C_in, *S) -> (B, C_out, *S/2).

    a = act(norm(x)); shortcut = bias-free 1x1 conv stride 2 of a; main = conv stride 2 -> norm -> act -> conv.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, use_norm: bool) -> None:
        super().__init__()
        self.pre = PreActivation(spatial_dims, in_channels, use_norm)
        self.shortcut = conv(spatial_dims, in_channels, out_channels, 1, stride=2)
        self.conv1 = conv(spatial_dims, in_channels, out_channels, 3, stride=2)
        self.pre2 = PreActivation(spatial_dims, out_channels, use_norm, input_is_temporary=True)
        self.conv2 = conv(spatial_dims, out_channels, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.pre(x)
        return self.conv2(self.pre2(self.conv1(a))).add_(self.shortcut(a))
