"""The paper's networks, each built from its config; ``build_model`` dispatches on the architecture."""

from __future__ import annotations

from typing import Union

from torch import nn

from ..config import GVTNetConfig, ProjectionGVTNetConfig, Spec, UNetCareConfig, UNetFnetConfig
from .gvtnet import GVTNet
from .projection import ProjectedGVTNet, ProjectionNet
from .unet import UNetCare, UNetFnet

_BUILDERS = {
    GVTNetConfig: GVTNet,
    UNetFnetConfig: UNetFnet,
    UNetCareConfig: UNetCare,
    ProjectionGVTNetConfig: ProjectedGVTNet,
}


def build_model(spec: Union[Spec, GVTNetConfig, UNetFnetConfig, UNetCareConfig, ProjectionGVTNetConfig]) -> nn.Module:
    """The network of a spec (or of its ``model`` section), freshly initialized.

    forward: (B, C_in, *S) -> (B, C_out, *S); the projection model maps (B, 1, Z, Y, X) -> (B, 1, Y, X).
    """
    config = spec.model if isinstance(spec, Spec) else spec
    return _BUILDERS[type(config)](config)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["build_model", "count_parameters", "GVTNet", "UNetFnet", "UNetCare", "ProjectedGVTNet", "ProjectionNet"]
