"""The paper's losses. Each takes the network's outputs and the target, all (B, C, *S)."""

from __future__ import annotations

import torch


def mse(mean: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.mean((mean - target) ** 2)


def mae(mean: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.mean(torch.abs(mean - target))


def laplace_nll(mean: torch.Tensor, scale: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CARE's probabilistic loss: mean(|y - mu| / sigma + log sigma) (the constant log 2 left out)."""
    return torch.mean(torch.abs(target - mean) / scale + torch.log(scale))


def compute_loss(name: str, outputs: torch.Tensor | tuple[torch.Tensor, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """``outputs`` is the mean, or (mean, scale) for ``laplace_nll``."""
    if name == "laplace_nll":
        assert isinstance(outputs, tuple)
        return laplace_nll(outputs[0], outputs[1], target)
    mean = outputs[0] if isinstance(outputs, tuple) else outputs
    return mse(mean, target) if name == "mse" else mae(mean, target)
