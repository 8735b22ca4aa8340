"""The U-Net baselines of the paper: pytorch_fnet (label-free) and CSBDeep CARE (denoising).

Both are explicit lists of levels (encoder.{i}, bottom, decoder.{k}, k = 0 the deepest), every conv
with bias and ReLU, as in the original code.
"""

from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn

from ..config import UNetCareConfig, UNetFnetConfig
from ..nn.layers import NearestUpsample, conv, init_like_tf_layers_, max_pool, norm, strided_conv_down, transposed_conv
from .heads import HeadedNetwork
from .sizes import check_input

TORCH_BN_MOMENTUM = 0.1  # pytorch_fnet used PyTorch's default batch norm


def init_like_fnet_(model: nn.Module) -> nn.Module:
    """pytorch_fnet's ``_weights_init``, in place: conv (and transposed conv) weights N(0, 0.02), batch-norm
    gamma N(1, 0.02) and beta 0; conv biases keep PyTorch's default (fnet leaves them)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv3d, nn.Conv2d, nn.ConvTranspose3d, nn.ConvTranspose2d)):
            nn.init.normal_(module.weight, 0.0, 0.02)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            nn.init.normal_(module.weight, 1.0, 0.02)
            nn.init.zeros_(module.bias)
    return model


def conv_relu_stack(spatial_dims: int, in_channels: int, widths: Sequence[int], batch_norm: bool) -> nn.Sequential:
    """conv3 (+BN) + ReLU per entry of ``widths``: (B, C_in, *S) -> (B, widths[-1], *S)."""
    layers: List[nn.Module] = []
    for width in widths:
        layers.append(conv(spatial_dims, in_channels, width, 3, bias=True))
        if batch_norm:
            layers.append(norm(spatial_dims, width, True, TORCH_BN_MOMENTUM))
        layers.append(nn.ReLU(inplace=True))  # on a fresh conv or BN output, as pytorch_fnet does
        in_channels = width
    return nn.Sequential(*layers)


def _with_bn_relu(spatial_dims: int, layer: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(layer, norm(spatial_dims, channels, True, TORCH_BN_MOMENTUM), nn.ReLU(inplace=True))


class UNetFnet(nn.Module):
    """pytorch_fnet U-Net: (B, C_in, *S) -> (B, C_out, *S), S a multiple of 2^depth.

    Level i: two conv3+BN+ReLU to 32*2^i, then a 2x2 stride-2 conv keeping the channels; bottom:
    two conv3 to 32*2^depth; up: 2x2 transposed conv 2C -> C, concat, two conv3 2C -> C -> C.
    """

    def __init__(self, cfg: UNetFnetConfig) -> None:
        super().__init__()
        sd = cfg.spatial_dims
        channels = [cfg.base_channels * 2**i for i in range(cfg.depth + 1)]
        self.size_step: List[int] = cfg.size_step()
        self.encoder = nn.ModuleList()
        self.down = nn.ModuleList()
        in_channels = cfg.in_channels
        for i in range(cfg.depth):
            self.encoder.append(conv_relu_stack(sd, in_channels, [channels[i]] * 2, batch_norm=True))
            down = strided_conv_down(sd, channels[i], channels[i], kernel_size=2, bias=True)
            self.down.append(_with_bn_relu(sd, down, channels[i]))
            in_channels = channels[i]
        self.bottom = conv_relu_stack(sd, channels[-2], [channels[-1]] * 2, batch_norm=True)
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for i in reversed(range(cfg.depth)):
            up = transposed_conv(sd, channels[i + 1], channels[i], kernel_size=2, bias=True)
            self.up.append(_with_bn_relu(sd, up, channels[i]))
            self.decoder.append(conv_relu_stack(sd, 2 * channels[i], [channels[i]] * 2, batch_norm=True))
        self.head = conv(sd, channels[0], cfg.out_channels, 3, bias=True)
        init_like_fnet_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.size_step)
        skips: List[torch.Tensor] = []
        h = x
        for encode, down in zip(self.encoder, self.down):
            h = encode(h)
            skips.append(h)
            h = down(h)
        h = self.bottom(h)
        for k, (up, decode) in enumerate(zip(self.up, self.decoder)):
            h = decode(torch.cat([up(h), skips[-1 - k]], dim=1))
        return self.head(h)


class UNetCare(HeadedNetwork):
    """CSBDeep CARE U-Net: (B, C_in, *S) -> (B, C_out, *S), S a multiple of 2^depth.

    Each level ends with base*2^max(0, n-1) channels, as CSBDeep's unet_block does; nearest
    up-sampling and concat; a 1x1 conv head plus the input (residual), and optionally a softplus
    scale head for the probabilistic loss.
    """

    def __init__(self, cfg: UNetCareConfig) -> None:
        super().__init__()
        sd, base, depth, n_conv = cfg.spatial_dims, cfg.base_channels, cfg.depth, cfg.convs_per_level
        self.size_step: List[int] = cfg.size_step()
        self.residual_output = cfg.residual_output
        self.encoder = nn.ModuleList()
        in_channels = cfg.in_channels
        for n in range(depth):
            self.encoder.append(conv_relu_stack(sd, in_channels, [base * 2**n] * n_conv, batch_norm=False))
            in_channels = base * 2**n
        self.pool = max_pool(sd, 2)
        self.bottom = conv_relu_stack(sd, in_channels, self._widths(base, depth, n_conv), batch_norm=False)
        self.upsample = NearestUpsample([2] * sd)
        self.decoder = nn.ModuleList()
        in_channels = self._widths(base, depth, n_conv)[-1]
        for n in reversed(range(depth)):
            widths = self._widths(base, n, n_conv)
            self.decoder.append(conv_relu_stack(sd, in_channels + base * 2**n, widths, batch_norm=False))
            in_channels = widths[-1]
        self.head_pre = nn.Identity()  # both heads read the last ReLU's output, as CSBDeep's
        self.head = conv(sd, in_channels, cfg.out_channels, 1, bias=True)
        self.sigma_head = conv(sd, in_channels, cfg.out_channels, 1, bias=True) if cfg.sigma_head else None
        init_like_tf_layers_(self)  # Keras' defaults, as CSBDeep builds CARE

    @staticmethod
    def _widths(base: int, n: int, n_conv: int) -> List[int]:
        return [base * 2**n] * (n_conv - 1) + [base * 2 ** max(0, n - 1)]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last decoder features: (B, C_in, *S) -> (B, base, *S)."""
        check_input(x, self.size_step)
        skips: List[torch.Tensor] = []
        h = x
        for encode in self.encoder:
            h = encode(h)
            skips.append(h)
            h = self.pool(h)
        h = self.bottom(h)
        for k, decode in enumerate(self.decoder):
            h = decode(torch.cat([self.upsample(h), skips[-1 - k]], dim=1))
        return h
