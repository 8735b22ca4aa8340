"""OME-Zarr multiscales metadata (NGFF 0.1 to 0.5), read defensively: what the specification allows is read
(NGFF 0.3's axes as letters, 0.4's and 0.5's as objects, transformations on a level and on the whole image);
anything else is refused in one line naming the metadata file and the field, since a guess would read the
wrong array or place the prediction wrongly."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..errors import UserError

NGFF_AXIS_TYPES = {"time": "t", "channel": "c"}


@dataclass(frozen=True)
class NgffLevel:
    """One resolution level of an OME-Zarr image: its array and where its voxels lie in physical space."""

    dataset: str  # the array's path inside the group
    array: Any  # the zarr array (read-only, nothing read yet)
    axes: str  # letters of 'tczyx' from the metadata; '' when it has none (NGFF 0.1 and 0.2)
    units: dict[str, str]
    scales: dict[str, float]  # per axis letter; may hold NaN, zero or negatives, which volumes.py drops
    translations: dict[str, float]


def metadata_file(path: Path) -> Path:
    """The file holding a group's attributes: zarr.json (Zarr v3) or .zattrs (Zarr v2)."""
    return path / "zarr.json" if (path / "zarr.json").is_file() else path / ".zattrs"


def _refuse(where: Any, field: str, problem: str) -> UserError:
    return UserError(f"{where}: {field} {problem}; correct that field or rewrite the image with an OME-Zarr writer")


def multiscales(attrs: dict[str, Any], where: Any = "OME-Zarr metadata") -> tuple[Optional[dict[str, Any]], Optional[str]]:
    """The first multiscales entry and the NGFF version of a group's attributes (0.5 nests them under 'ome');
    (None, None) without multiscales; a UserError naming ``where`` when they are not a list of objects."""
    ome = attrs.get("ome")
    nested = isinstance(ome, dict) and "multiscales" in ome
    entries, field = (ome["multiscales"], "ome.multiscales") if nested else (attrs.get("multiscales"), "multiscales")
    if entries is None or entries == []:
        return None, None
    if not isinstance(entries, list) or not isinstance(entries[0], dict):
        raise _refuse(where, field, "must be a list of objects")
    version = ome.get("version", "0.5") if nested else entries[0].get("version", "0.4")
    return entries[0], str(version)


def _axis_letter(axis: Any, field: str, where: Path) -> tuple[str, str, str]:
    """(letter, its name for messages, unit) of one axis: NGFF 0.3 gives a name ('z'), 0.4 on an object."""
    if isinstance(axis, str):  # NGFF 0.3: the names are the letters themselves
        return (axis.lower() if axis.lower() in "tczyx" else ""), repr(axis), ""
    if not isinstance(axis, dict):
        raise _refuse(where, field, f"is {axis!r}, neither an axis name nor an object with 'name' and 'type'")
    name, kind = str(axis.get("name", "")), str(axis.get("type", ""))
    letter = NGFF_AXIS_TYPES.get(kind, name.lower() if kind == "space" else "")
    unit = axis.get("unit")
    return letter, f"{name!r} ({kind or 'no type'})", unit if isinstance(unit, str) else ""  # a unit is a name


def ngff_axes(entry: dict[str, Any], path: Path, prefix: str) -> tuple[str, dict[str, str]]:
    """(letters of 'tczyx', units per letter) of a multiscales entry; ('', {}) before NGFF 0.3 (no axes)."""
    where, raw = metadata_file(path), entry.get("axes")
    if raw is None:
        return "", {}
    if not isinstance(raw, list):
        raise _refuse(where, f"{prefix}.axes", "must be a list of axes")
    letters, units = "", {}
    for index, axis in enumerate(raw):
        letter, shown, unit = _axis_letter(axis, f"{prefix}.axes[{index}]", where)
        if letter and letter in letters:
            raise UserError(f"{path}: axis {shown} appears twice; give --axes to say which is which")
        if not letter or len(letter) != 1 or letter not in "tczyx":
            raise UserError(f"{path}: axis {shown} is not one of t, c, z, y, x; give --axes to say which is which")
        letters += letter
        if unit:
            units[letter] = unit
    return letters, units


