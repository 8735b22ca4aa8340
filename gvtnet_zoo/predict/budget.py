"""Tiles sized from a memory budget: ``predict --memory SIZE`` picks the largest tile whose peak fits.

A tile's peak is modelled as ``resident + PEAK_PER_ACTIVATION_BYTE * activations * tile voxels``: ``resident`` is
what the process holds before the first tile (PyTorch, the model, in memory the image and its copies: VmRSS when
the tile is planned), and ``activations`` the bytes every leaf module of the network writes per input voxel,
counted by a forward on a small input at start-up (a probe of tensor sizes, milliseconds; no memory is measured
then). The factor is a calibration measured once (2026-12-05, 2 CPU threads, VmHWM of a fresh process minus its
VmRSS before the call, one tile each): CARE GVTNet 32x64x64 0.46, 32x128x128 0.42, 64x128x128 0.36; label-free
GVTNet 32x128x128 0.26; the 2D demo GVTNet 512x512 0.34, 1024x1024 0.26. The largest (0.46, rounded down to 0.45
for the larger tiles budgets pick) keeps the model on the safe side. Packages without a gvtnet-zoo spec use
memory.BYTES_PER_VOXEL instead. Global context gives its tile half of the budget beyond what is resident, and
its kept pass states (predict/pass_reuse.py) the other half, when that half holds every tile's state; otherwise
the tile takes the whole budget (fewer halos) and what is left keeps the states of as many tiles as fit.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

import torch
from torch import nn

from ..errors import UserError

# peak resident bytes over the bytes the leaf modules write, per input voxel (fresh processes, VmHWM)
PEAK_PER_ACTIVATION_BYTE = 0.45
GLOBAL_CONTEXT_TILE_SHARE = 0.5  # the rest keeps the tiles' pass states
# global context's tiles peak higher than plain ones of the same size: CARE GVTNet, 64x108x96 tiles of 64x288x288,
# 1.43 against 1.25 GiB VmHWM (benchmarks/results/inference_modes.md, 2026-12-05), the passes' beyond a forward
GLOBAL_CONTEXT_PEAK = 1.2
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20,
          "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}


def parse_memory(text: str) -> int:
    """'1.5GiB', '800MiB', '2G', '2000000000' -> bytes (K, M, G, T: powers of 1000; KiB, MiB, GiB, TiB: of 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS or float(match.group(1)) * _UNITS[unit] < 1:
        raise UserError(f"--memory expects a size like 1.5GiB, 800MiB or 4G, got {text!r}")
    return int(float(match.group(1)) * _UNITS[unit])


def human(size: float) -> str:
    """Bytes as GiB, MiB or KiB, for messages."""
    if abs(size) >= 2**30:
        return f"{size / 2**30:.2f} GiB"
    return f"{size / 2**20:.0f} MiB" if abs(size) >= 2**20 else f"{size / 2**10:.0f} KiB"


def activation_bytes_per_voxel(network: nn.Module, shape: tuple[int, ...]) -> float:
    """Bytes all leaf modules output in one forward on a (1, C, *S) input ``shape``, per input voxel."""
    total = 0

    def count(_module: nn.Module, _inputs: Any, output: Any) -> None:
        nonlocal total
        for tensor in output if isinstance(output, (tuple, list)) else [output]:
            if isinstance(tensor, torch.Tensor):
                total += tensor.element_size() * tensor.nelement()

    leaves = [m for m in network.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            network(torch.zeros(shape, device=next(network.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()
    return total / math.prod(shape[2:])


def spec_bytes_per_voxel(spec: Any) -> float:
    """Modelled peak bytes per tile voxel of a gvtnet-zoo spec's network (beyond what is resident)."""
    from ..models import build_model

    network = build_model(spec).eval()
    step = spec.model.size_step()
    shape = (1, getattr(spec.model, "in_channels", 1), *[4 * s for s in step])
    return PEAK_PER_ACTIVATION_BYTE * activation_bytes_per_voxel(network, shape)


def package_bytes_per_voxel(descr: Any) -> float:
    """``spec_bytes_per_voxel`` of a gvtnet-zoo package; memory.BYTES_PER_VOXEL for any other."""
    from ..config import Spec
    from .memory import BYTES_PER_VOXEL

    config = getattr(getattr(descr, "config", None), "gvtnet_zoo", None)
    if not isinstance(config, dict) or "spec" not in config:
        return float(BYTES_PER_VOXEL)
    return spec_bytes_per_voxel(Spec.model_validate(config["spec"]))


def _lengths(size: int, halo: int, step: int) -> list[int]:
    """Tile lengths worth trying along one axis, longest first: the whole axis, then n tiles with cores of equal
    length on the step grid, down to the smallest tile that leaves a core (2 halos + 1 step)."""
    smallest = 2 * halo + step
    lengths, n = [size], 2
    while True:
        length = math.ceil(size / n / step) * step + 2 * halo
        if length < lengths[-1]:
            lengths.append(max(length, smallest))
        if length <= smallest:
            return sorted(set(lengths), reverse=True)
        n += 1


def tile_for_budget(budget: int, resident: int, bytes_per_voxel: float, sizes: dict[str, int], halo: dict[str, int],
                    step: dict[str, int], tiled: set[str] | None = None) -> dict[str, int]:
    """The largest tile (axis -> length) whose modelled peak ``resident + bytes_per_voxel * voxels`` is within
    ``budget``: the longest axis is cut first, into tiles with cores of equal length, so tiles stay near cubes
    and the halos' share small. ``tiled``: the axes that may be cut (default all); the others stay whole."""
    options = {a: _lengths(n, halo.get(a, 0), step.get(a, 1)) if a in (tiled or sizes) else [n] for a, n in sizes.items()}
    at = {a: 0 for a in sizes}

    def peak() -> float:
        return resident + bytes_per_voxel * math.prod(options[a][i] for a, i in at.items())

    while peak() > budget:
        cuttable = [a for a in sizes if at[a] + 1 < len(options[a])]
        if not cuttable:
            smallest = {a: options[a][at[a]] for a in sizes}
            raise UserError(f"--memory {human(budget)} is less than the smallest tile needs: "
                            f"{'x'.join(map(str, smallest.values()))} ({', '.join(smallest)}) takes about "
                            f"{human(peak())} with what is resident; give more memory")
        axis = max(cuttable, key=lambda a: (options[a][at[a]], "zyx".index(a) if a in "zyx" else 0))
        at[axis] += 1
    return {a: options[a][i] for a, i in at.items()}


def resident_bytes() -> int:
    """What this process holds now (VmRSS); 0 where /proc is missing. Memory freed but kept by glibc's allocator is
    returned to the system first (malloc_trim), or a budget planned after a prediction (the next time point of a
    series) would count it as held: a hostile review saw 476 -> 762 MiB over five time points without it."""
    _trim_allocator()
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    """glibc, loaded once (find_library runs ldconfig); None where there is none."""
    import ctypes
    import ctypes.util

    try:
        name = ctypes.util.find_library("c")
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def _glibc(function: str, *args: int) -> None:
    """Calls a glibc allocator function where there is one (Linux with glibc); nothing elsewhere."""
    getattr(_libc(), function, lambda *_: 0)(*args)


def _trim_allocator() -> None:
    """glibc's malloc_trim(0): freed memory back to the system."""
    _glibc("malloc_trim", 0)


def one_allocator_arena() -> None:
    """glibc's mallopt(M_ARENA_MAX, 1), for a --memory run: with an arena per thread, freed blocks stay in the
    arena that made them, and the same run's peak varied from 636 to 844 MiB under --memory 700MiB (a 4-channel 3D
    GVTNet, 61x250x243, five runs on 2 cores, /usr/bin/time by hand); with one arena 619-655 MiB (three runs)."""
    _glibc("mallopt", -8, 1)  # M_ARENA_MAX


def budget_plan(budget: int, bytes_per_voxel: float, sizes: dict[str, int], halo: dict[str, int], step: dict[str, int],
                tiled: set[str] | None = None, global_context: bool = False, resident: int | None = None,
                state_per_voxel: float = 0.0) -> tuple[dict[str, int], int]:
    """(tile, bytes left for global context's kept pass states) within ``budget`` for the process's peak.
    Plain tiles take all of it beyond what is ``resident`` (default: this process's now). Global context's tile
    takes GLOBAL_CONTEXT_TILE_SHARE of it when the rest then keeps every tile's pass state (``state_per_voxel``
    bytes per tile voxel), else all of it: a smaller tile costs more in halos than the few states kept save."""
    resident = resident_bytes() if resident is None else resident
    if budget <= resident:
        raise UserError(f"--memory {human(budget)} is less than this process already holds ({human(resident)}: "
                        "PyTorch, the model and the image); give more memory")
    tile = tile_for_budget(budget, resident, bytes_per_voxel, sizes, halo, step, tiled)
    if global_context and len(_windows(tile, sizes, halo)) > 1:
        shared = tile_for_budget(resident + int((budget - resident) * GLOBAL_CONTEXT_TILE_SHARE), resident,
                                 bytes_per_voxel, sizes, halo, step, tiled)
        states = state_per_voxel * sum(math.prod(t) for t in _windows(shared, sizes, halo))
        if resident + bytes_per_voxel * math.prod(shared.values()) + states <= budget:
            tile = shared
    return tile, max(0, int(budget - resident - bytes_per_voxel * math.prod(tile.values())))


def _windows(tile: dict[str, int], sizes: dict[str, int], halo: dict[str, int]) -> list[tuple[int, ...]]:
    """The tile lengths (per axis) of every tile of ``tile`` over ``sizes``: cores of tile - 2 halos."""
    counts = [1 if tile[a] >= n else math.ceil(n / max(1, tile[a] - 2 * halo.get(a, 0))) for a, n in sizes.items()]
    return [tuple(min(tile[a], n) for a, n in sizes.items())] * math.prod(counts)


def context_plan(network: Any, budget: int, shape: tuple[int, ...], global_context: bool = True,
                 resident: int | None = None) -> tuple[dict[str, int], int]:
    """``budget_plan`` for a ContextNetwork (predict/global_context.py) on an image of space ``shape``: z stays
    whole where the output drops it (projection models)."""
    step = network.spec.model.size_step()
    axes = "zyx"[3 - len(step):]
    kept = axes[len(axes) - network.spec.model.output_dims:]
    probe = (1, getattr(network.spec.model, "in_channels", 1), *[4 * s for s in step])
    per_voxel = PEAK_PER_ACTIVATION_BYTE * activation_bytes_per_voxel(network.network, probe)
    per_voxel *= GLOBAL_CONTEXT_PEAK if global_context else 1.0
    device = next(network.network.parameters()).device
    state = network.forward.state_bytes_per_voxel(torch.zeros(probe, device=device)) if global_context else 0.0
    return budget_plan(budget, per_voxel, dict(zip(axes, shape)), dict(zip(axes, network.halo)), dict(zip(axes, step)),
                       set(kept), global_context, resident, state)


def package_tile(descr: Any, sizes: dict[str, int], memory: int, halo_override: dict[str, int],
                 network: Any = None) -> dict[str, int]:
    """``--memory``'s tile for an image of ``sizes`` (space axis id -> length) and a package's first input:
    global context's (``network``, a ContextNetwork, whose kept pass states get the rest of the budget) or plain
    tiles' (the package's declared halos; its spec's peak model, else memory.BYTES_PER_VOXEL)."""
    from .halos import package_halo
    from .plan import grid_step

    one_allocator_arena()  # every --memory run, CLI or Python, in memory or streamed
    if network is not None:
        axes = "zyx"[3 - len(network.halo):]
        tile, network.keep_bytes = context_plan(network, memory, tuple(sizes.get(a, 1) for a in axes))
        network.store = None  # made anew with this budget
        network.memory = memory  # in memory, several tiles run level by level within it (predict/stagewise.py)
        return tile
    space = [a for a in descr.inputs[0].axes if a.type == "space" and str(a.id) in sizes]
    halo = {**package_halo(descr), **halo_override}
    tile, _ = budget_plan(memory, package_bytes_per_voxel(descr), {str(a.id): sizes[str(a.id)] for a in space},
                          halo, {str(a.id): grid_step(a) for a in space})
    return tile
