"""Checkpoints: the unwrapped model plus everything needed to continue step for step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_path
from ..errors import UserError


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """torch.save to a temp name, then rename: an interrupted write never leaves a broken file."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found; train first, or check the run folder")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:
        raise UserError(f"cannot read checkpoint {path} ({type(err).__name__}: {err})") from None
