"""Volumes read lazily: OME-Zarr (NGFF 0.3 and 0.4 on Zarr v2, NGFF 0.5 on Zarr v3; metadata in ngff_meta.py),
plain Zarr arrays and TIFF through tifffile's Zarr view. Only the regions asked for are read; axes are letters of
'tczyx'. Voxel sizes that are not positive finite numbers are dropped with a MetadataWarning.

A ``VolumeSource`` is plain data (a path, a level, axes), so a Dask worker opens the store itself instead
of receiving voxels from the client.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import InputWarning, UserError
from .files import TIFF_AXES, is_zarr, to_model_axes
from .ngff_meta import metadata_file, multiscales, read_level
from .tiff_meta import tiff_physical_sizes


class MetadataWarning(InputWarning):
    """A file's metadata holds a value that cannot be used (e.g. a NaN voxel size); it is treated as unknown."""


@dataclass(frozen=True)
class VolumeSource:
    """Where a lazy volume lives and how to read it; ``open()`` gives the array."""

    path: str
    kind: str  # "zarr" (OME-Zarr or plain) or "tiff"
    dataset: str = ""  # the array's path inside the Zarr group ("" for an array at the root)
    axes: str = ""  # letters of 'tczyx', one per array axis
    shape: tuple[int, ...] = ()
    dtype: str = "float32"
    chunks: tuple[int, ...] = ()
    scales: dict[str, float] = field(default_factory=dict)  # physical voxel size per axis letter
    units: dict[str, str] = field(default_factory=dict)
    ngff_version: Optional[str] = None  # "0.4" / "0.5" for OME-Zarr, None otherwise
    translations: dict[str, float] = field(default_factory=dict)  # physical position of the first voxel's centre

    def open(self) -> Any:
        """The array (Zarr, read-only); indexing reads only the chunks it touches."""
        import zarr

        if self.kind == "tiff":
            import tifffile

            store = tifffile.imread(self.path, aszarr=True)
            opened = zarr.open(store, mode="r")
            array = opened if isinstance(opened, zarr.Array) else opened["0"]
            if any(c > s for c, s in zip(array.chunks, array.shape)):
                # tifffile's store of pages of 1 x 1 (a z line) names chunks it cannot read: such a file is tiny
                return tifffile.imread(self.path).reshape(array.shape)
            return array
        root = zarr.open(self.path, mode="r")
        return root[self.dataset] if self.dataset else root

    @property
    def name(self) -> str:
        return Path(self.path).name


def _open_zarr(path: Path, level: int, override: Optional[str]) -> VolumeSource:
    import zarr

    try:
        root = zarr.open(str(path), mode="r")
    except Exception as err:  # noqa: BLE001 - broken stores raise many kinds
        raise UserError(f"cannot open {path} as Zarr ({type(err).__name__}: {err}); check the path") from None
    if isinstance(root, zarr.Array):
        if level:
            raise UserError(f"{path} is a single Zarr array without levels; drop --level")
        return _source(path, "zarr", "", root, override or "", {}, {}, None)
    entry, version = multiscales(root.attrs.asdict(), metadata_file(path))
    if entry is None:
        arrays = sorted(name for name, _ in root.arrays())
        raise UserError(f"{path} is a Zarr group without OME-Zarr multiscales metadata (arrays: "
                        f"{', '.join(arrays) or 'none'}); give the array's own folder, e.g. {path / (arrays or ['0'])[0]}")
    chosen = read_level(root, path, entry, version, level, override)
    source = _source(path, "zarr", chosen.dataset, chosen.array, chosen.axes, chosen.scales, chosen.units, version)
    return replace(source, translations=_finite_translations(path, chosen.translations))


def _known_sizes(path: Path, scales: dict[str, float], units: dict[str, str]) -> tuple[dict[str, float], dict[str, str]]:
    """Only positive finite voxel sizes: a NaN, zero or negative one (a writer's placeholder, a sign convention)
    would be copied into the output's OME-Zarr scale, which viewers and the NGFF validator reject. Such an axis
    is treated as unknown (scale 1, no unit), with one warning per file."""
    bad = {a: v for a, v in scales.items() if not (math.isfinite(v) and v > 0)}
    if bad:
        listed = ", ".join(f"{a} ({v:g})" for a, v in bad.items())
        warnings.warn(f"{path.name}: voxel size not a positive finite number on ax{'es' if len(bad) > 1 else 'is'} "
                      f"{listed}; treated as unknown (scale 1)", MetadataWarning, stacklevel=5)  # open_volume's caller
    return ({a: v for a, v in scales.items() if a not in bad},
            {a: u for a, u in units.items() if a not in bad})


