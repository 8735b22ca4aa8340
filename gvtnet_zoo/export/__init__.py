"""Turning a trained network into zoo weights (and, with later issues, a bioimage.io package)."""

from .weights import export_onnx, script_model

__all__ = ["export_onnx", "script_model"]
