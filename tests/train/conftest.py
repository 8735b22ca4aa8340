"""Small synthetic data and a tiny 2D spec so that training tests take seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TINY = [
    "model.base_channels=4", "data.patch_size=[32,32]", "data.batch_size=2", "data.workers=0",
    "data.val_patches=2", "train.steps=6", "train.val_every=3", "train.checkpoint_every=3", "train.log_every=1",
    "train.lr_decay_every=2", "train.lr_decay_factor=0.5",
]


def tiny_args(*extra: str) -> list[str]:
    out = []
    for item in [*TINY, *extra]:
        out += ["--set", item]
    return out


def weights(path: Path) -> dict[str, np.ndarray]:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=False)
    return {k: v.numpy() for k, v in state["model"].items()}
