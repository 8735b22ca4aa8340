"""One eval forward pass of zeros with forward hooks attached: how summaries and halos look inside a network."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

Hook = Callable[[nn.Module, Any, Any], None]


def probe(model: nn.Module, input_shape: Sequence[int], hooks: Iterable[tuple[nn.Module, Hook]]) -> None:
    """Run ``model`` once on zeros of ``input_shape`` (B, C, *S) in eval mode with ``hooks``; restores the mode."""
    handles = [module.register_forward_hook(hook) for module, hook in hooks]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(*input_shape))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
