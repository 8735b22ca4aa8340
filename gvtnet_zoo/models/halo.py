"""The output halo a tiling consumer should crop: the network's convolutional receptive-field radius.

Every convolution, transposed convolution and pooling called in one forward pass widens the
receptive field by (k - 1) // 2 (pooling: k - 1) voxels of its own resolution, i.e. times the
ratio of the network input's size to that layer's input size. Summing over all layers bounds the
deepest path's radius from above (parallel branches only add to the bound). The attention of a
GVTO is global and has no finite radius: the halo removes the seams of the convolutions, and
global-context inference is what makes a GVTNet's tiles exact. Each halo is rounded up to the
axis's size step, so a valid tile stays valid with the halo added on both sides.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import torch
from torch import nn

from ..nn.layers import as_tuple
from .probe import probe

if TYPE_CHECKING:
    from ..config import Spec

_LAYERS = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.MaxPool2d, nn.MaxPool3d)


def receptive_field_radius(model: nn.Module, input_shape: Sequence[int]) -> list[float]:
    """Radius per input space axis, in input voxels, from one eval forward of zeros (B, C, *S)."""
    spatial = list(input_shape[2:])
    radius = [0.0] * len(spatial)

    def widen(module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        for axis, reach in enumerate(layer_reach(module, inputs[0].shape[2:], spatial)):
            radius[axis] += reach

    probe(model, input_shape, [(m, widen) for m in model.modules() if isinstance(m, _LAYERS)])
    return radius


def layer_reach(module: nn.Module, size: Sequence[int], spatial: Sequence[int]) -> list[float]:
    """How far one layer (of ``_LAYERS``) on an input of space ``size`` widens the receptive field, per axis of the
    network input's space ``spatial``, in input voxels: (k - 1) // 2 voxels of its own resolution (pooling: k - 1)."""
    kernel = as_tuple(module.kernel_size, len(size))
    dilation = as_tuple(getattr(module, "dilation", 1), len(size))
    pooling = isinstance(module, (nn.MaxPool2d, nn.MaxPool3d))
    first = len(spatial) - len(size)  # a 2D layer after a 3D->2D projection acts on the last two axes
    reach = [0.0] * len(spatial)
    for axis, (k, d, s) in enumerate(zip(kernel, dilation, size), start=first):
        reach[axis] = ((k - 1) if pooling else (k - 1) // 2 * d) * spatial[axis] / s
    return reach


def tiling_halo(model: nn.Module, input_shape: Sequence[int], step: Sequence[int]) -> dict[str, int]:
    """Halo of every input space axis ('z', 'y', 'x' or 'y', 'x'), rounded up to the axis's step (at least one).

    Packages declare y's and x's (export/rdf.py); z's is recorded in their config for gvtnet-zoo's
    tiler, since a declared halo would force every input to be thicker than twice it.
    """
    radius = receptive_field_radius(model, input_shape)
    axes = "zyx"[3 - len(radius):]
    return {axis: max(s, math.ceil(r / s) * s) for axis, r, s in zip(axes, radius, step)}


def spec_halo(spec: "Spec") -> dict[str, int]:
    """``tiling_halo`` of the network a spec builds, probed at twice its size step."""
    from . import build_model

    step = spec.model.size_step()
    shape = (1, getattr(spec.model, "in_channels", 1), *[2 * s for s in step])
    return tiling_halo(build_model(spec).eval(), shape, step)
