"""Volumes read lazily: OME-Zarr (NGFF 0.4 on Zarr v2, NGFF 0.5 on Zarr v3), plain Zarr arrays and TIFF
through tifffile's Zarr view. Only the regions asked for are read; axes are letters of 'tczyx'.

A ``VolumeSource`` is plain data (a path, a level, axes), so a Dask worker opens the store itself instead
of receiving voxels from the client.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import UserError
from .files import TIFF_AXES, is_zarr, to_model_axes
from .tiff_meta import tiff_physical_sizes

NGFF_AXIS_TYPES = {"time": "t", "channel": "c"}


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
            return opened if isinstance(opened, zarr.Array) else opened["0"]
        root = zarr.open(self.path, mode="r")
        return root[self.dataset] if self.dataset else root

    @property
    def name(self) -> str:
        return Path(self.path).name


def multiscales(attrs: dict[str, Any]) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    """The first multiscales entry and the NGFF version of a group's attributes (0.5 nests them under 'ome')."""
    if "ome" in attrs and isinstance(attrs["ome"], dict):
        entries, version = attrs["ome"].get("multiscales"), attrs["ome"].get("version", "0.5")
    else:
        entries = attrs.get("multiscales")
        version = entries[0].get("version", "0.4") if entries else None
    return (entries[0], str(version)) if entries else (None, None)


def _ngff_axes(entry: dict[str, Any], path: Path) -> tuple[str, dict[str, str]]:
    letters, units = "", {}
    for axis in entry.get("axes") or []:
        name, kind = axis.get("name", ""), axis.get("type", "")
        letter = NGFF_AXIS_TYPES.get(kind, name if kind == "space" else "")
        if letter not in "tczyx" or not letter or letter in letters:
            raise UserError(f"{path}: axis {name!r} ({kind or 'no type'}) is not one of t, c, z, y, x; "
                            "give --axes to say which is which")
        letters += letter
        if axis.get("unit"):
            units[letter] = str(axis["unit"])
    return letters, units


def _open_zarr(path: Path, level: Optional[int], override: Optional[str]) -> VolumeSource:
    import zarr

    try:
        root = zarr.open(str(path), mode="r")
    except Exception as err:  # noqa: BLE001 - broken stores raise many kinds
        raise UserError(f"cannot open {path} as Zarr ({type(err).__name__}: {err}); check the path") from None
    if isinstance(root, zarr.Array):
        if level:
            raise UserError(f"{path} is a single Zarr array without levels; drop --level")
        return _source(path, "zarr", "", root, override or "", {}, {}, None)
    entry, version = multiscales(root.attrs.asdict())
    if entry is None:
        arrays = sorted(name for name, _ in root.arrays())
        raise UserError(f"{path} is a Zarr group without OME-Zarr multiscales metadata (arrays: "
                        f"{', '.join(arrays) or 'none'}); give the array's own folder, e.g. {path / (arrays or ['0'])[0]}")
    datasets = entry.get("datasets") or []
    chosen = level or 0
    if chosen >= len(datasets):
        raise UserError(f"--level {chosen}: {path} has {len(datasets)} level(s), 0 to {len(datasets) - 1}")
    dataset = datasets[chosen]
    axes, units = _ngff_axes(entry, path) if not override else (override, {})
    scales, translations = _placement(axes, dataset.get("coordinateTransformations"), entry.get("coordinateTransformations"))
    source = _source(path, "zarr", dataset["path"], root[dataset["path"]], axes, scales, units, version)
    return replace(source, translations=translations)


def _placement(axes: str, level: Any, image: Any) -> tuple[dict[str, float], dict[str, float]]:
    """(scale, translation) per axis of a level in physical space: the level's transformations, then the
    multiscale's own (NGFF applies the dataset's first): scale s_i s_d, translation s_i t_d + t_i."""
    placed = []
    for transforms in (level or [], image or []):
        scale, shift = [1.0] * len(axes), [0.0] * len(axes)
        for transform in transforms:
            if transform.get("type") == "scale":
                scale = [float(v) for v in transform["scale"]]
            elif transform.get("type") == "translation":
                shift = [float(v) for v in transform["translation"]]
        placed.append((scale, shift))
    (ds, dt), (ims, imt) = placed
    return ({a: ds[i] * ims[i] for i, a in enumerate(axes)},
            {a: ims[i] * dt[i] + imt[i] for i, a in enumerate(axes) if ims[i] * dt[i] + imt[i]})


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
    return VolumeSource(str(path), kind, dataset, axes, tuple(array.shape), str(array.dtype), tuple(array.chunks),
                        {a: v for a, v in scales.items() if a in axes}, {a: u for a, u in units.items() if a in axes},
                        version)


def open_volume(path: Path, level: Optional[int] = None, axes: Optional[str] = None) -> VolumeSource:
    """A lazy volume: an OME-Zarr image (its ``level``, 0 = full resolution), a Zarr array or a TIFF file."""
    if not path.exists():
        raise UserError(f"input {path} not found; check the path")
    if is_zarr(path):
        return _open_zarr(path, level, axes.replace("b", "t") if axes else None)
    if level:
        raise UserError(f"--level {level}: {path.name} is not an OME-Zarr image with levels")
    return _open_tiff(path, axes.replace("b", "t") if axes else None)


def read_region(array: Any, source: VolumeSource, time: int, region: dict[str, tuple[int, int]],
                model_axes: str) -> np.ndarray:
    """One time point's region (space letter -> [start, stop), the rest whole) as float32 in ``model_axes``
    (letters of 'bczyx'; the batch axis is the time point, missing axes become singletons)."""
    index = tuple(time if a == "t" else slice(*region[a]) if a in region else slice(None) for a in source.axes)
    block = np.asarray(array[index], dtype=np.float32)
    return to_model_axes(block, source.axes.replace("t", ""), model_axes, source.name)
