"""Dimension-generic primitive layers: convolutions, norm, activation.

Every factory takes ``spatial_dims`` first (2 or 3) so that 2D and 3D models share one code path.
Kernel sizes may be an int (isotropic) or one int per spatial axis, e.g. ``(3, 5, 5)``.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import nn

KernelSize = Union[int, Sequence[int]]

# TF batch norm momentum 0.997 (decay of the running mean) is PyTorch momentum 1 - 0.997.
BN_MOMENTUM = 0.003
BN_EPS = 1e-5

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_CONV_T = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_BATCH_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_MAX_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}


def _check_dims(spatial_dims: int) -> None:
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")


def as_tuple(value: KernelSize, spatial_dims: int) -> tuple[int, ...]:
    """An int or a per-axis sequence as a tuple of length ``spatial_dims``."""
    if isinstance(value, int):
        return (value,) * spatial_dims
    values = tuple(int(v) for v in value)
    if len(values) != spatial_dims:
        raise ValueError(f"expected {spatial_dims} values, got {values}")
    return values


def conv(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: KernelSize = 3,
    stride: int = 1,
    bias: bool = False,
) -> nn.Module:
    """'Same'-padded convolution: (B, C_in, *S) -> (B, C_out, *S / stride). Odd kernels only."""
    _check_dims(spatial_dims)
    kernel = as_tuple(kernel_size, spatial_dims)
    if any(k % 2 == 0 for k in kernel):
        raise ValueError(f"'same' convolutions need odd kernel sizes, got {kernel}")
    padding = tuple(k // 2 for k in kernel)
    return _CONV[spatial_dims](in_channels, out_channels, kernel, stride=stride, padding=padding, bias=bias)


def transposed_conv(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    bias: bool = False,
) -> nn.Module:
    """Transposed convolution, stride 2: (B, C_in, *S) -> (B, C_out, *2S) exactly.

    Kernel 3 (GVTNets) pads 1 and adds one output row; kernel 2 (pytorch_fnet) needs no padding.
    """
    _check_dims(spatial_dims)
    if kernel_size == 3:
        padding, output_padding = 1, 1
    elif kernel_size == 2:
        padding, output_padding = 0, 0
    else:
        raise ValueError(f"transposed convolutions support kernel 2 or 3, got {kernel_size}")
    return _CONV_T[spatial_dims](
        in_channels, out_channels, kernel_size, stride=2, padding=padding,
        output_padding=output_padding, bias=bias,
    )


def strided_conv_down(spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = False) -> nn.Module:
    """Plain down-sampling: (B, C_in, *S) -> (B, C_out, *S/2). Kernel 3 is padded, kernel 2 is not."""
    _check_dims(spatial_dims)
    padding = kernel_size // 2 if kernel_size % 2 else 0
    return _CONV[spatial_dims](in_channels, out_channels, kernel_size, stride=2, padding=padding, bias=bias)


def max_pool(spatial_dims: int, kernel_size: KernelSize) -> nn.Module:
    """Max pooling with stride equal to the kernel."""
    _check_dims(spatial_dims)
    kernel = as_tuple(kernel_size, spatial_dims)
    return _MAX_POOL[spatial_dims](kernel, stride=kernel)


def norm(spatial_dims: int, channels: int, enabled: bool, momentum: float = BN_MOMENTUM) -> nn.Module:
    """Batch norm (by default with the original TF momentum/eps) when ``enabled``, else identity."""
    _check_dims(spatial_dims)
    if not enabled:
        return nn.Identity()
    return _BATCH_NORM[spatial_dims](channels, momentum=momentum, eps=BN_EPS)


def activation(inplace: bool = False) -> nn.Module:
    """ReLU6, the activation of every GVTNets operator."""
    return nn.ReLU6(inplace=inplace)


class PreActivation(nn.Sequential):
    """norm -> ReLU6, the shared front of every pre-activation block. Shape-preserving.

    The activation overwrites its input when that is a temporary nobody else reads (the norm's output,
    or a convolution's when ``input_is_temporary``): at full resolution a new tensor costs as much as
    the ReLU6 itself.
    """

    def __init__(self, spatial_dims: int, channels: int, use_norm: bool, input_is_temporary: bool = False) -> None:
        super().__init__(norm(spatial_dims, channels, use_norm), activation(inplace=use_norm or input_is_temporary))


class NearestUpsample(nn.Module):
    """Nearest up-sampling by repeating voxels: (B, C, *S) -> (B, C, *(S * factors)).

    ``repeat_interleave`` rather than ``F.interpolate``: scripted interpolate calls carry the Python
    signature of the PyTorch that wrote them and fail to load in older engines (deepImageJ's, 2.0).
    """

    def __init__(self, factors: Sequence[int]) -> None:
        super().__init__()
        self.factors: list[int] = [int(f) for f in factors]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for axis, factor in enumerate(self.factors):
            if factor > 1:
                x = x.repeat_interleave(factor, dim=2 + axis)
        return x


def nearest_upsample_yx(spatial_dims: int, factor: int = 4) -> NearestUpsample:
    """Parameter-free up-sampling of the last two (y, x) axes only: (B, C, [Z,] Y, X) -> (B, C, [Z,] fY, fX)."""
    _check_dims(spatial_dims)
    return NearestUpsample([1] * (spatial_dims - 2) + [factor, factor])
