"""The halo to tile with: what a package declares (each output's halo, a size offset's loss), what gvtnet-zoo
packages record beside it, and default tile sizes that leave most of each tile to its core."""

from __future__ import annotations

import math
from typing import Any

DEFAULT_TILE = {"z": 64, "y": 256, "x": 256}  # tile lengths when --tile is not given


def output_halo(descr: Any) -> dict[str, int]:
    """Per referenced input axis id, in input voxels, the largest part of a tile whose output is unreliable:
    the halo an output declares (in its own voxels) plus what a negative size offset already took."""
    from bioimageio.spec.model import v0_5

    scales = {(t.id, a.id): getattr(a, "scale", 1.0) for t in descr.inputs for a in t.axes}
    halos: dict[str, int] = {}
    for output in descr.outputs:
        for axis in output.axes:
            ref = getattr(axis, "size", None)
            if not isinstance(ref, v0_5.SizeReference):
                continue
            reach = (getattr(axis, "halo", 0) - ref.offset / 2) * axis.scale / scales.get((ref.tensor_id, ref.axis_id), 1.0)
            if reach > 0:
                halos[str(ref.axis_id)] = max(halos.get(str(ref.axis_id), 0), math.ceil(reach))
    return halos


def package_halo(descr: Any) -> dict[str, int]:
    """The halo to tile with, per input axis id: the declared ones, and for a gvtnet-zoo package z's too.

    gvtnet-zoo packages declare no z halo (it would make every input thicker than twice it) but record
    the receptive field of every axis in config.gvtnet_zoo.halo; packages written before that record
    only y and x, so z's is computed from the packaged spec (gvtnet-zoo's own code, not the package's).
    """
    halos = output_halo(descr)
    config = getattr(getattr(descr, "config", None), "gvtnet_zoo", None)
    if not isinstance(config, dict):
        return halos
    recorded = {str(a): int(h) for a, h in (config.get("halo") or {}).items()}
    if "z" not in recorded and isinstance(config.get("spec"), dict):
        from ..config import Spec
        from ..models.halo import spec_halo

        spec = Spec.model_validate(config["spec"])
        if spec.model.input_dims == 3:
            recorded = spec_halo(spec)
    for axis, h in recorded.items():
        halos[axis] = max(halos.get(axis, 0), h)
    return halos


def default_tile(descr: Any, halo: dict[str, int], preferred: dict[str, int]) -> dict[str, int]:
    """``preferred`` sizes, each grown to at least four halos plus one step so that most of a tile is kept."""
    from bioimageio.spec.model import v0_5

    steps = {str(a.id): a.size.step for t in descr.inputs for a in t.axes
             if a.type == "space" and isinstance(a.size, v0_5.ParameterizedSize)}
    return {axis: max(size, 4 * halo.get(axis, 0) + steps.get(axis, 1)) for axis, size in preferred.items()}


def context_halo(descr: Any, network: Any, override: dict[str, int]) -> dict[str, int]:
    """The halo of global-context tiles: the package's (or --halo's), at least the ContextNetwork's own
    receptive-field radius, so every core voxel sees what it sees in the whole image."""
    halos = {**package_halo(descr), **override}
    axes = "zyx"[3 - len(network.halo):]
    return {**halos, **{a: max(h, halos.get(a, 0)) for a, h in zip(axes, network.halo)}}


UNDECLARED_HALO_SHARE = 8  # a package that states no halo: tiles give 1/8 of their length on each side to it


def tiling_halo(descr: Any, override: dict[str, int], tile: dict[str, int]) -> dict[str, int]:
    """The halo per input axis: ``--halo``'s, else the package's; along a tiled axis where both are silent, 1/8 of
    the tile, so the seams of a network whose reach its package does not state are cut away (tiles overlap and
    each keeps its core) rather than left in; the halo check says when even that is too little."""
    from .plan import grid_step, valid_tile

    halos = {**package_halo(descr), **override}
    for axis in descr.inputs[0].axes:
        name = str(axis.id)
        if axis.type == "space" and name in tile and name not in override and not halos.get(name):
            length, step = valid_tile(axis, tile[name], tile[name]), grid_step(axis)
            wanted = math.ceil(length / UNDECLARED_HALO_SHARE / step) * step
            halos[name] = min(wanted, (length - step) // 2 // step * step)  # never more than leaves a core
    return halos


def tile_and_halo(descr: Any, tile: dict[str, int] | None, override: dict[str, int],
                  network: Any = None) -> tuple[dict[str, int], dict[str, int]]:
    """(tile, halo) of a tiled prediction, in memory or streamed alike: ``tile`` or DEFAULT_TILE grown for the
    halo; the halo of global context (``network``, a ContextNetwork) or plain tiles (``tiling_halo``)."""
    halo = context_halo(descr, network, override) if network is not None else {**package_halo(descr), **override}
    tile = tile or default_tile(descr, halo, DEFAULT_TILE)
    return tile, halo if network is not None else tiling_halo(descr, override, tile)

