"""Global-context inference: a GVTNet's whole-image prediction computed in tile-sized memory.

A GVTO's attention is linear, so its only global state is, per head, the d x d matrix K^T V summed
over all voxels and the query count N_q (nn/attention.py). With the GVTOs in network order:

1. pass i runs every tile up to GVTO i (earlier GVTOs already use their whole-image contexts),
   adds the keys and values of the tile's *core* to GVTO i's context, and stops there;
2. a final pass runs every tile with all contexts complete and keeps each tile's core.

Cores partition the image on the network's down-sampling grid, and each tile extends its core by
a halo at least the receptive-field radius of all convolutions, so every core voxel sees exactly
what it sees in the whole image.

An image in memory is not predicted by these passes but level by level (predict/stagewise.py): each
segment of the forward runs over the whole image in tiles with its own, smaller halo, and the feature
maps later segments read are stored whole (in memory, else in scratch files), so the encoder runs once and
the time is about one forward's (docs/performance.md). The passes below are what streamed and Dask
prediction run, tile by tile (predict/tile_step.py), where no whole-image feature map is held.

Passes do not redo work (predict/pass_reuse.py): the forward runs as stages (stem, encoder levels,
bottom operators, decoder levels, head), and where a collecting pass stops, each tile's values still to
be used (the input of the stage holding the GVTO and the encoder outputs the decoder will merge) are
kept in memory, with the stage to resume at, so that the next pass starts there instead of re-running
the encoder from the input. They are kept within ``keep_bytes`` (what ``predict --memory`` leaves beside
the tile, predict/budget.py; else a quarter of the free memory): a tile whose state does not fit runs its
next pass from the input, the same result at the old cost. Beyond the budget we recompute rather than
spill to a scratch store (not built, so not measured): the kept state is mostly the full-resolution skip
(168 B per tile voxel for the CARE GVTNet, 128 of them the first level's skip), written once and read
once per tile, against re-running the encoder (the first pass's time in benchmarks/inference_modes.py's
per-pass column); recomputing needs no disk, no cleanup and no resume logic, and is exact by construction.
Time is then about one tiled forward plus the short re-runs of each GVTO's own stage; memory is that of
one tile plus what is kept. Reuse needs the same process for every pass of a tile (a tile ``key``):
Dask's tasks pass none and run every pass from the input.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Hashable, Optional

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..config import Spec
from ..errors import UserError
from ..models import build_model
from ..models.halo import tiling_halo
from ..models.layout import channels_last_input, prefers_channels_last, to_channels_last
from ..models.probe import probe
from ..nn.attention import AttentionContext, ContextCollected, GlobalAttention
from ..progress import Progress, no_progress
from .pass_reuse import PassStore, ResumableForward

if TYPE_CHECKING:
    from .stagewise import LevelByLevel
from .plan import Window, axis_windows


@contextmanager
def _contexts(attentions: list[GlobalAttention], states: list[AttentionContext], collecting: int | None) -> Iterator[None]:
    """GVTOs before ``collecting`` (all, if None) apply their contexts; GVTO ``collecting`` collects its own."""
    last = len(attentions) if collecting is None else collecting + 1
    try:
        for index, (attention, state) in enumerate(zip(attentions[:last], states[:last])):
            state.collecting = index == collecting
            attention.context = state
        yield
    finally:
        for attention in attentions:
            attention.context = None


@dataclass
class ContextNetwork:
    """A GVTNet with what global-context inference needs to know about it."""

    network: nn.Module
    spec: Spec
    attentions: list[GlobalAttention]  # in the order a forward pass calls them
    query_ratios: list[float]
    halo: list[int]  # per space axis: receptive-field radius of all convolutions, rounded up to the step
    keep_bytes: Optional[int] = None  # what tiles' kept pass states may take; None: a quarter of free memory
    memory: Optional[int] = None  # --memory (bytes): the level-by-level forward's budget for the process's peak
    store: Optional[PassStore] = None  # the kept states of tiles with a key (set on first use)
    forward: ResumableForward = field(init=False)  # the network's forward as resumable stages
    levels: Any = field(init=False, default=None)  # its level-by-level forward (predict/stagewise.py), made on first use

    @classmethod
    def build(cls, spec: Spec, state_dict: dict[str, torch.Tensor] | None = None, device: str = "cpu") -> ContextNetwork:
        network = build_model(spec).eval()
        if state_dict is not None:
            network.load_state_dict(state_dict)
        attentions: list[GlobalAttention] = []
        ratios: list[float] = []

        def record(module: nn.Module, inputs: Any, output: Any) -> None:
            attentions.append(module)
            ratios.append(output[1][0, 0].numel() / inputs[0][0, 0].numel())

        if not any(isinstance(m, GlobalAttention) for m in network.modules()):
            raise UserError(f"--global-context: {spec.name} ({spec.model.architecture}) has no GVTOs, so no global "
                            "state; plain --tile is already exact away from the image borders")
        if any(m.softmax for m in network.modules() if isinstance(m, GlobalAttention)):  # its contexts do not add up
            raise UserError(f"--global-context: {spec.name}'s GVTOs use softmax attention, which has no global state "
                            "to sum over tiles; predict it --whole")
        step = spec.model.size_step()
        shape = (1, getattr(spec.model, "in_channels", 1), *[2 * s for s in step])
        probe(network, shape, [(m, record) for m in network.modules() if isinstance(m, GlobalAttention)])
        halo = list(tiling_halo(network, shape, step).values())
        # oneDNN's convolutions skip their layout conversions on channels-last tensors: ~20% faster on CPU
        # (CARE GVTNet, 64x192x192 in 64x96x96 tiles: 37 s against 45-49 s, the same result within 5e-7)
        network = network.to(device)
        if prefers_channels_last(torch.device(device), network):
            to_channels_last(network)
        return cls(network, spec, attentions, ratios, halo)

    def __post_init__(self) -> None:
        self.forward = ResumableForward(self.network)

    def _store(self) -> PassStore:
        if self.store is None or self.keep_bytes is not None and self.store.budget != self.keep_bytes:
            from .memory import kept_state_bytes

            device = str(next(self.network.parameters()).device)
            budget = self.keep_bytes if self.keep_bytes is not None else kept_state_bytes(device)
            self.store = PassStore(budget)
        return self.store

    def _input(self, block: np.ndarray) -> torch.Tensor:
        device = next(self.network.parameters()).device
        x = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32)).to(device)
        return channels_last_input(x) if prefers_channels_last(device, self.network) else x

    def collect_tile(self, block: np.ndarray, core: list[tuple[int, int, int]], index: int,
                     contexts: list[AttentionContext], key: Hashable = None) -> AttentionContext:
        """GVTO ``index``'s K^T V and query count over the core of one tile ``block`` (B, C_in, *T), the GVTOs
        before it applying ``contexts``. ``core``: per space axis (start, stop, tile length), tile coordinates.
        ``key``: the tile's, the same in all its passes in this process, from the first (index 0) to the
        prediction; its passes then resume where the last one stopped. None: the pass runs from the input."""
        state = AttentionContext(self.query_ratios[index])
        state.core = core
        store = self._store() if key is not None else None
        if store is not None and index == 0:  # a new series of passes: anything kept under this key is stale
            store.forget(key)
        with torch.no_grad(), _contexts(self.attentions, [*contexts[:index], state], index):
            try:
                self.forward(self._input(block), store, key)
            except ContextCollected:
                # float64: sums over tiles then agree whatever their order (one process, or Dask's tree)
                state.kv = state.kv.to(device="cpu", dtype=torch.float64) if state.kv is not None else None
                return state
        raise RuntimeError("a collecting pass ran past its GVTO")

    def predict_tile(self, block: np.ndarray, contexts: list[AttentionContext] | None, key: Hashable = None) -> np.ndarray:
        """The network on one tile (B, C_in, *T) -> (B, C_out, *T_out); every GVTO applies its whole-image
        context (None: each tile is its own context, plain tiling). ``key``: as for ``collect_tile``."""
        store = self._store() if key is not None and contexts else None
        with torch.no_grad(), _contexts(self.attentions if contexts else [], contexts or [], None):
            return self.forward(self._input(block), store, key).cpu().numpy()

    def predict(self, image: np.ndarray, tile: dict[str, int], name: str = "", global_context: bool = True,
                progress: Progress = no_progress, windows: list[list[Window]] | None = None,
                by_levels: bool = True) -> np.ndarray:
        """Whole-image output on ``image`` (B, C_in, *S), S a valid size, computed tile by tile -> (B, C_out, *S).

        ``tile`` gives the tile length per space axis letter ('z', 'y', 'x'); axes not named stay whole, and
        so does the z of a 3D-to-2D projection model (its output is (B, C_out, Y, X)).
        ``global_context=False`` lets each tile attend to itself only (plain tiling, for comparison).
        ``progress`` hears (done, total) tile passes, collecting passes included. ``windows``: per space axis, the
        tile plan's (core start, core stop, tile start, tile stop) instead (predict/plan.py; the same windows).
        With global context over several tiles the forward runs level by level (predict/stagewise.py): ``tile``
        (or the windows' tile) then bounds the memory of each stage's tiles, not their size; ``by_levels=False``
        runs the tile passes below instead (what streamed and Dask prediction run, tile by tile).
        """
        step = self.spec.model.size_step()
        axes = "zyx"[3 - len(step):]
        kept = self.spec.model.output_dims  # the trailing axes the output keeps; the others stay whole
        dropped = axes[:len(axes) - kept]
        if windows is None:
            windows = [axis_windows(n, n if a in dropped else min(n, tile.get(a, n) // s * s), h, s, a)
                       for n, a, h, s in zip(image.shape[2:], axes, self.halo, step)]
        tiles = list(itertools.product(*windows))
        passes = len(self.attentions) if global_context else 0
        levels = self.level_by_level() if by_levels and passes and len(tiles) > 1 else None
        budgets = self._level_budgets_here(levels, image.shape, tiles, name) if levels is not None else None
        if levels is not None and budgets is not None:
            return levels.predict(image, *budgets, name, progress)
        if passes:
            self._store().forget_all()  # (keys are this call's tile numbers)
        try:
            return self._predict_tiles(image, tiles, passes, kept, name, global_context, progress)
        finally:
            if passes:
                self._store().forget_all()

    def level_by_level(self) -> Optional["LevelByLevel"]:
        """The network's level-by-level forward (predict/stagewise.py), made once; None where it has none."""
        if self.levels is None:
            from .stagewise import level_by_level

            self.levels = level_by_level(self)
        return self.levels or None

    def _level_budgets_here(self, levels: "LevelByLevel", shape: tuple[int, ...], tiles: list[tuple[Window, ...]],
                            name: str) -> Optional[tuple[float, int]]:
        """``level_budgets`` for an image of ``shape`` planned in ``tiles``, or None (with a note) where the scratch
        files would not fit the temporary folder: the tile passes run instead."""
        from .stagewise import scratch_shortfall

        budgets = self.level_budgets(levels, shape, int(np.prod([t1 - t0 for _, _, t0, t1 in tiles[0]])))
        note = scratch_shortfall(levels, shape, budgets[1], name or "image")
        if note is not None:
            tqdm.write(note)
            return None
        return budgets

    def level_budgets(self, levels: "LevelByLevel", image_shape: tuple[int, ...], tile_voxels: int) -> tuple[float, int]:
        """(tile bytes, store bytes) of the level-by-level forward: within ``memory`` if given, else the memory a
        whole-network tile of ``tile_voxels`` would take, and stored values in memory up to ``keep_bytes`` (else a
        quarter of the free memory)."""
        from .budget import resident_bytes
        from .memory import kept_state_bytes

        if self.memory is not None:
            return levels.budgets(image_shape, self.memory, resident_bytes())
        device = str(next(self.network.parameters()).device)
        store_bytes = self.keep_bytes if self.keep_bytes is not None else kept_state_bytes(device)
        return levels.geometry.full_bytes_per_voxel * tile_voxels, store_bytes

    def _predict_tiles(self, image: np.ndarray, tiles: list[tuple[Window, ...]], passes: int, kept: int, name: str,
                       global_context: bool, progress: Progress) -> np.ndarray:
        contexts: list[AttentionContext] = []
        output: np.ndarray | None = None
        total = len(tiles) * (passes + 1)
        bar = tqdm(total=total, desc=f"  {name} global context", unit="tile", leave=False, disable=len(tiles) < 2)
        with bar:
            for index in range(passes):
                parts = []
                for number, combo in enumerate(tiles):
                    progress(bar.n, total)
                    bar.update()
                    block = image[(slice(None), slice(None), *[slice(t0, t1) for _, _, t0, t1 in combo])]
                    parts.append(self.collect_tile(block, [(c0 - t0, c1 - t0, t1 - t0) for c0, c1, t0, t1 in combo],
                                                   index, contexts, ("predict", number)))
                contexts.append(merge_contexts(parts))
            for number, combo in enumerate(tiles):
                progress(bar.n, total)
                bar.update()
                y = self.predict_tile(image[(slice(None), slice(None), *[slice(t0, t1) for _, _, t0, t1 in combo])],
                                      contexts if global_context else None, ("predict", number))
                if output is None:
                    output = np.zeros((*y.shape[:2], *image.shape[image.ndim - kept:]), np.float32)
                core = combo[len(combo) - kept:]
                inner = (slice(None), slice(None), *[slice(c0 - t0, c1 - t0) for c0, c1, t0, _ in core])
                output[(slice(None), slice(None), *[slice(c0, c1) for c0, c1, _, _ in core])] = y[inner]
        assert output is not None
        progress(total, total)
        return output


def merge_contexts(parts: list[AttentionContext]) -> AttentionContext:
    """The sum of per-tile contexts of one GVTO: K^T V (float64) and query counts add up over disjoint cores."""
    merged = AttentionContext(parts[0].query_ratio)
    merged.kv = sum((p.kv for p in parts[1:] if p.kv is not None), parts[0].kv)
    merged.query_count = sum(p.query_count for p in parts)
    return merged


def context_network_from_package(descr: Any, device: str) -> ContextNetwork:
    """The package's GVTNet built from its own spec and state dict (no package code runs)."""
    import io

    from bioimageio.spec.utils import get_reader

    config = getattr(getattr(descr, "config", None), "gvtnet_zoo", None)
    if not isinstance(config, dict) or "spec" not in config:
        raise UserError("--global-context needs a package made by gvtnet-zoo (its rdf.yaml carries "
                        "config.gvtnet_zoo.spec); predict this one with --whole or --tile")
    weights = getattr(descr.weights, "pytorch_state_dict", None)
    if weights is None:
        raise UserError("--global-context needs the package's pytorch_state_dict weights, which this package lacks")
    spec = Spec.model_validate(config["spec"])
    state = torch.load(io.BytesIO(get_reader(weights.source, sha256=weights.sha256).read()), map_location="cpu",
                       weights_only=True)
    return ContextNetwork.build(spec, state, device)
