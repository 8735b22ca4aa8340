"""Folders that live at the top of the repository and ship inside the package (model_specs/, packaging/)."""

from __future__ import annotations

import importlib.resources
from pathlib import Path


def resource_dir(name: str) -> Path:
    """``model_specs`` or ``packaging``: the checkout's folder (editable installs), else the installed copy."""
    checkout = Path(__file__).resolve().parents[1] / name
    if checkout.is_dir():
        return checkout
    return Path(str(importlib.resources.files(f"gvtnet_zoo.{name}")))
