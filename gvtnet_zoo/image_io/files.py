"""Input files to model tensors and model outputs back to files: axes, singleton axes, atomic writes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import tifffile

from ..atomic import atomic_path
from ..errors import UserError
from .images import is_image_file

# tifffile's axis letters -> ours (b, c, z, y, x); S (samples) and I (image sequence) are channel and z
TIFF_AXES = {"Q": "", "S": "c", "C": "c", "I": "z", "Z": "z", "Y": "y", "X": "x", "T": "b"}


ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray")


def is_zarr(path: Path) -> bool:
    """A folder that is a Zarr group or array (v2 or v3), OME-Zarr included."""
    return path.is_dir() and any((path / marker).is_file() for marker in ZARR_MARKERS)


def collect_inputs(paths: Sequence[str | Path]) -> list[Path]:
    """Files (TIFF, .npy) and Zarr stores named directly or found in named folders, in name order, without
    duplicates."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if is_zarr(path):
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if is_image_file(p) or is_zarr(p)))
        elif is_image_file(path):
            found.append(path)
        elif path.exists():
            raise UserError(f"{path} is not a TIFF, .npy or Zarr image; give images or folders of images")
        else:
            raise UserError(f"input {path} not found; check the path")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise UserError(f"no TIFF, .npy or Zarr images in {', '.join(map(str, paths))}")
    names = [p.name for p in unique]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise UserError(f"several inputs share the file name {', '.join(clashes)}; outputs would overwrite each other")
    return unique


def read_with_axes(path: Path, override: Optional[str], model_axes: Sequence[str],
                   channels: Optional[int] = None) -> tuple[np.ndarray, str, str]:
    """(array, its axes as letters of 'bczyx', a note on a guess or ''): from --axes, else TIFF metadata, else
    the model's own axes when the array has exactly that many, else by dimensionality, where a leading axis
    of exactly ``channels`` entries is the channel axis of a model without z."""
    try:
        if path.suffix.lower() == ".npy":
            array, meta = np.load(path), None
        else:
            with tifffile.TiffFile(path) as tiff:
                series = tiff.series[0]
                array, meta = series.asarray(), series.axes
    except Exception as err:  # noqa: BLE001 - broken files raise many kinds
        raise UserError(f"cannot read {path} ({type(err).__name__}: {err}); replace or remove it") from None
    axes, note = guess_axes(array.shape, override, meta, model_axes, channels, path.name)
    return array, axes, note


def guess_axes(shape: Sequence[int], override: Optional[str], meta: Optional[str], model_axes: Sequence[str],
               channels: Optional[int], name: str) -> tuple[str, str]:
    """(the axes of an array of ``shape`` as letters of 'bczyx', a note on a guess or ''): see read_with_axes;
    ``meta`` is the file's own axes (tifffile letters) or None."""
    ndim = len(shape)
    if override:
        axes = override.lower()
        if len(axes) != ndim or set(axes) - set("bczyx") or len(set(axes)) != len(axes):
            raise UserError(f"--axes {override!r} does not fit {name} of shape {tuple(shape)}; "
                            f"give {ndim} distinct letters of bczyx")
        return axes, ""
    if meta and len(meta) == ndim and all(TIFF_AXES.get(a) for a in meta):
        axes = "".join(TIFF_AXES[a] for a in meta)
        if len(set(axes)) == len(axes):
            return axes, ""
    if ndim == len(model_axes):
        return "".join(model_axes), ""
    if ndim == 3 and "z" not in model_axes and "c" in model_axes and (channels or 0) > 1 and shape[0] == channels:
        return "cyx", (f"{name}: its leading axis of {channels} is read as the model's {channels} channels "
                       "(the model has no z axis); give --axes to say otherwise")
    by_ndim = {2: "yx", 3: "zyx", 4: "czyx", 5: "bczyx"}
    if ndim not in by_ndim:
        raise UserError(f"{name} has {ndim} axes {tuple(shape)}; give --axes to say which is which")
    return by_ndim[ndim], ""


def to_model_axes(array: np.ndarray, axes: str, model_axes: Sequence[str], name: str) -> np.ndarray:
    """Reorder ``array`` to ``model_axes`` (letters), adding missing singleton axes and dropping extra singletons."""
    needed = [a for a in model_axes if a in "zyx" and a not in axes]
    if needed:
        # a thin stack (3 planes, say) is guessed to be channels: name the --axes that reads it as the model needs
        guessed = next((a for k, a in enumerate(axes) if a in "ct" and array.shape[k] > 1), None)
        hint = (f"if its {guessed} axis is {needed[0]}, give --axes {axes.replace(guessed, needed[0])}"
                if guessed and needed[0] == "z" else "give an image of the model's dimensionality")
        raise UserError(f"{name} has axes {axes} but the model needs a {needed[0]} axis; {hint}")
    for letter in [a for a in axes if a not in model_axes]:
        index = axes.index(letter)
        if array.shape[index] != 1:
            raise UserError(f"{name} has a {letter} axis of size {array.shape[index]} but the model takes axes "
                            f"{''.join(model_axes)}; give --axes or a matching image")
        array, axes = np.take(array, 0, axis=index), axes.replace(letter, "")
    for letter in model_axes:
        if letter not in axes:
            array, axes = array[np.newaxis], letter + axes
    return np.transpose(array, [axes.index(a) for a in model_axes])


def output_path(out_dir: Path, source: Path, output_id: str, several_outputs: bool) -> Path:
    folder = out_dir / output_id if several_outputs else out_dir
    return folder / source.name


def write_output(path: Path, array: np.ndarray, axes: Sequence[str]) -> None:
    """float32, in the input's format: .npy as is; TIFF without a singleton batch axis, with ImageJ-style axes."""
    array = np.asarray(array, dtype=np.float32)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".npy":
            with tmp.open("wb") as handle:
                np.save(handle, array)
            return
        axes = list(axes)
        if axes and axes[0] == "b" and array.shape[0] == 1:
            array, axes = array[0], axes[1:]
        tifffile.imwrite(tmp, array, photometric="minisblack", metadata={"axes": "".join(axes).upper().replace("B", "T")})
