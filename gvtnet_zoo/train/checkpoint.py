"""Checkpoints: the unwrapped model plus everything needed to continue step for step."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_path
from ..config import Spec
from ..errors import UserError

# 2: GVTNets aligned as the original TF code (stride-2 'same' padding, sigma head on the pre-activation
# features). Revision-1 GVTNet weights compute another function in today's network; U-Nets are unchanged.
NETWORK_REVISION = 2


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


def check_network_revision(state: dict[str, Any], spec: Spec, path: str | Path) -> None:
    """Refuse GVTNet weights written before the networks matched the original code (revision 2)."""
    if "gvtnet" in spec.model.architecture and state.get("network_revision", 1) < NETWORK_REVISION:
        raise UserError(f"{path} holds GVTNet weights from gvtnet-zoo before revision {NETWORK_REVISION}, whose "
                        "stride-2 alignment and scale head differ from the paper's network, so they would compute "
                        "another function here; train the run again (or package it with the gvtnet-zoo that trained it)")
