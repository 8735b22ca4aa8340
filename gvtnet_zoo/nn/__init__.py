"""Dimension-generic GVTNets operators; every constructor takes ``spatial_dims`` first."""

from .attention import GlobalAttention
from .blocks import DownResidualBlock, ResidualBlock
from .gvto import ResamplingGVTO, SameGVTO
from .layers import PreActivation, conv, max_pool, norm, strided_conv_down, transposed_conv

__all__ = [
    "GlobalAttention",
    "ResidualBlock",
    "DownResidualBlock",
    "SameGVTO",
    "ResamplingGVTO",
    "PreActivation",
    "conv",
    "transposed_conv",
    "strided_conv_down",
    "max_pool",
    "norm",
]
