"""Synthetic microscopy pairs for tests and demos: structures that look like cells, not noise.

Fluorescent structures (blobs like nuclei, filaments, membranes) are blurred by a Gaussian
point-spread function (wider in z). Tasks:
- denoise:    target the clean, bright volume; source the same at a few photons, Poisson-Gaussian noise
- label-free: source a transmitted-light-like contrast of all structures (phase-like edges, uneven
              background); target the fluorescence of the nuclei alone
- projection: a curved 2D surface carrying cell outlines inside a noisy 3D stack with clutter off the
              surface; target the clean 2D surface image
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ..errors import UserError
from ..image_io.images import write_tiff

Task = Literal["denoise", "label-free", "projection"]
TASKS: tuple[str, ...] = ("denoise", "label-free", "projection")


def _psf_blur(volume: np.ndarray, sigma_yx: float = 1.0) -> np.ndarray:
    sigma = (2.0 * sigma_yx,) + (sigma_yx,) * 2 if volume.ndim == 3 else (sigma_yx,) * 2
    return ndimage.gaussian_filter(volume, sigma)


def _grid(shape: Sequence[int]) -> list[np.ndarray]:
    return np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij", sparse=True)


def blobs(shape: Sequence[int], count: int, radius: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Ellipsoids of random size and brightness with soft edges (nuclei, vesicles). Values in [0, 1]."""
    out = np.zeros(shape, np.float32)
    for _ in range(count):
        center = np.array([rng.uniform(0, s) for s in shape])
        radii = rng.uniform(*radius, size=len(shape))
        if len(shape) == 3:
            radii[0] *= 0.5  # z is sampled more coarsely than y and x
        brightness = rng.uniform(0.4, 1.0)
        # only the blob's neighbourhood is computed: the soft edge is negligible beyond 1.5 radii
        low = np.maximum(np.floor(center - 1.5 * radii), 0).astype(int)
        high = np.minimum(np.ceil(center + 1.5 * radii) + 1, shape).astype(int)
        box = tuple(slice(a, b) for a, b in zip(low, high))
        grid = np.meshgrid(*[np.arange(a, b, dtype=np.float32) for a, b in zip(low, high)], indexing="ij", sparse=True)
        distance = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii))
        out[box] = np.maximum(out[box], brightness / (1.0 + np.exp(np.minimum((distance - 1.0) * 6.0, 50.0))))
    return out


