"""gvtnet-zoo: GVTNets and U-Net baselines for augmented microscopy, packaged for the BioImage Model Zoo.

The public names are imported on first use, so that ``gvtnet-zoo predict`` with ONNX weights on the
CPU never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Spec", "build_model", "count_parameters", "load_spec", "__version__"]

_HOMES = {"Spec": ".config", "build_model": ".models", "count_parameters": ".models", "load_spec": ".spec_loading"}

if TYPE_CHECKING:
    from .config import Spec
    from .models import build_model, count_parameters
    from .spec_loading import load_spec


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
