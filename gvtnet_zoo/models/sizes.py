"""Which spatial sizes a network can take: every axis a multiple of its down-sampling step."""

from __future__ import annotations

from typing import List

import torch


def check_spatial_size(shape: List[int], step: List[int]) -> None:
    """Raise ValueError naming valid sizes unless each of ``shape`` (spatial only) is a positive multiple of ``step``."""
    if len(shape) != len(step):
        raise ValueError(
            "expected an input (B, C, " + str(len(step)) + " spatial axes), got "
            + str(len(shape)) + " spatial axes"
        )
    bad = False
    for size, s in zip(shape, step):
        if size < s or size % s != 0:
            bad = True
    if bad:
        lower: List[int] = []
        upper: List[int] = []
        for size, s in zip(shape, step):
            lower.append(max(s, (size // s) * s))
            upper.append(max(s, ((size + s - 1) // s) * s))
        raise ValueError(
            "input spatial size " + str(shape) + " cannot be taken by this network: each axis must be a "
            "positive multiple of " + str(step) + "; nearest valid sizes: " + str(lower) + " or " + str(upper)
        )


def check_input(x: torch.Tensor, step: List[int]) -> None:
    """Validate a (B, C, *S) input against ``step`` unless tracing (ONNX export records no checks)."""
    if not torch.jit.is_tracing():
        check_spatial_size(list(x.shape[2:]), step)