def filaments(shape: Sequence[int], count: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth random-walk fibres one voxel wide before blurring (microtubules, actin). Values in [0, 1]."""
    out = np.zeros(shape, np.float32)
    for _ in range(count):
        position = np.array([rng.uniform(0, s) for s in shape])
        direction = rng.normal(size=len(shape))
        for _ in range(4 * max(shape)):
            direction = direction / np.linalg.norm(direction) + 0.15 * rng.normal(size=len(shape))
            position = position + 0.7 * direction / np.linalg.norm(direction)
            index = tuple(np.clip(position.astype(int), 0, np.array(shape) - 1))
            out[index] = 1.0
    return np.clip(ndimage.gaussian_filter(out, 0.7) * 4.0, 0, 1)


def membranes(shape: Sequence[int], cells: int, rng: np.random.Generator, thickness: float = 1.2) -> np.ndarray:
    """Voronoi cell boundaries (cell outlines). Values in [0, 1]."""
    seeds = rng.uniform(0, 1, size=(cells, len(shape))) * np.array(shape)
    points = np.stack([g.ravel() for g in np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")], axis=1)
    distances, _ = cKDTree(seeds).query(points, k=2)
    gap = (distances[:, 1] - distances[:, 0]).reshape(shape)
    return np.exp(-((gap / thickness) ** 2)).astype(np.float32)


def _denoise(shape: Sequence[int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    volume = max(int(np.prod(shape)) // 4000, 4)
    clean = _psf_blur(np.maximum(blobs(shape, volume, (3, 7), rng), 0.6 * filaments(shape, 3, rng)))
    clean = clean / max(float(clean.max()), 1e-6)
    return poisson_gaussian(clean, rng), np.round(100 + 1000 * clean).astype(np.uint16)


def poisson_gaussian(clean: np.ndarray, rng: np.random.Generator, photons: float = 10.0, background: float = 2.0,
                     read_noise: float = 1.5, offset: float = 5.0) -> np.ndarray:
    """A low-light camera image of ``clean`` (values in [0, 1], any shape): shot noise at ``photons`` for the
    brightest voxel over a ``background``, Gaussian read noise and a camera offset; uint16."""
    counts = rng.poisson(background + photons * np.clip(clean, 0, 1)).astype(np.float32)
    return np.clip(np.round(counts + rng.normal(0, read_noise, size=clean.shape) + offset), 0, None).astype(np.uint16)


def _label_free(shape: Sequence[int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    nuclei = blobs(shape, max(int(np.prod(shape)) // 2500, 3), (5, 10), rng)
    density = _psf_blur(0.8 * nuclei + 0.5 * membranes(shape, max(int(np.prod(shape)) // 3000, 6), rng)
                        + 0.4 * filaments(shape, 4, rng), 1.5)
    edges = -ndimage.gaussian_laplace(density, 1.5)  # phase-contrast-like halos at refractive-index steps
    background = sum(rng.uniform(-0.3, 0.3) * (g / s) for g, s in zip(_grid(shape), shape))
    source = 0.5 + 0.25 * density + 2.0 * edges + background + rng.normal(0, 0.02, size=density.shape)
    target = _psf_blur(nuclei) * 800 + 50 + rng.normal(0, 5, size=density.shape)
    return source.astype(np.float32), np.clip(target, 0, None).astype(np.float32)


def _projection(shape: Sequence[int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if len(shape) != 3:
        raise UserError(f"projection data are 3D stacks; give --shape Z,Y,X, got {list(shape)}")
    depth, height, width = shape
    relief = ndimage.gaussian_filter(rng.normal(size=(height, width)), min(height, width) / 6)
    relief = (relief - relief.min()) / max(float(np.ptp(relief)), 1e-6)
    surface_z = depth * (0.25 + 0.5 * relief)  # a smooth curved sheet
    texture = ndimage.gaussian_filter(membranes((height, width), max(height * width // 300, 6), rng), 0.8)
    z = np.arange(depth, dtype=np.float32)[:, None, None]
    sheet = texture[None] * np.exp(-0.5 * ((z - surface_z[None]) / 1.5) ** 2)
    clutter = blobs(shape, max(int(np.prod(shape)) // 20000, 3), (2, 4), rng) * (np.abs(z - surface_z[None]) > 4)
    clean = _psf_blur(sheet + 0.6 * clutter)
    noisy = rng.poisson(3.0 + 30.0 * clean).astype(np.float32) + rng.normal(0, 2.0, size=clean.shape)
    target = np.round(100 + 1000 * texture / max(float(texture.max()), 1e-6)).astype(np.uint16)
    return np.clip(np.round(noisy), 0, None).astype(np.uint16), target


GENERATORS: dict[str, Callable[[Sequence[int], np.random.Generator], tuple[np.ndarray, np.ndarray]]] = {
    "denoise": _denoise, "label-free": _label_free, "projection": _projection,
}


def synthetic_pair(task: str, shape: Sequence[int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(source, target) for ``task`` with the source of ``shape`` ((Z,) Y, X); projection targets are (Y, X)."""
    if task not in GENERATORS:
        raise UserError(f"unknown synthetic task {task!r}; use one of {', '.join(TASKS)}")
    if len(shape) not in (2, 3) or min(shape) < 8:
        raise UserError(f"--shape must be Z,Y,X or Y,X with every axis >= 8, got {list(shape)}")
    return GENERATORS[task](shape, rng)


def write_synthetic(task: str, out: str | Path, n_train: int, n_test: int, shape: Sequence[int], seed: int) -> Path:
    """Write ``out/{train,test}/{source,target}/NAME.tif``; refuses to write into existing data."""
    out = Path(out)
    for split in ("train", "test"):
        if (out / split).exists() and any((out / split).rglob("*.tif")):
            raise UserError(f"{out / split} already holds images; choose another --out or remove it")
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("test", n_test)):
        for i in range(count):
            source, target = synthetic_pair(task, shape, rng)
            write_tiff(out / split / "source" / f"{split}_{i:03d}.tif", source)
            write_tiff(out / split / "target" / f"{split}_{i:03d}.tif", target)
    return out
