"""Global voxel transformer operators (GVTOs): size-preserving, down-, up- and up4-sampling.

All are pre-activation: a = act(norm(x)) feeds the attention.
- size-preserving: x + attention(a)
- v2 (down/up/up4): Q + attention(a), the raw, biased query map is the residual
- v1 (down/up): bias-free strided (or transposed) conv3 of a + attention(a)
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from .attention import GlobalAttention
from .layers import PreActivation, strided_conv_down, transposed_conv

Direction = Literal["down", "up", "up4"]


class SameGVTO(nn.Module):
    """Size-preserving GVTO: (B, C, *S) -> (B, C, *S), output x + attention(act(norm(x)))."""

    def __init__(self, spatial_dims: int, channels: int, heads: int, use_norm: bool, softmax: bool = False) -> None:
        super().__init__()
        self.pre = PreActivation(spatial_dims, channels, use_norm)
        self.attention = GlobalAttention(spatial_dims, channels, channels, heads, "same", softmax)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.attention(self.pre(x))
        return out.add_(x)  # in place: ``out`` is the output convolution's fresh tensor


class ResamplingGVTO(nn.Module):
    """Down/up-sampling GVTO: (B, C_in, *S) -> (B, C_out, *S_q).

    S_q = S/2 ("down"), 2S ("up"), or y/x times 4 ("up4", the projection net's operator, v2 only).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        heads: int,
        use_norm: bool,
        direction: Direction,
        version: int = 2,
        softmax: bool = False,
    ) -> None:
        super().__init__()
        if version not in (1, 2):
            raise ValueError(f"GVTO version must be 1 or 2, got {version}")
        if direction == "up4" and version != 2:
            raise ValueError("the up4 GVTO exists only as version 2")
        self.pre = PreActivation(spatial_dims, in_channels, use_norm)
        self.attention = GlobalAttention(spatial_dims, in_channels, out_channels, heads, direction, softmax)
        self.use_query_residual = version == 2
        if version == 2:
            self.shortcut: nn.Module = nn.Identity()
        elif direction == "down":
            self.shortcut = strided_conv_down(spatial_dims, in_channels, out_channels, 3)
        else:
            self.shortcut = transposed_conv(spatial_dims, in_channels, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.pre(x)
        out, query = self.attention(a)  # ``out`` is fresh: the residual is added in place
        if self.use_query_residual:
            return out.add_(query)
        return out.add_(self.shortcut(a))
