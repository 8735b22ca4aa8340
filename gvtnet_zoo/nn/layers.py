"""Dimension-generic primitive layers: convolutions, norm, activation.

Every factory takes ``spatial_dims`` first (2 or 3) so that 2D and 3D models share one code path.
Kernel sizes may be an int (isotropic) or one int per spatial axis, e.g. ``(3, 5, 5)``.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import nn
from torch.nn import functional as F

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


class StridedConv2d(nn.Conv2d):
    """Stride-2 convolution padded as TensorFlow's 'same': max(k - 2, 0) // 2 before, the rest after.

    For kernel 3 that is 0 before and 1 after, so output i reads input 2i .. 2i+2 (a symmetric pad
    of 1 would read 2i-1 .. 2i+1): the original GVTNets' alignment. Inputs have even sizes (the
    network's size step), where TF's rule is exactly this. ``constant_pad_nd``, not ``F.pad``: scripted
    ``F.pad`` calls carry the writing PyTorch's signature, which older engines (deepImageJ's) may lack.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(torch.constant_pad_nd(x, self.tf_pad, 0.0), self.weight, self.bias)


class StridedConv3d(nn.Conv3d):
    """3D ``StridedConv2d``: stride 2, TensorFlow 'same' padding for even sizes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(torch.constant_pad_nd(x, self.tf_pad, 0.0), self.weight, self.bias)


class TransposedConv2d(nn.ConvTranspose2d):
    """Stride-2 transposed convolution as TensorFlow's 'same': (B, C_in, *S) -> (B, C_out, *2S).

    The adjoint of ``StridedConv2d``: input j adds to outputs 2j .. 2j+k-1, and the one row past
    2S is dropped (PyTorch's ``padding=1, output_padding=1`` would start at 2j-1).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv_transpose2d(x, self.weight, self.bias, stride=2)
        return y[:, :, : 2 * x.shape[2], : 2 * x.shape[3]]


class TransposedConv3d(nn.ConvTranspose3d):
    """3D ``TransposedConv2d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv_transpose3d(x, self.weight, self.bias, stride=2)
        return y[:, :, : 2 * x.shape[2], : 2 * x.shape[3], : 2 * x.shape[4]]


_STRIDED_CONV = {2: StridedConv2d, 3: StridedConv3d}
_TF_CONV_T = {2: TransposedConv2d, 3: TransposedConv3d}


def conv(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: KernelSize = 3,
    stride: int = 1,
    bias: bool = False,
) -> nn.Module:
    """'Same'-padded convolution: (B, C_in, *S) -> (B, C_out, *S / stride). Odd kernels only.

    Stride 1 pads k // 2 on both sides; stride 2 pads as TensorFlow does (``StridedConv3d``).
    """
    _check_dims(spatial_dims)
    kernel = as_tuple(kernel_size, spatial_dims)
    if any(k % 2 == 0 for k in kernel):
        raise ValueError(f"'same' convolutions need odd kernel sizes, got {kernel}")
    if stride == 1:
        padding = tuple(k // 2 for k in kernel)
        return _CONV[spatial_dims](in_channels, out_channels, kernel, padding=padding, bias=bias)
    if stride != 2:
        raise ValueError(f"convolutions take stride 1 or 2, got {stride}")
    layer = _STRIDED_CONV[spatial_dims](in_channels, out_channels, kernel, stride=2, padding=0, bias=bias)
    tf_pad: list[int] = []
    for k in reversed(kernel):  # constant_pad_nd lists the last axis first; TF pads max(k - 2, 0) in all on even sizes
        total = max(k - 2, 0)
        tf_pad += [total // 2, total - total // 2]
    layer.tf_pad = tf_pad
    return layer


def transposed_conv(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    bias: bool = False,
) -> nn.Module:
    """Transposed convolution, stride 2: (B, C_in, *S) -> (B, C_out, *2S) exactly.

    Kernel 3 (GVTNets) is aligned as TensorFlow's 'same' (``TransposedConv3d``); kernel 2
    (pytorch_fnet) needs no padding.
    """
    _check_dims(spatial_dims)
    if kernel_size == 3:
        return _TF_CONV_T[spatial_dims](in_channels, out_channels, 3, stride=2, bias=bias)
    if kernel_size == 2:
        return _CONV_T[spatial_dims](in_channels, out_channels, 2, stride=2, bias=bias)
    raise ValueError(f"transposed convolutions support kernel 2 or 3, got {kernel_size}")


def strided_conv_down(spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = False) -> nn.Module:
    """Plain down-sampling: (B, C_in, *S) -> (B, C_out, *S/2). Kernel 3 as TensorFlow's 'same', kernel 2 unpadded."""
    _check_dims(spatial_dims)
    if kernel_size % 2:
        return conv(spatial_dims, in_channels, out_channels, kernel_size, stride=2, bias=bias)
    return _CONV[spatial_dims](in_channels, out_channels, kernel_size, stride=2, bias=bias)


def init_like_tf_layers_(model: nn.Module) -> nn.Module:
    """Initialize as tf.layers' and Keras' defaults, in place: Glorot-uniform kernels, zero biases, norm 1 / 0.

    The original GVTNets (tf.layers) and CSBDeep's CARE (Keras) start this way. Glorot's fans are
    (in + out) x kernel volume, which is the same for a convolution and its transpose.
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model


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
