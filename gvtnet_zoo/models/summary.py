"""A per-block table of a network: output shape and trainable parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from . import count_parameters
from .probe import probe


@dataclass(frozen=True)
class BlockRow:
    name: str
    kind: str
    output_shape: tuple[int, ...] | None
    parameters: int


def _blocks(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """Top-level blocks; lists of levels and nested networks (modules holding such lists) are opened."""
    rows = []
    for name, child in module.named_children():
        full = f"{prefix}{name}"
        holds_levels = any(isinstance(c, nn.ModuleList) for c in child.children())
        if isinstance(child, nn.ModuleList) or holds_levels:
            rows.extend(_blocks(child, f"{full}."))
        else:
            rows.append((full, child))
    return rows


def summarize(model: nn.Module, input_shape: Sequence[int]) -> list[BlockRow]:
    """Rows for each block of ``model``, with output shapes from one eval forward of zeros (B, C, *S)."""
    blocks = _blocks(model)
    shapes: dict[str, tuple[int, ...]] = {}

    def recorder(name: str) -> Callable[[nn.Module, object, object], None]:
        def record(_module: nn.Module, _inputs: object, out: object) -> None:
            tensor = out[0] if isinstance(out, tuple) else out
            if isinstance(tensor, torch.Tensor):
                shapes[name] = tuple(tensor.shape)
        return record

    probe(model, input_shape, [(block, recorder(name)) for name, block in blocks])
    return [BlockRow(name, type(block).__name__, shapes.get(name), count_parameters(block)) for name, block in blocks]


def format_summary(rows: Sequence[BlockRow], total: int) -> str:
    """A fixed-width table; the last line is ``trainable parameters: N``."""
    header = ("block", "type", "output shape", "parameters")
    cells = [(r.name, r.kind, "x".join(map(str, r.output_shape)) if r.output_shape else "-", f"{r.parameters:,}")
             for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    line = lambda c: "  ".join(  # noqa: E731
        v.rjust(w) if i == 3 else v.ljust(w) for i, (v, w) in enumerate(zip(c, widths))
    ).rstrip()
    out = [line(header), line(tuple("-" * w for w in widths))] + [line(c) for c in cells]
    out.append(f"trainable parameters: {total:,}")
    return "\n".join(out)
