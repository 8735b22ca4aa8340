"""The output stage shared by the GVTNet and the CARE U-Net: mean head (+ input), optional scale head."""

from __future__ import annotations

import torch
from torch import nn

SIGMA_FLOOR = 1e-3


class HeadedNetwork(nn.Module):
    """Base of networks with ``features(x)`` and a head: forward (B, C_in, *S) -> (B, C_out, *S).

    Subclasses set ``head_pre`` (what the mean head applies to the features first), ``head``,
    ``sigma_head`` (or None) and ``residual_output``. The scale head reads the features themselves,
    as the original GVTNets' ``penult`` (ReLU6-saturated features would give it no gradient). It is
    a training-time output only (the Laplace loss); exported models return the mean.
    """

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _mean(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        out = self.head(self.head_pre(features))
        return x + out if self.residual_output else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._mean(x, self.features(x))

    @torch.jit.unused
    def forward_with_scale(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, Laplace scale), both (B, C_out, *S); scale = softplus(sigma_head) + 1e-3."""
        if self.sigma_head is None:
            raise RuntimeError(f"this {type(self).__name__} has no scale head; build it with sigma_head: true")
        features = self.features(x)
        scale = nn.functional.softplus(self.sigma_head(features)) + SIGMA_FLOOR
        return self._mean(x, features), scale
