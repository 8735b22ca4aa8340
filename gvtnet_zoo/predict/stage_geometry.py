"""The geometry of a network's forward in segments, for the level-by-level forward (predict/stagewise.py).

One probe forward of zeros through the stages (predict/pass_reuse.py) gives, per stage, the receptive-field radius
of its convolutions (counted as models/halo.py counts the whole network's) and the GVTOs it calls, and per value
its size and channels relative to the input. Segments are cut before every stage that calls a GVTO (its context
must be complete before the stage runs) and wherever every value crossing the cut is read again later anyway
(the encoder outputs the decoder merges): such a cut stores nothing more, and each side gets its own, smaller
halo. Each segment's tile peak per input voxel is the most tensor bytes it holds at once on the probe
(predict/live_bytes.py), plus the largest convolution input once more, times a margin.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..models.halo import _LAYERS, layer_reach
from .live_bytes import LiveBytes
from .pass_reuse import Stage

# a segment's tile peak over its count (predict/live_bytes.py): allocator slack and numpy's copies, which the count
# does not see. With it, the CARE GVTNet's segments on 64x288x288 peaked at 0.55-1.03x the model above what was
# resident before each (VmHWM reset per segment, 2 CPU threads, 2026-12-05)
SEGMENT_PEAK_MARGIN = 1.1


@dataclass(frozen=True)
class Segment:
    """Stages [start, stop): the values it reads from before it, those it makes for later, its GVTOs and halo."""

    start: int
    stop: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    gvtos: tuple[int, ...]  # indices into the network's attentions, in call order
    halo: tuple[int, ...]  # per input space axis, input voxels, a multiple of the axis's step
    bytes_per_voxel: float  # tile peak per input voxel: live tensor bytes (inputs, activations, outputs), margin


@dataclass(frozen=True)
class Geometry:
    """What the level-by-level forward needs to know of a network, from one probe forward."""

    segments: list[Segment]
    ratios: dict[str, tuple[float, ...]]  # per value: its size over the input's, per its (trailing) space axes
    channels: dict[str, int]
    full_bytes_per_voxel: float  # the same model for the whole network at once


def probe_geometry(stages: list[Stage], attentions: list[nn.Module], in_channels: int, step: list[int],
                   layout: Callable[[torch.Tensor], torch.Tensor] = lambda x: x) -> Geometry:
    """Per stage: receptive-field radius (as models/halo.py counts it) and the GVTOs it calls, from a forward of
    zeros through ``stages``; segments cut before every stage that calls a GVTO (and where ``_stored_anyway``);
    per segment, the peak of its live tensor bytes (predict/live_bytes.py) with ``layout`` on its inputs."""
    size = [4 * s for s in step]
    current, radius = 0, [[0.0] * len(size) for _ in stages]
    called: list[list[int]] = [[] for _ in stages]
    index = {id(a): i for i, a in enumerate(attentions)}

    def widen(module: nn.Module, inputs: Any, _output: Any) -> None:
        for axis, reach in enumerate(layer_reach(module, inputs[0].shape[2:], size)):
            radius[current][axis] += reach

    def attend(module: nn.Module, _inputs: Any, _output: Any) -> None:
        called[current].append(index[id(module)])

    layers = {m for stage in stages for m in _modules_of(stage) if isinstance(m, _LAYERS)}
    hooks = [m.register_forward_hook(widen) for m in layers] + [m.register_forward_hook(attend) for m in attentions]
    values: dict[str, torch.Tensor] = {"x": layout(torch.zeros(1, in_channels, *size))}
    try:
        with torch.no_grad():
            for current, stage in enumerate(stages):
                values[stage.output] = stage.run(*[values[n] for n in stage.inputs])
    finally:
        for hook in hooks:
            hook.remove()
    voxels = math.prod(size)
    ratios = {n: tuple(v.shape[2 + j] / size[len(size) - v.dim() + 2 + j] for j in range(v.dim() - 2))
              for n, v in values.items()}
    channels = {n: int(v.shape[1]) for n, v in values.items()}
    last_use = {n: s for s, stage in enumerate(stages) for n in stage.inputs}
    cuts = [0, *[s for s in range(1, len(stages)) if called[s] or _stored_anyway(stages, last_use, s)], len(stages)]
    segments = []
    for start, stop in zip(cuts, cuts[1:]):
        made = [stages[s].output for s in range(start, stop)]
        inputs = tuple(dict.fromkeys(n for s in range(start, stop) for n in stages[s].inputs if n not in made))
        outputs = tuple(n for n in made if n == "out" or last_use.get(n, -1) >= stop)
        reach = [sum(radius[s][a] for s in range(start, stop)) for a in range(len(size))]
        halo = tuple(math.ceil(r / s - 1e-9) * s for r, s in zip(reach, step))
        segment = Segment(start, stop, inputs, outputs, tuple(g for s in range(start, stop) for g in called[s]), halo, 0.0)
        peak = _peak_bytes(stages, segment, {n: layout(values[n].clone()) for n in inputs})
        segments.append(dataclasses.replace(segment, bytes_per_voxel=SEGMENT_PEAK_MARGIN * peak / voxels))
    whole = Segment(0, len(stages), ("x",), ("out",), (), (0,) * len(size), 0.0)
    full = _peak_bytes(stages, whole, {"x": values["x"]})
    return Geometry(segments, ratios, channels, SEGMENT_PEAK_MARGIN * full / voxels)


def _peak_bytes(stages: list[Stage], segment: Segment, inputs: dict[str, torch.Tensor]) -> int:
    """The most tensor bytes live at once while ``run_stages`` runs the segment on ``inputs`` (counted with them),
    plus the largest input or output of any of its convolutions once more: oneDNN copies a convolution's input
    or output into its own layout where it needs to, outside PyTorch's tensors (a segment reading a full-size
    value to down-sample it peaked 15-22% above the count without the input; a decoder level's transposed
    convolution, whose output is 2^d times its input, twice the count without the output)."""
    count, largest = LiveBytes(), 0

    def conv_tensors(_module: nn.Module, args: Any, output: Any) -> None:
        nonlocal largest
        for tensor in (args[0], output):
            largest = max(largest, tensor.element_size() * tensor.nelement())

    hooks = [m.register_forward_hook(conv_tensors) for s in range(segment.start, segment.stop)
             for m in _modules_of(stages[s]) if isinstance(m, _LAYERS)]
    count.hold(sum(v.element_size() * v.nelement() for v in inputs.values()))
    try:
        with torch.no_grad(), count:
            run_stages(stages, segment, inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return count.peak + largest


def run_stages(stages: list[Stage], segment: Segment, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Runs the segment's stages on ``values`` (its inputs, taken over), freeing each value once no later stage of
    the segment reads it; returns its outputs."""
    keep = set(segment.outputs)
    last = {n: s for s in range(segment.start, segment.stop) for n in stages[s].inputs}
    for s in range(segment.start, segment.stop):
        stage = stages[s]
        values[stage.output] = stage.run(*[values[n] for n in stage.inputs])
        for n in stage.inputs:
            if last[n] == s and n not in keep:
                values.pop(n, None)
    return {n: values[n] for n in segment.outputs}


def _stored_anyway(stages: list[Stage], last_use: dict[str, int], s: int) -> bool:
    """Whether every value live before stage ``s`` (the input aside) is also read after it, so must be stored
    anyway: a cut there stores nothing more, and the stages on either side get their own (smaller) halos."""
    live = {n for stage in stages[:s] for n in [stage.output] if last_use.get(n, -1) >= s}
    return bool(live) and all(last_use[n] > s for n in live)


def _modules_of(stage: Stage) -> list[nn.Module]:
    """The modules a stage calls: its module's, or those its closure holds (a lambda over network parts)."""
    run = stage.run
    if isinstance(run, nn.Module):
        return list(run.modules())
    owner = getattr(run, "__self__", None)  # a bound method (GVTNet._mean)
    if isinstance(owner, nn.Module):
        return list(owner.modules())
    found: list[nn.Module] = []
    for cell in getattr(run, "__closure__", None) or ():
        if isinstance(cell.cell_contents, nn.Module):
            found.extend(cell.cell_contents.modules())
    return found