def _finite_translations(path: Path, translations: dict[str, float]) -> dict[str, float]:
    """Positions without NaN or Inf (the output would carry them); such an axis starts at 0, with a warning."""
    bad = {a: v for a, v in translations.items() if not math.isfinite(v)}
    if bad:
        listed = ", ".join(f"{a} ({v:g})" for a, v in bad.items())
        warnings.warn(f"{path.name}: position (translation) not a finite number on ax{'es' if len(bad) > 1 else 'is'} "
                      f"{listed}; treated as unknown (0)", MetadataWarning, stacklevel=4)  # open_volume's caller
    return {a: v for a, v in translations.items() if a not in bad}


def _open_tiff(path: Path, override: Optional[str]) -> VolumeSource:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            series = tiff.series[0]
            letters = "".join(TIFF_AXES.get(a) or "?" for a in series.axes).replace("b", "t")  # Q: unknown
            scales, units = tiff_physical_sizes(tiff)
        array = VolumeSource(str(path), "tiff").open()
    except Exception as err:  # noqa: BLE001
        raise UserError(f"cannot read {path} ({type(err).__name__}: {err}); replace or remove it") from None
    axes = override or (letters if "?" not in letters and len(set(letters)) == len(letters) else "")
    return _source(path, "tiff", "", array, axes, scales, units, None)


def _source(path: Path, kind: str, dataset: str, array: Any, axes: str, scales: dict[str, float],
            units: dict[str, str], version: Optional[str]) -> VolumeSource:
    axes = axes.lower()
    if not axes:
        axes = {2: "yx", 3: "zyx", 4: "czyx", 5: "tczyx"}.get(array.ndim, "")
    if len(axes) != array.ndim or set(axes) - set("tczyx") or len(set(axes)) != len(axes):
        raise UserError(f"{path}: axes {axes or '(none)'!r} do not fit its {array.ndim} dimensions {array.shape}; "
                        "give --axes with one distinct letter of tczyx per dimension")
    scales, units = _known_sizes(path, {a: v for a, v in scales.items() if a in axes},
                                 {a: u for a, u in units.items() if a in axes})
    return VolumeSource(str(path), kind, dataset, axes, tuple(array.shape), str(array.dtype), tuple(getattr(array, "chunks", array.shape)),
                        scales, units, version)


def open_volume(path: Path, level: Optional[int] = None, axes: Optional[str] = None) -> VolumeSource:
    """A lazy volume: an OME-Zarr image (its ``level``, 0 = full resolution), a Zarr array or a TIFF file."""
    if level is not None and level < 0:  # Python's negative index would silently pick the coarsest level
        raise UserError(f"--level {level}: levels count from 0 (full resolution) upwards; give 0 or more")
    if not path.exists():
        raise UserError(f"input {path} not found; check the path")
    if is_zarr(path):
        return _open_zarr(path, level or 0, axes.replace("b", "t") if axes else None)
    if level:
        raise UserError(f"--level {level}: {path.name} is not an OME-Zarr image with levels")
    return _open_tiff(path, axes.replace("b", "t") if axes else None)


def read_region(array: Any, source: VolumeSource, time: int, region: dict[str, tuple[int, int]],
                model_axes: str) -> np.ndarray:
    """One time point's region (space letter -> [start, stop), the rest whole) as float32 in ``model_axes``
    (letters of 'bczyx'; the batch axis is the time point, missing axes become singletons)."""
    index = tuple(time if a == "t" else slice(*region[a]) if a in region else slice(None) for a in source.axes)
    try:
        block = np.asarray(array[index], dtype=np.float32)
    except Exception as err:  # noqa: BLE001 - a damaged chunk or tile: the codecs raise many kinds
        where = ", ".join(f"{a} {start}-{stop}" for a, (start, stop) in region.items())
        raise UserError(f"cannot read {source.path} at {where} ({type(err).__name__}: {str(err)[:200]}); "
                        "the file is damaged: repair or replace it") from None
    return to_model_axes(block, source.axes.replace("t", ""), model_axes, source.name)
