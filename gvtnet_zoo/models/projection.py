"""3D -> 2D surface projection (the paper's Flywing model): projection net + 2D GVTNet.

The projection net predicts a weight per voxel w and returns mean_z(w * input); then the 2D
GVTNet refines it: output = projection + net(projection) (its residual head).
"""

from __future__ import annotations

from typing import List

import torch
from torch import nn

from ..config import ProjectionGVTNetConfig
from ..nn import ResamplingGVTO, SameGVTO
from ..nn.layers import activation, conv, init_like_tf_layers_, max_pool
from .gvtnet import GVTNet
from .sizes import check_input

_KERNEL = (3, 5, 5)
_POOL = (1, 4, 4)


def _act_conv(in_channels: int, out_channels: int, kernel: tuple[int, int, int] = _KERNEL) -> nn.Sequential:
    return nn.Sequential(activation(), conv(3, in_channels, out_channels, kernel, bias=True))


class ProjectionNet(nn.Module):
    """(B, 1, Z, Y, X) -> (B, 1, Y, X); Y and X multiples of 4^stages. No norm, every conv with bias.

    encoder.{n}: [act ->] conv (3,5,5) -> max-pool (1,4,4); bottom: size-preserving GVTO plus a
    parallel act -> conv path; decoder.{k}: UP4 GVTO v2 -> act -> conv; head: act -> conv (5,5,5) to w.
    """

    def __init__(self, cfg: ProjectionGVTNetConfig) -> None:
        super().__init__()
        c, heads = cfg.projection_channels, cfg.projection_heads
        self.encoder = nn.ModuleList()
        for n in range(cfg.projection_stages):
            first = conv(3, 1, c, _KERNEL, bias=True) if n == 0 else _act_conv(c, c)
            self.encoder.append(nn.Sequential(first, max_pool(3, _POOL)))
        self.bottom_gvto = SameGVTO(3, c, heads, use_norm=False)
        self.bottom_conv = _act_conv(c, c)
        self.decoder = nn.ModuleList([
            nn.Sequential(ResamplingGVTO(3, c, c, heads, False, "up4", version=2), _act_conv(c, c))
            for _ in range(cfg.projection_stages)
        ])
        self.head = _act_conv(c, 1, (5, 5, 5))
        init_like_tf_layers_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for stage in self.encoder:
            h = stage(h)
        h = self.bottom_gvto(h) + self.bottom_conv(h)
        for stage in self.decoder:
            h = stage(h)
        return torch.mean(self.head(h) * x, dim=2)


class ProjectedGVTNet(nn.Module):
    """3D -> 2D: (B, 1, Z, Y, X) -> (B, 1, Y, X); Y and X multiples of the combined step."""

    def __init__(self, cfg: ProjectionGVTNetConfig) -> None:
        super().__init__()
        self.size_step: List[int] = cfg.size_step()
        self.projection = ProjectionNet(cfg)
        self.network = GVTNet(cfg.network)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.size_step)
        return self.network(self.projection(x))
