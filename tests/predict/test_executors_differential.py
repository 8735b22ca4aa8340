"""Every executor against the whole image, over a class of models and images (issue 31), not chosen cases.

Groups of (package, tile, halo) each predict a dozen seeded images at once (time points or not, a channel axis
or not, sizes off the step grid, size-1 axes, smaller than, equal to and larger than the tile): whole, tiled
in memory, streamed, and on Dask clusters of 1 and 2 workers. What the plan promises:
- every executor gives the in-memory tiled result (float rounding: 1e-6 of the output's range);
- the tiled result is the whole image's (1e-5 of the range) where the halo covers the network's reach, or with
  global context; a GVTNet's plain tiles, or a halo of 0, promise only the first.
``pytest -m exhaustive`` runs five times the images per group.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import pytest
import tifffile
import torch
import zarr
from torch import nn

from gvtnet_zoo.cli import main

from .zoo_builders import TinyUNet, careamics_style_package, single_io_package

EXECUTOR_BOUND = 1e-6
WHOLE_BOUND = 1e-5


class _Resample(nn.Module):
    """x2 (nearest, then a conv) or x0.5 (average pooling, then a conv) in every space axis."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor > 1:
            return self.conv(nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))
        return self.conv(nn.functional.avg_pool2d(x, 2))


def _valid_conv() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.Tanh(), nn.Conv2d(4, 1, 3))


class Group(NamedTuple):
    package: str  # key of the packages built below (or the trained GVTNets' "gvtnet2d"/"gvtnet3d")
    tile: int  # --tile along y and x (and z for 3D models, ``tile_z``)
    halo: str | None  # --halo value per axis, None: the package's (default)
    exact: bool  # tiled == whole is promised
    flags: tuple[str, ...] = ()
    tile_z: int = 8
    largest: int = 0  # the largest image size drawn along an axis (0: twice the tile and a bit)
    images: int = 12  # images drawn (x5 with -m exhaustive)
    largest_z: int = 0  # the same along z (0: as ``largest``)


GROUPS = {
    "unet2d": Group("unet2d", 24, None, True),
    "unet2d-halo0": Group("unet2d", 24, "0", False),
    "unet3d": Group("unet3d", 24, None, True),
    "unet3d-halo0": Group("unet3d", 24, "0", False, tile_z=16),
    "offset": Group("offset", 20, None, True),
    "offset-halo4": Group("offset", 20, "4", True),
    "upsample": Group("upsample", 24, None, True),
    "upsample-halo0": Group("upsample", 16, "0", False),
    "downsample": Group("downsample", 24, None, True),
    "fixed": Group("fixed", 32, None, False),
    "fixed-halo0": Group("fixed", 32, "0", False),
    "gvtnet2d": Group("gvtnet2d", 32, None, False, ("--plain-tiles",)),
    "gvtnet2d-global": Group("gvtnet2d", 32, None, True, ("--global-context",)),
    "gvtnet3d": Group("gvtnet3d", 32, "0", False, ("--plain-tiles",), tile_z=16),
    # the context network reaches 24 voxels: tiles of 56 keep a core of 8
    "gvtnet3d-global": Group("gvtnet3d", 56, "0", True, ("--global-context",), tile_z=56, largest=72, images=6,
                             largest_z=16),
}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory, packages: dict[str, Path]) -> dict[str, tuple[Path, int]]:
    """Package key -> (package, space dims): local networks of every kind, and the trained GVTNets."""
    root = tmp_path_factory.mktemp("differential")
    rng = np.random.default_rng(0)

    def folder(name: str) -> Path:
        (root / name).mkdir()
        return root / name

    def x(dims: int, size: int = 16) -> np.ndarray:
        return rng.normal(size=(1, 1, *[size] * dims)).astype(np.float32)

    torch.manual_seed(5)
    built = {
        "unet2d": (single_io_package(folder("u2"), TinyUNet(2), x(2), size=(16, 2), halo=6, name="unet2d"), 2),
        "unet3d": (single_io_package(folder("u3"), TinyUNet(3), x(3), size=(16, 2), halo=6, name="unet3d",
                                     space="zyx"), 3),
        "offset": (single_io_package(folder("o"), _valid_conv(), x(2), size=(8, 4), offset=-4, name="validconv"), 2),
        "upsample": (single_io_package(folder("up"), _Resample(2), x(2), size=(8, 8), output_scale=0.5, halo=4,
                                       name="upsample"), 2),
        "downsample": (single_io_package(folder("down"), _Resample(0.5), x(2), size=(16, 2), output_scale=2.0, halo=2,
                                         name="downsample"), 2),
        "fixed": (careamics_style_package(folder("f"), "yx", (32, 32))[0], 2),
    }
    return {**built, "gvtnet2d": (packages["2d"], 2), "gvtnet3d": (packages["3d"], 3)}


