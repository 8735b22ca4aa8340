"""Reading and writing image files (TIFF, OME-TIFF, .npy) as float32 arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from ..atomic import atomic_path
from ..errors import UserError

TIFF_SUFFIXES = (".tif", ".tiff")


def is_image_file(path: Path) -> bool:
    """A TIFF (OME-TIFF included) or .npy file, not hidden."""
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in (*TIFF_SUFFIXES, ".npy")


def image_stem(path: Path) -> str:
    """The file name without its image suffix: 'a.ome.tif' -> 'a', 'b.npy' -> 'b' (dots elsewhere kept)."""
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".npy", ".ome.zarr", ".zarr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def read_image(path: str | Path) -> np.ndarray:
    """The image at ``path`` as float32 with singleton axes dropped: (Y, X) or (Z, Y, X) for a plain stack."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image {path} not found; check the path")
    try:
        array = np.load(path) if path.suffix.lower() == ".npy" else tifffile.imread(path)
    except Exception as err:  # tifffile raises many types for broken files
        raise UserError(f"cannot read image {path} ({type(err).__name__}: {err}); replace or remove the file") from None
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise UserError(f"image {path} has pixel type {array.dtype}; give a real-valued (integer or float) image")
    return np.squeeze(array).astype(np.float32, copy=False)


def write_tiff(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as a float32 (or its own integer type) TIFF, atomically."""
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, array, photometric="minisblack")
