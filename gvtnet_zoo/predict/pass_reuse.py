"""Resumable forwards for global context: each pass of a tile starts where its previous pass stopped.

A GVTNet's forward is written here as a list of stages (stem, each encoder level, each bottom operator,
each decoder level, the head) over named values. A collecting pass stops inside the stage that holds its
GVTO; everything computed before that stage is what the next pass would compute again, unchanged (the
earlier GVTOs apply the same contexts). ``PassStore`` keeps, per tile, the values that are still to be used
at that point (the stage's input and the skips the decoder will merge) and the stage to resume at; the next
pass loads them instead of re-running the encoder from the input. The stages call the network's own modules
in the order of its ``forward`` and nothing else, so the result is the same as one forward.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..models.gvtnet import GVTNet
from ..models.projection import ProjectedGVTNet, ProjectionNet
from ..models.sizes import check_input
from ..nn.attention import ContextCollected


@dataclass(frozen=True)
class Stage:
    """One step of a forward: ``output = run(*inputs)``, values named."""

    run: Callable[..., torch.Tensor]
    inputs: tuple[str, ...]
    output: str


def _gvtnet_stages(net: GVTNet, source: str, prefix: str) -> list[Stage]:
    """GVTNet.forward (features, then the head) on the value ``source``, as in models/gvtnet.py."""
    stages = [Stage(net.stem, (source,), f"{prefix}stem")]
    for i, level in enumerate(net.encoder):
        stages.append(Stage(level, (stages[-1].output,), f"{prefix}encoder{i}"))
    for j, block in enumerate(net.bottom):
        stages.append(Stage(block, (stages[-1].output,), f"{prefix}bottom{j}"))
    for k, level in enumerate(net.decoder):
        skip = f"{prefix}encoder{len(net.encoder) - 2 - k}"
        stages.append(Stage(level, (stages[-1].output, skip), f"{prefix}decoder{k}"))
    stages.append(Stage(net._mean, (source, stages[-1].output), f"{prefix}out"))
    return stages


def _projection_stages(net: ProjectionNet, source: str) -> list[Stage]:
    """ProjectionNet.forward, as in models/projection.py."""
    stages: list[Stage] = []
    for n, stage in enumerate(net.encoder):
        stages.append(Stage(stage, (stages[-1].output if stages else source,), f"p.encoder{n}"))
    stages.append(Stage(lambda h: net.bottom_gvto(h) + net.bottom_conv(h), (stages[-1].output,), "p.bottom"))
    for k, stage in enumerate(net.decoder):
        stages.append(Stage(stage, (stages[-1].output,), f"p.decoder{k}"))
    stages.append(Stage(lambda h, x: torch.mean(net.head(h) * x, dim=2), (stages[-1].output, source), "p.out"))
    return stages


def forward_stages(network: nn.Module) -> list[Stage]:
    """The network's forward on the value "x" as stages ending in "out"; one stage (no reuse) for other networks."""
    if type(network) is GVTNet:
        stages = _gvtnet_stages(network, "x", "")
    elif type(network) is ProjectedGVTNet and type(network.projection) is ProjectionNet and type(network.network) is GVTNet:
        stages = [*_projection_stages(network.projection, "x"), *_gvtnet_stages(network.network, "p.out", "n.")]
    else:  # a network these stages do not describe: every pass runs it from the input, as before
        return [Stage(network, ("x",), "out")]
    return [*stages[:-1], Stage(stages[-1].run, stages[-1].inputs, "out")]


@dataclass
class PassStore:
    """Per tile: the stage its next pass starts at and the values it needs there, kept while they fit in
    ``budget`` bytes. A tile whose values do not fit keeps nothing and its next pass starts from the input (the
    same result, as before this store); predict/global_context.py says why nothing is spilled to disk."""

    budget: int
    used: int = 0
    resume: dict[Hashable, int] = field(default_factory=dict)
    values: dict[Hashable, dict[str, torch.Tensor]] = field(default_factory=dict)
    dropped: int = 0  # states that did not fit: those tiles' next passes start from the input

    def forget(self, key: Hashable) -> None:
        """Drop what the tile keeps."""
        self.resume.pop(key, None)
        self.used -= sum(_bytes(v) for v in _distinct(self.values.pop(key, {})))

    def forget_all(self) -> None:
        """Drop what every tile keeps."""
        self.resume.clear()
        self.values.clear()
        self.used = 0

    def keep(self, key: Hashable, stage: int, values: dict[str, torch.Tensor]) -> None:
        """The tile's next pass starts at ``stage`` with ``values`` (replacing what it kept)."""
        self.forget(key)
        size = sum(_bytes(v) for v in _distinct(values))
        if self.used + size <= self.budget:
            self.resume[key], self.values[key] = stage, values
            self.used += size
        else:
            self.dropped += 1


def _distinct(values: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Tensors by identity (an empty level returns its input: one tensor under two names)."""
    return list({id(v): v for v in values.values()}.values())


def _bytes(tensor: torch.Tensor) -> int:
    return tensor.element_size() * tensor.nelement()


class ResumableForward:
    """A network's forward as ``forward_stages``, resumed from and kept in a ``PassStore`` per tile key."""

    def __init__(self, network: nn.Module) -> None:
        self.stages = forward_stages(network)
        self.size_step: list[int] | None = getattr(network, "size_step", None)
        self.last_use = {name: s for s, stage in enumerate(self.stages) for name in stage.inputs}

    def live_at(self, stage: int) -> list[str]:
        """Values made before ``stage`` and used at or after it (the input "x" is read again, never kept)."""
        made = {s.output for s in self.stages[:stage]}
        return [name for name in made if self.last_use.get(name, -1) >= stage]

    def state_bytes_per_voxel(self, x: torch.Tensor) -> float:
        """The most a tile keeps at any stage boundary (``live_at``), per input voxel, from a forward on ``x``."""
        values, most = {"x": x}, 0
        with torch.no_grad():
            for s, stage in enumerate(self.stages):
                kept = {id(values[n]): values[n] for n in self.live_at(s)}
                most = max(most, sum(_bytes(v) for v in kept.values()))
                values[stage.output] = stage.run(*[values[name] for name in stage.inputs])
        return most / x[0, 0].numel()

    def __call__(self, x: torch.Tensor, store: PassStore | None = None, key: Hashable = None) -> torch.Tensor:
        """The forward on the tile input ``x``, from the stage the tile's last pass stopped at (``store`` and
        ``key`` given); a collecting pass's ContextCollected goes through, after the tile's state is kept."""
        reuse = store is not None and key is not None
        start, values = 0, {"x": x}
        if reuse:
            start = store.resume.get(key, 0)
            values.update(store.values.get(key, {}))
            store.forget(key)  # the tensors are this pass's now: freed as it goes; a collecting pass keeps them again
        if start == 0 and self.size_step is not None:  # the stages skip GVTNet.features, which checks it
            check_input(x, self.size_step)
        for s in range(start, len(self.stages)):
            stage = self.stages[s]
            try:
                values[stage.output] = stage.run(*[values[name] for name in stage.inputs])
            except ContextCollected:
                if reuse:
                    store.keep(key, s, {name: values[name] for name in self.live_at(s)})
                raise
            for name in stage.inputs:  # freed as soon as no later stage reads it, as in the forward itself
                if self.last_use[name] == s and name != "x":
                    values.pop(name, None)
        return values["out"]
