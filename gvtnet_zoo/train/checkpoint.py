"""Checkpoints: the unwrapped model plus everything needed to continue step for step."""

from __future__ import annotations

import pickle
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
    """A checkpoint's tensors, numbers, strings and plain containers; anything else is refused.

    A run folder may come from someone else, and unpickling arbitrary objects runs their code, so
    only torch's ``weights_only`` loader is used.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found; train first, or check the run folder")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" not in str(err):
            raise UserError(f"cannot read checkpoint {path} ({str(err).splitlines()[-1][:200]}); it is damaged or not "
                            "a checkpoint") from None
        refused = str(err).split("WeightsUnpickler error:")[-1].strip().splitlines()[0][:200]
        raise UserError(f"checkpoint {path} holds more than tensors, numbers and strings ({refused}); it was not "
                        "loaded, since that could run code; use a checkpoint written by gvtnet-zoo train") from None
    except Exception as err:
        raise UserError(f"cannot read checkpoint {path} ({type(err).__name__}: {err})") from None
