"""Which devices actually work here: torch CUDA, and onnxruntime's CUDA provider only when it loads.

torch is imported only by the questions about torch, so that a CPU prediction with ONNX weights starts
without it (importing torch is most of a short command's start-up).
"""

from __future__ import annotations

import functools
import os
import sys
from typing import TYPE_CHECKING

from .errors import UserError

if TYPE_CHECKING:
    import torch

# onnxruntime's default logger level (warning); the probe silences it and puts it back.
ORT_DEFAULT_LOG_SEVERITY = 2
# A Linux machine whose GPU torch.cuda could use has one of these: the NVIDIA driver's control device,
# ROCm's kernel driver, or WSL's GPU device.
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg")


def gpu_possible() -> bool:
    """False only where no GPU can be there (macOS; Linux without a GPU driver's device), without importing torch."""
    if sys.platform == "darwin":
        return False
    if sys.platform.startswith("linux"):
        return any(os.path.exists(path) for path in GPU_DEVICE_FILES)
    return True


def torch_cuda_available() -> bool:
    """Whether torch can use a CUDA GPU here (torch is imported only where a GPU may be)."""
    if not gpu_possible():
        return False
    import torch

    return bool(torch.cuda.is_available())


def torch_devices() -> list[str]:
    """['cuda'] when a CUDA GPU is usable, else ['cpu']."""
    return ["cuda"] if torch_cuda_available() else ["cpu"]


def probe_model() -> bytes:
    """A one-node ONNX model (Identity of one float) that every onnxruntime since 1.10 reads.

    The IR version is set on purpose: the onnx package writes its newest by default, which older
    onnxruntime releases refuse ("Unsupported model IR version"), and a refused probe looks like a
    missing GPU.
    """
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    return helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


@functools.lru_cache(maxsize=1)
def onnx_cuda_loads() -> bool:
    """Whether onnxruntime's CUDA provider really runs here, tried once on the probe model.

    onnxruntime-gpu lists the CUDA provider even where its libraries are missing and then falls back
    with a screen of errors through its default logger, which is silenced for the try.
    """
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        return False
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4
    onnxruntime.set_default_logger_severity(4)
    try:
        session = onnxruntime.InferenceSession(probe_model(), options, providers=["CUDAExecutionProvider"])
    except Exception:  # noqa: BLE001 - any failure means: not usable
        return False
    finally:
        onnxruntime.set_default_logger_severity(ORT_DEFAULT_LOG_SEVERITY)
    return "CUDAExecutionProvider" in session.get_providers()


def onnx_providers() -> list[str]:
    """['CUDAExecutionProvider'] if onnxruntime can really run on the GPU here, else ['CPUExecutionProvider']."""
    return ["CUDAExecutionProvider"] if onnx_cuda_loads() else ["CPUExecutionProvider"]


def choose_device(request: str, local_rank: int = 0) -> "torch.device":
    """'auto' -> cuda:local_rank when CUDA works, else cpu; 'cpu', 'cuda', 'cuda:i' as asked."""
    import torch

    if request == "auto":
        return torch.device(f"cuda:{local_rank}") if torch_cuda_available() else torch.device("cpu")
    try:
        device = torch.device(request)
    except RuntimeError:
        raise UserError(f"--device {request!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {request} but no CUDA GPU is usable here; use --device cpu")
        index = device.index if device.index is not None else local_rank
        if index >= torch.cuda.device_count():
            raise UserError(f"--device {request}: only {torch.cuda.device_count()} GPU(s) here")
        device = torch.device("cuda", index)
    elif device.type != "cpu":
        raise UserError(f"--device {request!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device
