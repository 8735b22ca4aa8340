"""Physical voxel sizes of a TIFF: from its OME-XML (PhysicalSizeX/Y/Z and their units) or ImageJ's
metadata (the X/YResolution tags and ``spacing``, ``unit``), so that outputs keep them; and the ImageJ metadata
that carries them into a TIFF output (``Calibration``)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from typing import Any, Optional

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


# the NGFF units tiff_physical_sizes gives, in micrometres and as ImageJ names them ("um" shows as µm in Fiji)
MICROMETERS = {"nanometer": 1e-3, "micrometer": 1.0, "millimeter": 1e3, "meter": 1e6}
IMAGEJ_UNITS = {"nanometer": "nm", "micrometer": "um", "millimeter": "mm", "meter": "m"}


@dataclass(frozen=True)
class Calibration:
    """Voxel sizes of an image's space axes ({letter of 'zyx': size}), their NGFF units, and the axes' lengths
    in voxels (what a resampled image's sizes follow). Empty: unknown."""

    sizes: dict[str, float] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    lengths: dict[str, int] = field(default_factory=dict)

    def resampled(self, lengths: dict[str, int]) -> Calibration:
        """The calibration of an image of ``lengths`` voxels over the same field of view (a model's output):
        each voxel size times (length here / length there), so an output at twice the input's size has half its
        voxel size. An axis the image lacks (a projection's z) or whose length or size is unknown has none."""
        kept = [a for a in self.sizes if a in self.lengths and lengths.get(a, 0) > 0]
        return Calibration({a: self.sizes[a] * self.lengths[a] / lengths[a] for a in kept},
                           {a: self.units[a] for a in kept if a in self.units}, {a: lengths[a] for a in kept})

    def imagej(self) -> tuple[Optional[tuple[float, float]], dict[str, Any]]:
        """(X/YResolution in voxels per unit, ImageJ metadata ``unit`` and ``spacing`` (z)) as Fiji reads them;
        (None, {}) unless y and x are known in a unit ImageJ names. ImageJ has one unit for all axes: z is
        converted to x's."""
        if any(self.units.get(a) not in MICROMETERS or a not in self.sizes for a in "yx"):
            return None, {}  # a unit with x and y of 1 would invent a calibration
        unit = self.units["x"]

        def in_unit(axis: str) -> float:
            return self.sizes[axis] * MICROMETERS[self.units[axis]] / MICROMETERS[unit]

        meta: dict[str, Any] = {"unit": IMAGEJ_UNITS[unit]}
        if "z" in self.sizes and self.units.get("z") in MICROMETERS:
            meta["spacing"] = in_unit("z")
        return (1 / in_unit("x"), 1 / in_unit("y")), meta
