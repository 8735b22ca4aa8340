"""Training pairs from a folder (source/ + target/), a CSV of pairs, or a CSBDeep .npz, checked up front.
Zarr / OME-Zarr images in a folder or CSV are read lazily, patch by patch (data/lazy.py).

Every problem is a UserError naming the file and the fix, raised before any training starts.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..config import Spec
from ..errors import UserError
from ..image_io.files import is_zarr
from ..image_io.images import image_stem, is_image_file, read_image
from .lazy import LazyImage, open_lazy
from .normalization import whole_image_method
from .resample import resize_yx


@dataclass
class ImagePair:
    """One source image (input_dims axes) and its target (output_dims axes), raw values (in memory or lazy)."""

    name: str
    source: np.ndarray | LazyImage
    target: np.ndarray | LazyImage


@dataclass
class PairedData:
    pairs: list[ImagePair]
    description: str
    are_patches: bool = False  # CSBDeep .npz: already cropped patches, used as they are


def _folder_pairs(root: Path) -> list[tuple[str, Path, Path]]:
    source_dir, target_dir = root / "source", root / "target"
    for folder in (source_dir, target_dir):
        if not folder.is_dir():
            raise UserError(f"{root} has no {folder.name}/ folder; put inputs in {root}/source and targets in {root}/target")
    sources = {image_stem(p): p for p in sorted(source_dir.iterdir()) if is_image_file(p) or is_zarr(p)}
    targets = {image_stem(p): p for p in sorted(target_dir.iterdir()) if is_image_file(p) or is_zarr(p)}
    if not sources and not targets:
        raise UserError(f"no images (.tif, .tiff, .npy, OME-Zarr) in {source_dir} or {target_dir}")
    alone = sorted(set(sources) ^ set(targets))
    if alone:
        listing = ", ".join(f"{('source/' if n in sources else 'target/')}{n}" for n in alone[:10])
        more = f" and {len(alone) - 10} more" if len(alone) > 10 else ""
        raise UserError(f"images without a partner of the same name in {root}: {listing}{more}; add or remove them")
    return [(name, sources[name], targets[name]) for name in sorted(sources)]


def _csv_pairs(path: Path) -> list[tuple[str, Path, Path]]:
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"cannot read the CSV {path}: {err}") from None
    if not rows or not {"source", "target"} <= set(rows[0]):
        raise UserError(f"{path} needs a header with 'source' and 'target' columns and at least one row")
    pairs = []
    for number, row in enumerate(rows, start=2):
        if not row["source"] or not row["target"]:
            raise UserError(f"{path} line {number}: empty source or target; give both paths")
        source, target = path.parent / row["source"], path.parent / row["target"]
        pairs.append((f"{number - 1:04d}_{image_stem(source)}", source, target))
    return pairs


def _npz_pairs(path: Path) -> list[ImagePair]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            x, y = npz["X"], npz["Y"]
            axes = str(npz["axes"]) if "axes" in npz else None
    except KeyError as err:
        raise UserError(f"{path} lacks the array {err}; a CSBDeep training file holds X, Y and axes") from None
    except Exception as err:
        raise UserError(f"cannot read {path} ({type(err).__name__}: {err})") from None
    if axes is None:
        raise UserError(f"{path} has no 'axes' entry; save it with CSBDeep's save_training_data (e.g. axes='SCZYX')")
    axes = axes.upper()
    if "S" not in axes or len(axes) != x.ndim:
        raise UserError(f"{path}: axes {axes!r} do not describe X of shape {x.shape}; expected e.g. 'SCZYX'")
    x = np.moveaxis(x, axes.index("S"), 0)
    y = np.moveaxis(y, axes.index("S"), 0)
    channel = axes.replace("S", "").find("C")
    if channel >= 0 and (x.shape[1 + channel] != 1 or y.ndim != x.ndim or y.shape[1 + channel] != 1):
        raise UserError(f"{path}: only single-channel X and Y are supported (X {x.shape}, Y {y.shape}, axes {axes!r})")
    pairs = []
    for i in range(x.shape[0]):
        # drop the channel axis and, for projection targets, CSBDeep's singleton Z
        xi, yi = np.squeeze(x[i]).astype(np.float32), np.squeeze(y[i]).astype(np.float32)
        pairs.append(ImagePair(f"patch_{i:05d}", xi, yi))
    return pairs


def _read(path: Path, resample: float) -> np.ndarray | LazyImage:
    if not is_zarr(path):
        image = read_image(path)
        return resize_yx(image, "zyx"[3 - image.ndim:], resample) if image.ndim in (2, 3) else image
    if resample != 1.0:
        raise UserError(f"{path}: data.resample_yx {resample} needs images read into memory; resample the Zarr volume "
                        "first (to the spec's data.pixel_size_yx) and set data.resample_yx: 1")
    return open_lazy(path)


def check_pairs(pairs: Sequence[ImagePair], spec: Spec, where: str, are_patches: bool = False) -> None:
    """Dimensionality, shape agreement, finiteness and size against the patch; the first problem raises.
    Lazy images are checked for NaN by the streamed pass that measures their normalization."""
    in_dims, out_dims = spec.model.input_dims, spec.model.output_dims
    patch = spec.data.patch_size
    for pair in pairs:
        label = f"{where}: {pair.name}"
        if pair.source.ndim != in_dims:
            raise UserError(f"{label}: the input has {pair.source.ndim} axes {pair.source.shape}, the spec's model takes "
                            f"{in_dims}D images; use a {in_dims}D spec or {in_dims}D data")
        if pair.target.ndim != out_dims:
            raise UserError(f"{label}: the target has {pair.target.ndim} axes {pair.target.shape}, the model predicts "
                            f"{out_dims}D images")
        if pair.source.shape[in_dims - out_dims:] != pair.target.shape:
            raise UserError(f"{label}: input {pair.source.shape} and target {pair.target.shape} differ in size; "
                            "register and crop them to the same grid")
        if any(s < p for s, p in zip(pair.source.shape, patch)):
            hint = "set data.patch_size to the patches' size" if are_patches else "use a smaller data.patch_size"
            raise UserError(f"{label}: image {pair.source.shape} is smaller than the patch {patch}; {hint}")
        for role, array, percentiles in (("input", pair.source, spec.data.input_percentiles),
                                         ("target", pair.target, spec.data.target_percentiles)):
            if isinstance(array, LazyImage):
                array.measure(whole_image_method(spec.data), percentiles)  # reads it all once; cached for training
            elif not np.isfinite(array).all():
                raise UserError(f"{label}: the {role} contains NaN or Inf values; fix or remove the image")


def load_pairs(data: str | Path, spec: Spec) -> PairedData:
    """All pairs of ``data`` (folder, CSV or .npz), read, checked and limited to ``data.max_images``."""
    path = Path(data)
    if not path.exists():
        raise UserError(f"training data {path} not found; give a folder with source/ and target/, a CSV or a .npz")
    if path.suffix.lower() == ".npz":
        pairs = _npz_pairs(path)
        description = f"CSBDeep patches from {path.name}"
        are_patches = True
    else:
        listed = _csv_pairs(path) if path.suffix.lower() == ".csv" else _folder_pairs(path)
        pairs = [ImagePair(name, *(_read(path, spec.data.resample_yx) for path in (source, target)))
                 for name, source, target in listed]
        description = f"{len(pairs)} image pairs from {path.name}"
        are_patches = False
    if not pairs:
        raise UserError(f"no training pairs in {path}")
    if spec.data.max_images is not None:
        pairs = pairs[: spec.data.max_images]
    check_pairs(pairs, spec, str(path), are_patches)
    return PairedData(pairs, description, are_patches)


def split_validation(data: PairedData, fraction: float) -> tuple[list[ImagePair], list[ImagePair]]:
    """(training, validation): the last ceil(fraction * n) pairs are held out, never overlapping; at least one each."""
    n = len(data.pairs)
    held = max(1, int(np.ceil(fraction * n))) if fraction > 0 else 0
    if held == 0:
        raise UserError("no validation data: give --val DATA or set data.val_fraction above 0")
    if n - held < 1:
        raise UserError(f"{n} image pair(s) cannot be split into training and validation; give --val DATA or more pairs")
    return data.pairs[: n - held], data.pairs[n - held:]
