"""Which devices actually work here: torch CUDA, and onnxruntime's CUDA provider only when it loads."""

from __future__ import annotations

import functools

import torch


def torch_devices() -> list[str]:
    """['cuda'] when a CUDA GPU is usable, else ['cpu']."""
    return ["cuda"] if torch.cuda.is_available() else ["cpu"]


@functools.lru_cache(maxsize=1)
def onnx_providers() -> list[str]:
    """['CUDAExecutionProvider'] if onnxruntime can really run on the GPU here, else ['CPUExecutionProvider'].

    onnxruntime-gpu lists the CUDA provider even where its libraries are missing and then falls back
    with a screen of errors; a tiny model is tried once, quietly, instead.
    """
    import onnxruntime
    from onnx import TensorProto, helper

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers() or not torch.cuda.is_available():
        return ["CPUExecutionProvider"]
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4
    try:
        session = onnxruntime.InferenceSession(helper.make_model(graph).SerializeToString(), options,
                                               providers=["CUDAExecutionProvider"])
    except Exception:  # noqa: BLE001 - any failure means: not usable
        return ["CPUExecutionProvider"]
    return ["CUDAExecutionProvider"] if "CUDAExecutionProvider" in session.get_providers() else ["CPUExecutionProvider"]
