"""Validation: the loss on fixed held-out patches and CARE-protocol metrics on whole held-out images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..data.pairs import ImagePair
from ..evaluate.metrics import nrmse, pearson_r
from .losses import compute_loss


def predict_whole(model: nn.Module, image: np.ndarray, step: Sequence[int], device: torch.device) -> np.ndarray:
    """One whole image ((Z,) Y, X) through ``model`` (eval, no grad): reflect-padded up to the network's step, cropped back."""
    pads = [(0, (-size) % s) for size, s in zip(image.shape, step)]
    padded = np.pad(image, pads, mode="reflect" if all(p[1] < size for p, size in zip(pads, image.shape)) else "edge")
    with torch.no_grad():
        out = model(torch.from_numpy(np.ascontiguousarray(padded))[None, None].to(device)).float().cpu().numpy()[0, 0]
    crop = tuple(slice(0, size) for size in image.shape[image.ndim - out.ndim:])
    return out[crop]


@dataclass
class ValidationSet:
    """Fixed held-out patches (for the loss) and whole held-out images (for NRMSE and Pearson r), normalized."""

    patches: tuple[torch.Tensor, torch.Tensor]
    images: list[ImagePair]

    def input_nrmse(self) -> float | None:
        """NRMSE of the input itself: the bar a denoiser must clear (None where input and target differ in shape)."""
        if any(p.source.shape != p.target.shape for p in self.images):
            return None
        return float(np.mean([nrmse(p.source, p.target) for p in self.images]))


def validate(model: nn.Module, loss_name: str, data: ValidationSet, step: Sequence[int], device: torch.device,
             batch_size: int) -> tuple[dict[str, float], list[np.ndarray]]:
    """({'loss', 'nrmse', 'pearson_r'}, whole-image predictions) with ``model`` in eval mode; restores train mode."""
    was_training = model.training
    model.eval()
    try:
        sources, targets = data.patches
        losses = []
        with torch.no_grad():
            for start in range(0, len(sources), batch_size):
                x = sources[start:start + batch_size].to(device)
                y = targets[start:start + batch_size].to(device)
                outputs = model.forward_with_scale(x) if loss_name == "laplace_nll" else model(x)
                losses.append(float(compute_loss(loss_name, outputs, y)) * len(x))
        predictions = [predict_whole(model, pair.source, step, device) for pair in data.images]
    finally:
        model.train(was_training)
    metrics = {
        "loss": sum(losses) / len(sources),
        "nrmse": float(np.mean([nrmse(p, pair.target) for p, pair in zip(predictions, data.images)])),
        "pearson_r": float(np.mean([pearson_r(p, pair.target) for p, pair in zip(predictions, data.images)])),
    }
    return metrics, predictions


def best_score(metrics: dict[str, float], best_by: str) -> float:
    """``metrics[best_by]`` signed so that lower is better (Pearson r is negated): what best.pt minimizes."""
    return -metrics[best_by] if best_by == "pearson_r" else metrics[best_by]


def best_validation(rows: Sequence[dict[str, str]], best_by: str) -> Optional[dict[str, str]]:
    """The metrics.csv row that made best.pt (its ``val_*`` columns judged by ``best_by``); None before any."""
    validated = [r for r in rows if r.get("val_loss")]
    return min(validated, key=lambda r: best_score({best_by: float(r[f"val_{best_by}"])}, best_by), default=None)
