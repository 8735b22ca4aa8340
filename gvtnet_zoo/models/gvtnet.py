"""The GVTNet: a residual U-shaped network whose per-level operators come from a GVTNetConfig.

Module tree (state-dict keys say where a weight lives):
    stem                      conv3 in -> C
    encoder.{i}.down          level i > 0: C_{i-1} -> C_i at half size (residual block, conv or GVTO)
    encoder.{i}.blocks.{j}    residual blocks at C_i
    bottom.{j}                size-preserving GVTOs / residual blocks at C_{depth-1}
    decoder.{k}.up            C_{i+1} -> C_i at double size (transposed conv or GVTO), k = 0 is the deepest
    decoder.{k}.blocks.{j}    residual blocks after the skip merge (add, or concat then 2C_i -> C_i)
    head_pre, head            norm -> act -> conv (C -> out), plus input if residual_output
    sigma_head                optional Laplace scale: bias-free 1x1 conv, softplus + 1e-3
"""

from __future__ import annotations

from typing import List

import torch
from torch import nn

from ..config import GVTNetConfig
from ..nn import DownResidualBlock, PreActivation, ResamplingGVTO, ResidualBlock, SameGVTO, conv
from ..nn.layers import init_like_tf_layers_, strided_conv_down, transposed_conv
from .heads import HeadedNetwork
from .sizes import check_input


def _down(cfg: GVTNetConfig, in_channels: int, out_channels: int) -> nn.Module:
    sd, mode = cfg.spatial_dims, cfg.down_sampling
    if mode == "residual_block":
        return DownResidualBlock(sd, in_channels, out_channels, cfg.batch_norm)
    if mode == "conv":
        return strided_conv_down(sd, in_channels, out_channels, 3)
    version = 1 if mode == "gvto_v1" else 2
    return ResamplingGVTO(sd, in_channels, out_channels, cfg.heads, cfg.batch_norm, "down", version, cfg.softmax_attention)


def _up(cfg: GVTNetConfig, in_channels: int, out_channels: int) -> nn.Module:
    sd, mode = cfg.spatial_dims, cfg.up_sampling
    if mode == "transposed_conv":
        return transposed_conv(sd, in_channels, out_channels, 3)
    version = 1 if mode == "gvto_v1" else 2
    return ResamplingGVTO(sd, in_channels, out_channels, cfg.heads, cfg.batch_norm, "up", version, cfg.softmax_attention)


def _bottom(cfg: GVTNetConfig, channels: int, kind: str) -> nn.Module:
    if kind == "gvto":
        return SameGVTO(cfg.spatial_dims, channels, cfg.heads, cfg.batch_norm, cfg.softmax_attention)
    return ResidualBlock(cfg.spatial_dims, channels, channels, cfg.batch_norm)


def _residual_blocks(cfg: GVTNetConfig, in_channels: int, out_channels: int, count: int) -> nn.Sequential:
    return nn.Sequential(*[
        ResidualBlock(cfg.spatial_dims, in_channels if j == 0 else out_channels, out_channels, cfg.batch_norm)
        for j in range(count)
    ])


class EncoderLevel(nn.Module):
    """Optional down-sampling then residual blocks: (B, C_in, *S) -> (B, C, *S or S/2)."""

    def __init__(self, down: nn.Module, blocks: nn.Sequential) -> None:
        super().__init__()
        self.down = down
        self.blocks = blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.down(x))


class DecoderLevel(nn.Module):
    """Up-sampling, skip merge, residual blocks: (B, 2C, *S/2), skip (B, C, *S) -> (B, C, *S)."""

    def __init__(self, up: nn.Module, blocks: nn.Sequential, concat: bool) -> None:
        super().__init__()
        self.up = up
        self.blocks = blocks
        self.concat = concat

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.up(x)  # a fresh tensor (transposed conv or GVTO output): the additive merge is in place
        merged = torch.cat([up, skip], dim=1) if self.concat else up.add_(skip)
        return self.blocks(merged)


class GVTNet(HeadedNetwork):
    """GVTNet: (B, C_in, *S) -> (B, C_out, *S), every axis of S a multiple of 2^(depth-1)."""

    def __init__(self, cfg: GVTNetConfig) -> None:
        super().__init__()
        sd = cfg.spatial_dims
        channels = [cfg.base_channels * 2**i for i in range(cfg.depth)]
        self.size_step: List[int] = cfg.size_step()
        self.residual_output = cfg.residual_output
        self.stem = conv(sd, cfg.in_channels, channels[0], 3)
        self.encoder = nn.ModuleList()
        for i, n_blocks in enumerate(cfg.encoder_blocks):
            down = nn.Identity() if i == 0 else _down(cfg, channels[i - 1], channels[i])
            self.encoder.append(EncoderLevel(down, _residual_blocks(cfg, channels[i], channels[i], n_blocks)))
        self.bottom = nn.Sequential(*[_bottom(cfg, channels[-1], kind) for kind in cfg.bottom])
        self.decoder = nn.ModuleList()
        merged_factor = 2 if cfg.skip == "concat" else 1
        for i in reversed(range(cfg.depth - 1)):
            blocks = _residual_blocks(cfg, merged_factor * channels[i], channels[i], cfg.decoder_blocks)
            self.decoder.append(DecoderLevel(_up(cfg, channels[i + 1], channels[i]), blocks, cfg.skip == "concat"))
        self.head_pre = PreActivation(sd, channels[0], cfg.batch_norm)
        self.head = conv(sd, channels[0], cfg.out_channels, cfg.head_kernel_size, bias=cfg.head_bias)
        self.sigma_head = conv(sd, channels[0], cfg.out_channels, 1) if cfg.sigma_head else None
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = cfg.bn_momentum
        init_like_tf_layers_(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last decoder features before the head's norm and activation: (B, C_in, *S) -> (B, base_channels, *S)."""
        check_input(x, self.size_step)
        h = self.stem(x)
        skips: List[torch.Tensor] = []
        for level in self.encoder:
            h = level(h)
            skips.append(h)
        h = self.bottom(h)
        for k, level in enumerate(self.decoder):
            h = level(h, skips[-2 - k])
        return h
