"""Mixed precision of the training step: bf16 autocast on CUDA or the CPU, fp16 on CUDA only."""

from __future__ import annotations

import contextlib

import torch

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(amp: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context of ``amp`` ('off', 'bf16', 'fp16') on ``device``; float32 where it does not apply.

    bf16 on the CPU runs oneDNN's bfloat16 kernels: ~3x faster steps on a CPU with AVX512-BF16 (measured,
    benchmarks/train_throughput.py), slower on CPUs without bfloat16 instructions.
    """
    if amp == "off" or (amp == "fp16" and device.type != "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[amp])
