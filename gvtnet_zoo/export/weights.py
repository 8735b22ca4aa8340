"""TorchScript and ONNX weights of a network, both taking any valid input size."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from ..atomic import atomic_path

ONNX_OPSET = 17  # deepImageJ's ONNX runtime reads opset <= 17


def script_model(model: nn.Module) -> torch.jit.ScriptModule:
    """``torch.jit.script`` (not trace) of ``model`` in eval mode, so every input size runs."""
    with warnings.catch_warnings():
        # TorchScript is deprecated in PyTorch but still the zoo's torchscript weight format.
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated.*")
        return torch.jit.script(model.eval())


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | Path, opset: int = ONNX_OPSET) -> Path:
    """Write ``model`` (eval mode) as ONNX with dynamic batch and spatial axes; written to a temp name, then renamed.

    ``example``: (B, C, *S), a valid input; the exported graph takes any valid (B, C, *S').
    Uses the TorchScript-based exporter (``dynamo=False``): it needs no onnxscript and keeps the
    weights inside the file.
    """
    path = Path(path)
    axes = {0: "batch", **{2 + i: name for i, name in enumerate("zyx"[3 - (example.ndim - 2):])}}
    model = model.eval()
    with torch.no_grad():
        output_ndim = model(example).ndim
    out_axes = {0: "batch", **{2 + i: name for i, name in enumerate("zyx"[3 - (output_ndim - 2):])}}
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # The legacy exporter is what writes opset 17 without onnxscript; its deprecation notice is expected.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        # the TF-aligned transposed convolutions crop to twice their input's size: a Slice that stays in the graph
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
        torch.onnx.export(
            model, (example,), str(tmp), dynamo=False, opset_version=opset,
            input_names=["input"], output_names=["output"],
            dynamic_axes={"input": axes, "output": out_axes},
        )
    return path