def _numbers(value: Any, field: str, count: int, where: Path) -> list[float]:
    """One number per array dimension (bool is no number, nor is a number written as a string)."""
    if not isinstance(value, list):
        raise _refuse(where, field, f"must be a list of {count} numbers, not {type(value).__name__}")
    odd = next((v for v in value if isinstance(v, bool) or not isinstance(v, (int, float))), None)
    if odd is not None:
        raise _refuse(where, field, f"holds {odd!r}, which is not a number")
    if len(value) != count:
        raise _refuse(where, field, f"has {len(value)} values for the array's {count} dimensions")
    return [float(v) for v in value]


def _transforms(value: Any, field: str, count: int, where: Path) -> tuple[list[float], list[float]]:
    """(scale, translation) of a list of coordinate transformations; ones and zeros where there is none."""
    scale, shift = [1.0] * count, [0.0] * count
    if value is None:  # before NGFF 0.4: no transformations
        return scale, shift
    if not isinstance(value, list):
        raise _refuse(where, field, "must be a list of transformations")
    for index, transform in enumerate(value):
        item = f"{field}[{index}]"
        if not isinstance(transform, dict):
            raise _refuse(where, item, "must be an object with a 'type'")
        kind = transform.get("type")
        if kind in ("scale", "translation"):
            if kind not in transform:  # NGFF also allows a 'path' to an array of values; no writer uses it
                raise _refuse(where, item, f"has no {kind!r} list of numbers")
            values = _numbers(transform[kind], f"{item}.{kind}", count, where)
            scale, shift = (values, shift) if kind == "scale" else (scale, values)
    return scale, shift


def _positive(value: float) -> bool:
    return value > 0 and value != float("inf")  # False for NaN too


def _placement(axes: str, level: tuple[list[float], list[float]], image: tuple[list[float], list[float]],
               ) -> tuple[dict[str, float], dict[str, float]]:
    """(scale, translation) per axis of a level in physical space: the level's transformations, then the
    multiscale's own (NGFF applies the dataset's first): scale s_i s_d, translation s_i t_d + t_i. A bad
    factor (NaN, zero, negative) is kept as it is, not multiplied, so two negatives cannot pass as positive
    and the warning names the value the file holds."""
    (ds, dt), (ims, imt) = level, image
    scales, shifts = {}, {}
    for i, a in enumerate(axes):
        bad = next((factor for factor in (ds[i], ims[i]) if not _positive(factor)), None)
        scales[a] = ds[i] * ims[i] if bad is None else bad
        shift = (ims[i] if _positive(ims[i]) else 1.0) * dt[i] + imt[i]
        if shift:
            shifts[a] = shift
    return scales, shifts


def read_level(root: Any, path: Path, entry: dict[str, Any], version: Optional[str], level: int,
               override: Optional[str]) -> NgffLevel:
    """The ``level`` of an OME-Zarr group ``root`` described by its multiscales ``entry``; ``override`` replaces
    the axes the metadata gives. Refuses malformed metadata in one line naming the file and the field."""
    import zarr

    where = metadata_file(path)
    prefix = "ome.multiscales[0]" if (version or "").startswith("0.5") else "multiscales[0]"
    datasets = entry.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        shown = "missing" if datasets is None else f"a {type(datasets).__name__}" if datasets else "empty"
        raise _refuse(where, f"{prefix}.datasets", f"is {shown}; it must be a list of {{\"path\": ...}} objects, one per level")
    if level >= len(datasets):
        raise UserError(f"--level {level}: {path} has {len(datasets)} level(s), 0 to {len(datasets) - 1}")
    field = f"{prefix}.datasets[{level}]"
    dataset = datasets[level]
    name = dataset.get("path") if isinstance(dataset, dict) else None
    if not isinstance(name, str) or not name:
        raise _refuse(where, field, "has no \"path\" naming its array")
    try:
        array = root[name]
    except (KeyError, FileNotFoundError, ValueError):  # zarr raises KeyError for a missing node
        array = None
    if not isinstance(array, zarr.Array):
        found = ", ".join(sorted(n for n, _ in root.arrays())) or "none"
        raise _refuse(where, f"{field}.path", f"{name!r} is not an array in {path} (arrays there: {found})")
    axes, units = ngff_axes(entry, path, prefix) if not override else (override, {})
    own = _transforms(dataset.get("coordinateTransformations"), f"{field}.coordinateTransformations", array.ndim, where)
    image = _transforms(entry.get("coordinateTransformations"), f"{prefix}.coordinateTransformations", array.ndim, where)
    scales, translations = _placement(axes, own, image) if len(axes) == array.ndim else ({}, {})
    return NgffLevel(name, array, axes, units, scales, translations)
