"""Streamed outputs: an OME-Zarr image written tile by tile, its progress kept beside it for ``--resume``.

Level 0 is chunked one tile core per chunk; where a size offset shifts a core's output off that grid, two
tiles share a chunk, and writers running at once take the plan's write waves (predict/plan.py).
``NAME.progress/`` beside the image holds the plan and one empty file per finished tile; the multiscales
metadata and the downsampled levels are written last, and then the progress folder is removed. A store
without multiscales metadata is therefore never mistaken for a finished image.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import UserError
from .images import image_stem

PREDICTION_SUFFIX = ".pred.ome.zarr"  # a streamed output's name: the input's stem and this

NGFF_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
PYRAMID_MIN = 64  # the smallest y or x a halved level may have: a level below 2 * PYRAMID_MIN is the last


def pyramid_shapes(shape: Sequence[int], axes: str) -> list[tuple[int, ...]]:
    """The shapes of an output's levels: level 0, then y and x halved (rounded down) while both are at least
    2 * PYRAMID_MIN; an output under that in y or x has level 0 only."""
    shapes = [tuple(shape)]
    halved = [i for i, a in enumerate(axes) if a in "yx"]
    while min(shapes[-1][i] for i in halved) >= 2 * PYRAMID_MIN:
        shapes.append(tuple(s // 2 if i in halved else s for i, s in enumerate(shapes[-1])))
    return shapes


@dataclass(frozen=True)
class OutputImage:
    """Where one model output goes and how its array is laid out (plain data, for Dask workers too)."""

    path: str
    axes: str  # letters of 'tczyx'
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    scales: dict[str, float] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    ngff_version: str = "0.5"
    translations: dict[str, float] = field(default_factory=dict)  # the first voxel's centre, physical units

    @property
    def progress(self) -> Path:
        return Path(self.path + ".progress")

    @property
    def lock(self) -> Path:
        """Beside the image, not in the progress folder, which --overwrite and the finish remove."""
        return Path(self.path + ".lock")

    def remove(self) -> None:
        """The image and its progress folder gone (a run that never finished, stopped by bad input)."""
        shutil.rmtree(self.path, ignore_errors=True)
        shutil.rmtree(self.progress, ignore_errors=True)

    def create(self, plan_json: dict[str, Any]) -> None:
        """A new, empty level 0 and the progress folder with the plan."""
        import zarr

        shutil.rmtree(self.progress, ignore_errors=True)
        group = zarr.open_group(self.path, mode="w", zarr_format=2 if self.ngff_version == "0.4" else 3)
        group.create_array("0", shape=self.shape, chunks=self.chunks, dtype="float32", fill_value=0.0)
        (self.progress / "done").mkdir(parents=True, exist_ok=True)
        (self.progress / "plan.json").write_text(json.dumps(plan_json, sort_keys=True))

    def resumable(self, plan_json: dict[str, Any]) -> bool:
        """Whether a partial image of this very plan is here (its progress folder holds the same plan)."""
        try:
            return json.loads((self.progress / "plan.json").read_text()) == json.loads(json.dumps(plan_json, sort_keys=True))
        except (OSError, ValueError):
            return False

    def done(self) -> set[str]:
        folder = self.progress / "done"
        return {p.name for p in folder.iterdir()} if folder.is_dir() else set()

    def write(self, key: str, place: tuple[slice, ...], block: np.ndarray) -> None:
        """Write one tile's core into level 0, then record the tile as done."""
        import zarr

        zarr.open_array(self.path + "/0", mode="r+")[place] = block
        (self.progress / "done" / key).touch()

    def finish(self, name: str) -> list[tuple[int, ...]]:
        """Downsampled levels (``pyramid_shapes``: means of 2 x 2 in y and x), the multiscales metadata, no
        progress folder; returns the shapes of the levels."""
        import dask.array as da
        import zarr
        from ome_zarr.format import FormatV04, FormatV05
        from ome_zarr.writer import write_multiscales_metadata

        group = zarr.open_group(self.path, mode="r+")
        level = da.from_zarr(group["0"])
        shapes = pyramid_shapes(level.shape, self.axes)
        factors = {i: 2 if a in "yx" else 1 for i, a in enumerate(self.axes)}
        for index, shape in enumerate(shapes[1:], start=1):
            level = da.coarsen(np.mean, level, factors, trim_excess=True).astype(np.float32)
            array = group.create_array(str(index), shape=shape, dtype="float32", fill_value=0.0,
                                       chunks=tuple(min(c, s) for c, s in zip(self.chunks, shape)), overwrite=True)
            da.store(level.rechunk(array.chunks), array, lock=False)
            level = da.from_zarr(array)
        datasets = []
        for index in range(len(shapes)):
            factor = [2.0**index if a in "yx" else 1.0 for a in self.axes]
            scale = [self.scales.get(a, 1.0) * f for a, f in zip(self.axes, factor)]
            translation = [self.translations.get(a, 0.0) + (f - 1) / 2 * self.scales.get(a, 1.0)
                           for a, f in zip(self.axes, factor)]
            datasets.append({"path": str(index), "coordinateTransformations": [
                {"type": "scale", "scale": scale}, {"type": "translation", "translation": translation}]})
        axes = [{"name": a, "type": NGFF_TYPES[a], **({"unit": self.units[a]} if a in self.units else {})}
                for a in self.axes]
        write_multiscales_metadata(group, datasets, fmt=FormatV04() if self.ngff_version == "0.4" else FormatV05(),
                                   axes=axes, name=name)
        shutil.rmtree(self.progress, ignore_errors=True)
        return shapes


