"""Global context level by level: a GVTNet's whole-image forward computed segment by segment, each over tiles.

The tile passes of predict/global_context.py give every tile the halo of the whole network (24 voxels a side for
the CARE GVTNet) and run the encoder again for every GVTO. Here the forward's stages (predict/pass_reuse.py) are
grouped into segments (predict/stage_geometry.py: cut before each stage holding a GVTO and where the values
crossing the cut are stored anyway); each segment runs over the whole image in tiles whose halo is the reach of
that segment's convolutions alone (for the CARE GVTNet 4 or 8 voxels, 0 for the bottom GVTO), and writes the
values later segments read (the encoder outputs the decoder merges, the next GVTO's input) over the whole image
into a ``ValueStore``. A segment starting with a GVTO first sums that GVTO's keys and values over the tile cores
of its input (nothing runs past the GVTO), then runs. So every convolution runs about once per voxel (plus its
own halo), the encoder once, and each GVTO sees the whole image, as in one forward.

Memory: one segment's tile, plus the stored values live at that point. Those beyond ``store_bytes`` go to
scratch files (predict/value_store.py), largest first: for the CARE GVTNet on 64x288x288 the first level's skip
(32 channels at full size, 680 MB) is spilled under a quarter of ``--whole``'s memory and read back twice. Each
segment's tile is the largest whose measured peak per voxel (stage_geometry.py) fits ``tile_bytes``: a segment
at a quarter of the resolution takes tiles far larger for the same memory.

Exactness is that of the tile passes: cores partition the image on the down-sampling grid, tiles start on it,
and each core voxel of each segment sees what it sees in the whole image.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Optional, Protocol

import numpy as np
import torch
from tqdm import tqdm

from ..errors import UserError
from ..models.layout import channels_last_input, prefers_channels_last
from ..nn.attention import AttentionContext, ContextCollected
from ..progress import Progress, no_progress
from .budget import human, tile_for_budget
from .pass_reuse import Stage
from .plan import Window, axis_windows
from .stage_geometry import Segment, probe_geometry, run_stages
from .value_store import ValueStore


# kept out of the tiles' share of a --memory budget: buffers no tensor count sees (oneDNN's scratch, the reads'
# and writes' row buffers, allocator arenas). Without it a hostile review measured narrow networks (4-8 channels,
# one thread) peaking at 1.02-1.24x budgets of 0.6-1 GiB; the full-width CARE GVTNet stayed at 0.78x of 1.35 GiB
TILE_RESERVE = 128 * 2**20


class Image(Protocol):
    """The network input over the whole image, read by region: (B, C_in, *S)."""

    shape: tuple[int, ...]

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        """(B, C_in, *R) of the space ``region``."""


@dataclass(frozen=True)
class ArrayImage:
    """An image in memory as an ``Image``."""

    array: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        return self.array[(slice(None), slice(None), *region)]


def live_peak(sizes: dict[str, int], made: dict[str, int], last: dict[str, int]) -> int:
    """The most of ``sizes``'s values held at once, each from the segment that writes it (``made``) to the last that
    reads it (``last``)."""
    return max((sum(b for n, b in sizes.items() if made[n] <= i <= last[n])
                for i in range(max(last.values(), default=-1) + 1)), default=0)


def spill_plan(sizes: dict[str, int], made: dict[str, int], last: dict[str, int], budget: int) -> set[str]:
    """The values to keep on disk so that those in memory never exceed ``budget`` bytes at once, largest first."""
    spilled: set[str] = set()
    for name in sorted(sizes, key=lambda n: -sizes[n]):
        if live_peak({n: b for n, b in sizes.items() if n not in spilled}, made, last) <= budget:
            break
        spilled.add(name)
    return spilled


class LevelByLevel:
    """The level-by-level forward of a ContextNetwork (predict/global_context.py) on whole images in memory."""

    def __init__(self, network: Any) -> None:
        self.network = network
        model = network.spec.model
        self.step = model.size_step()
        self.stages: list[Stage] = network.forward.stages
        device = next(network.network.parameters()).device
        self.channels_last = prefers_channels_last(device, network.network)
        self.geometry = probe_geometry(self.stages, network.attentions, getattr(model, "in_channels", 1), self.step,
                                       channels_last_input if self.channels_last else (lambda x: x))
        segments = self.geometry.segments
        self.made = {n: i for i, seg in enumerate(segments) for n in seg.outputs}  # the segment writing each value
        self.last = {n: i for i, seg in enumerate(segments) for n in seg.inputs}  # the last segment reading it
        self.spilled: list[str] = []  # the values the last prediction kept on disk
        self.tiles: list[int] = []  # the last prediction's tiles per segment

    def plan_store(self, image_shape: tuple[int, ...], store_bytes: int,
                   out_in_memory: bool = True) -> tuple[dict[str, tuple[int, ...]], set[str]]:
        """Shapes of the stored values (B, C, *S) on an image (B, C_in, *S_in), and those to spill to disk (the
        output "out" too, unless ``out_in_memory``: it is then held to the end, as the other values' peak allows)."""
        batch, space = image_shape[0], image_shape[2:]
        shapes = {n: (batch, self.geometry.channels[n], *[round(k * r) for k, r in zip(space[len(space) - len(ratios):], ratios)])
                  for n in self.made for ratios in [self.geometry.ratios[n]]}
        nbytes = {n: 4 * math.prod(s) for n, s in shapes.items() if n != "out" or not out_in_memory}
        # "out" is read after the last segment: held to the end
        last = {n: self.last.get(n, len(self.geometry.segments) - 1) for n in nbytes}
        return shapes, spill_plan(nbytes, self.made, last, store_bytes)

    def scratch_bytes(self, image_shape: tuple[int, ...], store_bytes: int, out_in_memory: bool = True) -> int:
        """Disk the scratch files take at most on an image (B, C_in, *S): every value planned to spill."""
        shapes, spilled = self.plan_store(image_shape, store_bytes, out_in_memory)
        return sum(4 * math.prod(shapes[n]) for n in spilled)

    def budgets(self, image_shape: tuple[int, ...], memory: int, resident: int) -> tuple[float, int]:
        """(tile bytes, store bytes) within ``memory`` for the process's peak, ``resident`` held already: stored
        values in memory up to half of the rest (the largest beyond it spilled), tiles the rest of it."""
        available = memory - resident
        if available <= 0:
            raise UserError(f"--memory {human(memory)} is less than this process already holds ({human(resident)}: "
                            "PyTorch, the model and the image); give more memory")
        shapes, spilled = self.plan_store(image_shape, available // 2)
        kept = {n: 4 * math.prod(s) for n, s in shapes.items() if n not in spilled}
        tiles = available - live_peak(kept, self.made, {n: self.last.get(n, self.made[n]) for n in kept}) - TILE_RESERVE
        if tiles <= 0:
            raise UserError(f"--memory {human(memory)} leaves nothing for tiles beside what this process holds "
                            f"({human(resident)}) and the feature maps kept in memory; give more memory")
        return tiles, available // 2

    def predict(self, image: np.ndarray, tile_bytes: float, store_bytes: int, name: str = "",
                progress: Progress = no_progress) -> np.ndarray:
        """The whole-image output on ``image`` (B, C_in, *S), S valid -> (B, C_out, *S_out): each segment in tiles
        of at most ``tile_bytes`` (modelled), stored values beyond ``store_bytes`` in a scratch store."""
        with ValueStore() as store:
            self.run(ArrayImage(image), store, tile_bytes, store_bytes, name, progress)
            return store.whole("out")

    def run(self, image: "Image", store: ValueStore, tile_bytes: float, store_bytes: int, name: str = "",
            progress: Progress = no_progress, out_in_memory: bool = True) -> None:
        """``predict`` on any ``Image``, leaving the output in ``store`` as "out" (read it before closing the
        store; in a scratch file unless ``out_in_memory`` or it fits ``store_bytes``)."""
        space = image.shape[2:]
        axes = "zyx"[3 - len(space):]
        kept = min(len(r) for r in self.geometry.ratios.values())  # a projection drops z: it stays whole
        shapes, spilled = self.plan_store(image.shape, store_bytes, out_in_memory)
        self.spilled = sorted(spilled)
        plans = []
        for segment in self.geometry.segments:
            try:
                lengths = tile_for_budget(int(tile_bytes), 0, segment.bytes_per_voxel, dict(zip(axes, space)),
                                          dict(zip(axes, segment.halo)), dict(zip(axes, self.step)),
                                          set(axes[len(axes) - kept:]))
            except UserError:
                stage = self.stages[segment.start].output
                raise UserError(f"global context: {human(tile_bytes)} for tiles (what the memory budget leaves beside "
                                f"what is resident and the stored feature maps) is less than the smallest tile of the "
                                f"network's stage {stage} needs; give more memory (--memory) or larger tiles") from None
            windows = [axis_windows(n, lengths[a], h, s, a) for n, a, h, s in zip(space, axes, segment.halo, self.step)]
            plans.append(list(itertools.product(*windows)))
        self.tiles = [len(t) for t in plans]
        total = sum(len(t) * (1 + len(s.gvtos)) for t, s in zip(plans, self.geometry.segments))
        contexts: list[AttentionContext] = []
        bar = tqdm(total=total, desc=f"  {name} global context", unit="tile", leave=False, disable=total < 2)
        with bar:
            for i, (segment, tiles) in enumerate(zip(self.geometry.segments, plans)):
                for output in segment.outputs:
                    store.create(output, shapes[output], output in spilled)
                for gvto in segment.gvtos:
                    parts = []
                    for combo in tiles:
                        progress(bar.n, total)
                        bar.update()
                        parts.append(self._collect(segment, combo, image, store, contexts, gvto))
                    from .global_context import merge_contexts

                    contexts.append(merge_contexts(parts))
                for combo in tiles:
                    progress(bar.n, total)
                    bar.update()
                    self._run(segment, combo, image, store, contexts)
                for value in [n for n, at in self.last.items() if at == i and n != "x"]:
                    store.drop(value)
            progress(total, total)

    def region(self, name: str, combo: tuple[Window, ...], core: bool = False) -> tuple[slice, ...]:
        """The value's region of a tile (or of its core), from the input windows of its trailing axes."""
        ratios = self.geometry.ratios[name]
        region = []
        for (c0, c1, t0, t1), r in zip(combo[len(combo) - len(ratios):], ratios):
            a, b = (c0, c1) if core else (t0, t1)
            region.append(slice(round(a * r), round(b * r)))
        return tuple(region)

    def _tensors(self, segment: Segment, combo: tuple[Window, ...], image: "Image",
                 store: ValueStore) -> dict[str, torch.Tensor]:
        """The segment's inputs over the tile, read straight into the layout the network runs in (no second copy)."""
        device = next(self.network.network.parameters()).device
        values = {}
        for name in segment.inputs:
            region = self.region(name, combo, core=False)
            shape = (image.shape[0], self.geometry.channels[name], *[r.stop - r.start for r in region])
            if self.channels_last:  # (B, *R, C) memory seen as (B, C, *R): PyTorch's channels-last strides
                buffer = np.empty((shape[0], *shape[2:], shape[1]), np.float32)
                view = np.moveaxis(buffer, -1, 1)
            else:
                buffer = view = np.empty(shape, np.float32)
            if name == "x":
                view[...] = image.read(region)
            else:
                store.read(name, region, view)
            tensor = torch.from_numpy(buffer)
            values[name] = (tensor.movedim(-1, 1) if self.channels_last else tensor).to(device)
        return values

    def _collect(self, segment: Segment, combo: tuple[Window, ...], image: "Image", store: ValueStore,
                 contexts: list[AttentionContext], gvto: int) -> AttentionContext:
        """GVTO ``gvto``'s K^T V and query count over the tile's core; the GVTOs before it apply ``contexts``."""
        from .global_context import _contexts

        state = AttentionContext(self.network.query_ratios[gvto])
        state.core = [(c0 - t0, c1 - t0, t1 - t0) for c0, c1, t0, t1 in combo]
        with torch.no_grad(), _contexts(self.network.attentions, [*contexts[:gvto], state], gvto):
            try:
                run_stages(self.stages, segment, self._tensors(segment, combo, image, store))
            except ContextCollected:
                state.kv = state.kv.to(device="cpu", dtype=torch.float64) if state.kv is not None else None
                return state
        raise RuntimeError("a collecting pass ran past its GVTO")

    def _run(self, segment: Segment, combo: tuple[Window, ...], image: "Image", store: ValueStore,
             contexts: list[AttentionContext]) -> None:
        """The segment on one tile, every GVTO applying its whole-image context; writes its outputs' cores."""
        from .global_context import _contexts

        with torch.no_grad(), _contexts(self.network.attentions, contexts, None):
            values = run_stages(self.stages, segment, self._tensors(segment, combo, image, store))
        for name in segment.outputs:
            tile, core = self.region(name, combo, core=False), self.region(name, combo, core=True)
            inner = tuple(slice(c.start - t.start, c.stop - t.start) for c, t in zip(core, tile))
            store.write(name, core, values[name][(slice(None), slice(None), *inner)].cpu().numpy())


def scratch_shortfall(levels: LevelByLevel, image_shape: tuple[int, ...], store_bytes: int, name: str,
                      out_in_memory: bool = True) -> Optional[str]:
    """A note when the scratch files would not fit the temporary folder with a quarter of it to spare (the tile
    passes then run instead: slower, no scratch files); None when they fit."""
    import shutil
    import tempfile

    needed = levels.scratch_bytes(image_shape, store_bytes, out_in_memory)
    folder = tempfile.gettempdir()
    free = shutil.disk_usage(folder).free
    if needed <= 0.75 * free:
        return None
    return (f"gvtnet-zoo: note: {name}: global context level by level would write {human(needed)} of scratch files, "
            f"more than the temporary folder {folder} has to spare ({human(free)} free); running one pass over the "
            "tiles per GVTO instead (slower). Set TMPDIR to a larger disk to avoid this.")


def level_by_level(network: Any) -> Optional[LevelByLevel]:
    """The network's level-by-level forward, or None where its forward is one stage (no description of it)."""
    return LevelByLevel(network) if len(network.forward.stages) > 1 else None
