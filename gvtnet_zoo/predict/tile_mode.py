"""Which tiles a prediction runs, and what it tells the user about them.

A GVTO's softmax-free attention sums K^T V over its whole input, so a GVTNet's output at every voxel depends on
the whole tile: plain tiles change every voxel, and no seam check can see it (both neighbours are wrong alike).
Tiles of a gvtnet-zoo GVTNet therefore run with global context (predict/global_context.py: the whole image's
result in tiles) unless plain tiles are asked for, and then one warning says what they do. Local networks
(U-Nets, any package not made by gvtnet-zoo) keep plain tiles and the seam check (predict/halo_check.py).
Decided from the package's description alone (config.gvtnet_zoo.spec): no torch, no weights read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from . import memory

MANY_TILES = 8  # more tiles than this for an image that fits whole: --whole is faster, say so


@dataclass(frozen=True)
class TileRule:
    """What tiling does to a package's network."""

    gvtnet: bool  # a gvtnet-zoo network with at least one GVTO: plain tiles change every voxel
    refusal: Optional[str] = None  # why global context cannot run for it (None: it can)
    gvtos: int = 0  # the network's GVTOs: global context runs one collecting pass per GVTO

    @property
    def exact(self) -> bool:
        """Whether tiles run with global context by default (a GVTNet it applies to)."""
        return self.gvtnet and self.refusal is None


def _gvto_count(model: Any) -> int:
    """GVTOs a spec's model section builds (models/gvtnet.py, models/projection.py), without building it."""
    if model.architecture == "gvtnet_projection":
        # its bottom GVTO and one up-sampling GVTO per stage, then the 2D GVTNet's
        return 1 + model.projection_stages + _gvto_count(model.network)
    if model.architecture != "gvtnet":
        return 0
    resampling = (model.depth - 1) * (model.down_sampling.startswith("gvto") + model.up_sampling.startswith("gvto"))
    return model.bottom.count("gvto") + resampling


def _softmax(model: Any) -> bool:
    inner = getattr(model, "network", model)
    return bool(getattr(inner, "softmax_attention", False))


def tile_rule(descr: Any) -> TileRule:
    """The package's ``TileRule``: a GVTNet only when gvtnet-zoo made it (its rdf.yaml carries the spec)."""
    from pydantic import ValidationError

    from ..config import Spec

    config = getattr(getattr(descr, "config", None), "gvtnet_zoo", None)
    if not isinstance(config, dict) or not isinstance(config.get("spec"), dict):
        return TileRule(False)
    try:
        model = Spec.model_validate(config["spec"]).model
    except ValidationError:  # written by another gvtnet-zoo version: nothing known about its network
        return TileRule(False)
    gvtos = _gvto_count(model)
    if not gvtos:
        return TileRule(False)
    if _softmax(model):
        return TileRule(True, "its GVTOs use softmax attention, which has no global state to sum over tiles", gvtos)
    if getattr(descr.weights, "pytorch_state_dict", None) is None:
        return TileRule(True, "global context runs the package's pytorch_state_dict weights, which it lacks", gvtos)
    return TileRule(True, None, gvtos)


def plain_tiles_warning(name: str, rule: TileRule) -> Optional[str]:
    """The one line that plain tiles of a GVTNet always get (None for a local network, whose seams the halo
    check measures): requested (--plain-tiles), or the only tiles possible for the package."""
    if not rule.gvtnet:
        return None
    fix = ("drop --plain-tiles for the exact result" if rule.refusal is None
           else f"predict --whole for the exact result (no global context: {rule.refusal})")
    return (f"warning: {name}: plain tiles change every voxel of a GVTNet's output (its attention sees only the "
            f"tile, not the image); {fix}")


def many_tiles_hint(name: str, tiles: int, voxels: int, devices: list[str], gvtos: int) -> Optional[str]:
    """One line when an image that fits whole (auto mode's limit, and the machine's memory) is cut into more than
    MANY_TILES tiles: each tile re-reads its halos, and global context runs more than one forward's work."""
    if tiles <= MANY_TILES:
        return None
    limit = memory.free_memory_bytes(devices) // 2 // memory.BYTES_PER_VOXEL
    if voxels > limit or not memory.fits_in_memory(voxels, memory.free_memory_bytes(["cpu"])):
        return None
    if gvtos:  # level by level (one process) or one pass per GVTO (Dask): either way more than one forward
        return (f"note: {name}: {tiles} tiles planned for {voxels:,} voxels; the image fits whole, so --whole "
                "would be faster than global context over tiles")
    return (f"note: {name}: {tiles} tiles for {voxels:,} voxels (each re-reads its halos); the image fits whole, so "
            "--whole would be faster")


def say_once(echo: Callable[[str], None]) -> Callable[[str], None]:
    """``echo`` for the first line only: a run's warning or hint, not one per file."""
    said: list[str] = []

    def once(line: str) -> None:
        if not said:
            said.append(line)
            echo(line)

    return once
