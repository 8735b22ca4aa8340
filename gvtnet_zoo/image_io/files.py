"""Input files to model tensors and model outputs back to files: axes, singleton axes, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import tifffile

from ..atomic import atomic_path
from ..errors import UserError
from .images import is_image_file
from .tiff_meta import Calibration, tiff_physical_sizes

# tifffile's axis letters -> ours (b, c, z, y, x); S (samples) and I (image sequence) are channel and z
TIFF_AXES = {"Q": "", "S": "c", "C": "c", "I": "z", "Z": "z", "Y": "y", "X": "x", "T": "b"}
IMAGEJ_ORDER = "TZCYX"  # ImageJ hyperstacks store their planes in this order (a batch is written as T)


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


def read_calibration(path: Path, pixel_size_yx: Optional[float] = None) -> Calibration:
    """A TIFF's voxel sizes as tiff_meta.py reads them, on the axes it has, with the axes' lengths; NaN, zero or
    negative sizes are dropped with the streamed path's warning. Empty for .npy files and uncalibrated TIFFs.
    ``pixel_size_yx`` (um, predict's --pixel-size) replaces the file's y and x sizes."""
    if path.suffix.lower() == ".npy":
        return Calibration()
    from .volumes import _known_sizes  # volumes.py imports this module: one rule and one warning for both paths

    try:
        with tifffile.TiffFile(path) as tiff:
            series = tiff.series[0]
            lengths = {TIFF_AXES.get(a, ""): n for a, n in zip(series.axes, series.shape)}
            scales, units = tiff_physical_sizes(tiff)
    except Exception:  # noqa: BLE001 - its pixels were read already: metadata it cannot give is no calibration
        return Calibration()
    scales, units = _known_sizes(path, {a: v for a, v in scales.items() if a in lengths},
                                 {a: u for a, u in units.items() if a in lengths})
    if pixel_size_yx is not None:  # the user's --pixel-size (micrometres) over whatever the file says
        scales.update({a: pixel_size_yx for a in "yx" if a in lengths})
        units.update({a: "micrometer" for a in "yx" if a in lengths})
    return Calibration(scales, units, {a: lengths[a] for a in scales})


def _imagej_order(letters: str) -> list[int]:
    return sorted(range(len(letters)), key=lambda i: IMAGEJ_ORDER.index(letters[i]))


def _imagej_layout(array: np.ndarray, letters: str) -> tuple[np.ndarray, str]:
    """``array`` (axes ``letters`` of TZCYX) with its planes in ImageJ's order. Where that order moves only axes
    of length 1 the bytes are the same, so the array and its own axes stay (tifffile reads a single channel
    before z back as CZYX); otherwise it is transposed (several channels of a volume: ZCYX)."""
    order = _imagej_order(letters)
    longer = [i for i in range(array.ndim) if array.shape[i] > 1]
    if [i for i in order if array.shape[i] > 1] == longer and letters.endswith("YX"):
        return array, letters
    return np.ascontiguousarray(array.transpose(order)), "".join(letters[i] for i in order)


def write_output(path: Path, array: np.ndarray, axes: Sequence[str], source: Optional[Calibration] = None) -> None:
    """float32, in the input's format: .npy as is; TIFF without a singleton batch axis, planes in ImageJ's order.

    A TIFF holds two descriptions, as tifffile itself writes a user's description beside its own: tifffile's shaped
    one first (the output's axes, a channel axis of 1 included, as tifffile reads them) and an ImageJ hyperstack's
    last (ImageJ's TiffDecoder keeps the last), with ``source`` (the input's calibration) resampled to the
    output's lengths as X/YResolution in voxels per ImageJ ``unit`` and z ``spacing``, so Fiji opens it calibrated."""
    array = np.asarray(array, dtype=np.float32)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".npy":
            with open(tmp, "wb") as handle:
                np.save(handle, array)
            return
        axes = list(axes)
        lengths = {a: n for a, n in zip(axes, array.shape) if a in "zyx"}
        if axes and axes[0] == "b" and array.shape[0] == 1:
            array, axes = array[0], axes[1:]
        array, letters = _imagej_layout(array, "".join(axes).upper().replace("B", "T"))
        resolution, calibration = (source or Calibration()).resampled(lengths).imagej()
        descriptions = [json.dumps({"shape": list(array.shape), "axes": letters})]
        if "Y" in letters and "X" in letters:
            order = _imagej_order(letters)
            descriptions.append(tifffile.imagej_description([array.shape[i] for i in order],
                                                            axes="".join(letters[i] for i in order), **calibration))
        # an ImageJ description first would make tifffile read the file as ImageJ's, dropping a channel axis of 1
        tifffile.imwrite(tmp, array, photometric="minisblack", metadata=None, resolution=resolution,
                         resolutionunit=tifffile.RESUNIT.NONE if resolution else None,
                         extratags=[(270, "s", 0, text, True) for text in descriptions])