def check_replace(images: list[OutputImage], plan_json: dict[str, Any], overwrite: bool, resume: bool) -> bool:
    """Whether to resume; refuses to touch an existing output unless ``overwrite`` or a matching ``resume``."""
    existing = [i for i in images if Path(i.path).exists() or i.progress.exists()]
    if not existing or overwrite:
        return False
    if not resume:
        raise UserError(f"{existing[0].path} exists; give --resume to complete an interrupted prediction, "
                        "or --overwrite to replace it")
    unfinished = [i for i in existing if not i.resumable(plan_json)]
    if unfinished:
        what = ("is finished" if Path(unfinished[0].path).exists() and not unfinished[0].progress.exists()
                else "was made with another model, image or tiles")
        raise UserError(f"--resume: {unfinished[0].path} {what}; give --overwrite to predict it anew")
    return True


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _take(lock: Path, image: str) -> None:
    """Create ``lock`` (pid, host, start time) or refuse in one line: held by a live run, or left by a dead one."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            other = json.loads(lock.read_text())
            pid, host, started = int(other["pid"]), str(other["host"]), str(other["started"])
        except (OSError, ValueError, KeyError, TypeError):
            pid, host, started = -1, "?", "?"
        if host != mine["host"] or _running(pid):
            raise UserError(f"{image} is being written by process {pid} on {host} (since {started}); wait for that "
                            "prediction to end, or stop it, before predicting into it") from None
        raise UserError(f"{image} has a stale lock {lock} (process {pid} on {host}, since {started}, no longer runs): "
                        f"its prediction was interrupted; delete {lock}, then rerun with --resume") from None
    with os.fdopen(handle, "w") as out:
        json.dump(mine, out)


def take_locks(images: Sequence[OutputImage]) -> list[Path]:
    """An exclusive lock on each output while it is written, so two runs never write one image; all or none."""
    held: list[Path] = []
    try:
        for image in images:
            _take(image.lock, image.path)
            held.append(image.lock)
    except BaseException:
        release_locks(held)
        raise
    return held


def release_locks(locks: Sequence[Path]) -> None:
    for lock in locks:
        lock.unlink(missing_ok=True)


def output_name(source: Path) -> str:
    """'a.ome.zarr', 'a.zarr', 'a.ome.tif', 'a.tif' -> 'a.pred.ome.zarr': never the input's own name, so an output
    beside its input (napari's default folder) cannot be mistaken for it."""
    return image_stem(source) + PREDICTION_SUFFIX
