"""Physical voxel sizes of a TIFF: from its OME-XML (PhysicalSizeX/Y/Z and their units) or ImageJ's
metadata (the X/YResolution tags and ``spacing``, ``unit``), so that streamed outputs keep them."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree
from typing import Any

UNITS = {"µm": "micrometer", "um": "micrometer", "micron": "micrometer", "microns": "micrometer",
         "\\u00B5m": "micrometer", "nm": "nanometer", "mm": "millimeter", "m": "meter"}


def _ome(tiff: Any) -> tuple[dict[str, float], dict[str, str]]:
    root = ElementTree.fromstring(tiff.ome_metadata)
    pixels = next((e for e in root.iter() if e.tag.endswith("Pixels")), None)
    scales, units = {}, {}
    if pixels is None:
        return scales, units
    for axis in "zyx":
        size = pixels.get(f"PhysicalSize{axis.upper()}")
        if size is not None:
            scales[axis] = float(size)
            units[axis] = UNITS.get(pixels.get(f"PhysicalSize{axis.upper()}Unit", "µm"), "micrometer")
    return scales, units


def _imagej(tiff: Any) -> tuple[dict[str, float], dict[str, str]]:
    meta, page = tiff.imagej_metadata or {}, tiff.pages[0]
    unit = UNITS.get(str(meta.get("unit", "")).strip())
    scales = {}
    for axis, tag in (("x", "XResolution"), ("y", "YResolution")):
        found = page.tags.get(tag)
        if found is not None:  # pixels per unit -> unit per pixel; 0 pixels per unit is an unknown size (volumes.py)
            scales[axis] = found.value[1] / found.value[0] if found.value[0] else math.inf
    if meta.get("spacing") is not None:  # a spacing of 0 too: it is dropped with a warning, not silently
        scales["z"] = float(meta["spacing"])
    if unit is None:  # no unit: sizes of unknown meaning (often 1 pixel per inch from a writer's default)
        return {}, {}
    return scales, {a: unit for a in scales}


def tiff_physical_sizes(tiff: Any) -> tuple[dict[str, float], dict[str, str]]:
    """({axis letter: voxel size}, {axis letter: NGFF unit}) of an open tifffile.TiffFile; empty when unknown.
    Sizes are as the file has them, NaN, zero or negative ones included: volumes.py drops those with a warning."""
    try:
        if tiff.is_ome and tiff.ome_metadata:
            return _ome(tiff)
        if tiff.is_imagej:
            return _imagej(tiff)
    except (ElementTree.ParseError, ValueError, TypeError, KeyError, IndexError):
        pass  # unreadable metadata: the sizes stay unknown, as for any plain TIFF
    return {}, {}