def _images(name: str, group: Group, dims: int, count: int) -> Iterator[tuple[str, np.ndarray, str]]:
    """(file name, array, its axes) of ``count`` seeded images: the first exactly the tile, the second smaller."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    tile = [group.tile_z, group.tile, group.tile][3 - dims:]
    smallest = 5 if group.package == "offset" else 1  # a valid 5x5 convolution needs 5 voxels for one output
    for k in range(count):
        if k == 0:
            space = tile
        elif k == 1:
            space = [max(smallest, t // 2 - 1) for t in tile]
        else:
            # mostly larger than the tile and off every step grid, now and then an axis of 1
            largest = [group.largest_z or group.largest, group.largest, group.largest][3 - dims:]
            space = [smallest if rng.random() < 0.1 else int(rng.integers(min(t // 2, m or t), (m or 2 * t + 8) + 1))
                     for t, m in zip(tile, largest)]
        axes = "ZYX"[3 - dims:]
        shape = list(space)
        if rng.random() < 0.4:
            axes, shape = "C" + axes, [1, *shape]
        if rng.random() < 0.3:
            axes, shape = "T" + axes, [2, *shape]
        image = rng.normal(100, 20, size=shape).astype(np.float32) if group.package == "fixed" else \
            (rng.random(shape) * 1000).astype(np.float32)
        yield f"img{k:02d}.tif", image, axes


@pytest.fixture(scope="module")
def clusters() -> Iterator[dict[int, str]]:
    """Scheduler addresses of local Dask clusters with 1 and 2 worker processes (one thread each)."""
    from distributed import LocalCluster

    made = {n: LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                            env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}) for n in (1, 2)}
    yield {n: c.scheduler_address for n, c in made.items()}
    for cluster in made.values():
        cluster.close()


def _read(path: Path) -> np.ndarray:
    if path.suffix == ".tif":
        return np.squeeze(tifffile.imread(path))
    return np.squeeze(np.asarray(zarr.open_group(str(path), mode="r")["0"][:]))


def _check(name: str, zoo: dict[str, tuple[Path, int]], clusters: dict[int, str], tmp_path: Path, count: int) -> None:
    group = GROUPS[name]
    package, dims = zoo[group.package]
    images = list(_images(name, group, dims, count))
    for file, image, axes in images:
        tifffile.imwrite(tmp_path / file, image, metadata={"axes": axes})
    tile = ",".join(map(str, [group.tile_z, group.tile, group.tile][3 - dims:]))
    tiled = ["--tile", tile, *(["--halo", ",".join([group.halo] * dims)] if group.halo is not None else []),
             *group.flags]
    runs = {"memory": tiled, "streamed": [*tiled, "--out-format", "ome-zarr"],
            "dask1": [*tiled, "--dask", clusters[1]], "dask2": [*tiled, "--dask", clusters[2]]}
    # a fixed-size model predicts whole only what fits its size
    fits = [f for f, image, _ in images if group.package != "fixed" or max(image.shape[-2:]) <= 32]
    runs["whole"] = ["--whole", *[f for f in group.flags if f not in ("--global-context", "--plain-tiles")]]
    for run, flags in runs.items():
        files = fits if run == "whole" else [f for f, _, _ in images]
        code = main(["predict", str(package), *[str(tmp_path / f) for f in files], "--out", str(tmp_path / run), *flags])
        assert code == 0, f"{name}: {run} exited {code}"
    for file, image, axes in images:
        stem = file[:-4]
        memory = _read(tmp_path / "memory" / file)
        span = max(float(np.ptp(memory)), 1e-12)
        for run in ("streamed", "dask1", "dask2"):
            other = _read(tmp_path / run / f"{stem}.pred.ome.zarr")
            assert other.shape == memory.shape, f"{name} {file} {axes}{image.shape}: {run} {other.shape} vs {memory.shape}"
            np.testing.assert_allclose(other, memory, atol=EXECUTOR_BOUND * span, rtol=0,
                                       err_msg=f"{name} {file} {axes}{image.shape}: {run} vs in memory")
        if file in fits:
            whole = _read(tmp_path / "whole" / file)
            assert whole.shape == memory.shape, f"{name} {file} {axes}{image.shape}: whole {whole.shape} vs {memory.shape}"
            single_tile = all(s <= t for s, t in zip(image.shape[-dims:], [group.tile_z, group.tile, group.tile][3 - dims:]))
            if group.exact or single_tile:
                np.testing.assert_allclose(memory, whole, atol=WHOLE_BOUND * span, rtol=0,
                                           err_msg=f"{name} {file} {axes}{image.shape}: tiled vs whole")


@pytest.mark.parametrize("name", list(GROUPS))
def test_every_executor_gives_the_plans_result(name: str, zoo: dict[str, tuple[Path, int]], clusters: dict[int, str],
                                               tmp_path: Path) -> None:
    _check(name, zoo, clusters, tmp_path, GROUPS[name].images)


@pytest.mark.exhaustive
@pytest.mark.parametrize("name", list(GROUPS))
def test_every_executor_gives_the_plans_result_exhaustively(name: str, zoo: dict[str, tuple[Path, int]],
                                                            clusters: dict[int, str], tmp_path: Path) -> None:
    _check(name, zoo, clusters, tmp_path, 5 * GROUPS[name].images)
