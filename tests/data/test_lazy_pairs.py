"""Training data larger than memory: OME-Zarr / Zarr pairs read patch by patch, normalized as in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from ome_zarr.format import FormatV05
from ome_zarr.writer import write_image

from gvtnet_zoo.cli import main
from gvtnet_zoo.data import lazy
from gvtnet_zoo.data.normalization import normalize_input, normalize_target
from gvtnet_zoo.data.pairs import load_pairs
from gvtnet_zoo.data.patches import PatchSampler
from gvtnet_zoo.errors import UserError
from gvtnet_zoo.spec_loading import load_spec

from ..conftest import PACKAGE_RUN

TINY_3D = ["model.base_channels=4", "data.patch_size=[8,32,32]"]


def _write(root: Path, kind: str, arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    for folder, index in (("source", 0), ("target", 1)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name, pair in arrays.items():
            if kind == "tiff":
                tifffile.imwrite(root / folder / f"{name}.tif", pair[index])
            elif kind == "ome-zarr":
                write_image(pair[index], zarr.open_group(str(root / folder / f"{name}.ome.zarr"), mode="w"),
                            fmt=FormatV05(), axes="zyx", scale_factors=[], storage_options={"chunks": (4, 32, 32)})
            else:  # a plain Zarr array
                zarr.create_array(str(root / folder / f"{name}.zarr"), data=pair[index], chunks=(3, 40, 40))
    return root


def _pairs(seed: int, shape: tuple[int, ...] = (12, 70, 60)) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {f"vol{i}": (rng.integers(0, 3000, shape).astype(np.uint16), rng.normal(5, 2, shape).astype(np.float32))
            for i in range(2)}


@pytest.mark.parametrize("kind", ["ome-zarr", "zarr"])
def test_zarr_pairs_give_the_patches_of_the_same_images_in_memory(tmp_path: Path, kind: str) -> None:
    arrays = _pairs(0)
    spec = load_spec("demo-gvtnet-care-denoise-3d", TINY_3D)
    in_memory = load_pairs(_write(tmp_path / "tiff", "tiff", arrays), spec).pairs
    streamed = load_pairs(_write(tmp_path / kind, kind, arrays), spec).pairs
    assert all(isinstance(p.source, lazy.LazyImage) for p in streamed)
    normalize = lambda pairs: [type(p)(p.name, normalize_input(p.source, spec.data), normalize_target(p.target, spec.data))  # noqa: E731
                               for p in pairs]
    a, b = (PatchSampler(normalize(pairs), spec.data.patch_size, seed=3, flips=True) for pairs in (in_memory, streamed))
    for index in range(6):
        for x, y in zip(a[index], b[index]):
            np.testing.assert_allclose(y.numpy(), x.numpy(), rtol=1e-6, atol=1e-6)


def test_zarr_training_data_is_checked_like_tiffs(tmp_path: Path) -> None:
    spec = load_spec("demo-gvtnet-care-denoise-3d", TINY_3D)
    arrays = _pairs(1)
    arrays["vol1"][1][3, 4, 5] = np.nan
    with pytest.raises(UserError, match="vol1.ome.zarr: contains NaN or Inf"):
        load_pairs(_write(tmp_path / "nan", "ome-zarr", arrays), spec)
    small = _write(tmp_path / "small", "ome-zarr", _pairs(2, (4, 70, 60)))
    with pytest.raises(UserError, match=r"\(4, 70, 60\) is smaller than the patch"):
        load_pairs(small, spec)
    alone = _write(tmp_path / "alone", "ome-zarr", _pairs(3))
    zarr.create_array(str(alone / "source" / "extra.zarr"), shape=(12, 70, 60), dtype="uint16")
    with pytest.raises(UserError, match="source/extra"):
        load_pairs(alone, spec)


def test_training_reads_zarr_volumes_patch_by_patch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _write(tmp_path / "data", "ome-zarr", _pairs(4, (12, 150, 80)))  # y beyond the validation crop (128)
    reads: list[tuple[int, ...]] = []
    original = lazy.LazyImage.__getitem__

    def counted(self: lazy.LazyImage, window: tuple[slice, ...]) -> np.ndarray:
        block = original(self, window)
        reads.append(block.shape)
        return block

    monkeypatch.setattr(lazy.LazyImage, "__getitem__", counted)
    monkeypatch.setattr(lazy, "BLOCK_VOXELS", 12 * 80 * 80)  # statistics in blocks smaller than a volume
    args = ["train", "demo-gvtnet-care-denoise-3d", "--data", str(data), "--out", str(tmp_path / "run")]
    assert main(args + [f"--set={s}" for s in PACKAGE_RUN + TINY_3D]) == 0
    assert (tmp_path / "run" / "checkpoints" / "last.pt").exists()
    patches = [r for r in reads if r == (8, 32, 32)]
    assert patches and max(int(np.prod(r)) for r in reads) < 12 * 150 * 80  # never a whole volume at once


def test_statistics_read_blocks_bounded_over_every_axis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Zarr of (64, 256, 256) in chunks of (64, 32, 32): the statistics pass reads whole chunks in blocks of at
    most the budget, split along y and x too (once read as one block along z), and finds the in-memory values."""
    from gvtnet_zoo.image_io.volumes import open_volume

    data = np.random.default_rng(3).integers(0, 4000, (64, 256, 256)).astype(np.uint16)
    zarr.create_array(str(tmp_path / "v.zarr"), data=data, chunks=(64, 32, 32))
    monkeypatch.setattr(lazy, "BLOCK_VOXELS", 64 * 32 * 64)
    image = lazy.LazyImage(open_volume(tmp_path / "v.zarr"))
    shapes = [block.shape for block in image._blocks()]
    assert all(np.prod(s) <= 64 * 32 * 64 and s[1] % 32 == 0 and s[2] % 32 == 0 for s in shapes)
    assert sum(np.prod(s) for s in shapes) == data.size and len(shapes) == 256 * 256 // (32 * 64)
    offset, divisor = image.measure("percentile", (1.0, 99.8))
    low, high = np.quantile(data.astype(np.float32), [0.01, 0.998], method="linear")
    assert offset == pytest.approx(low) and divisor == pytest.approx(high - low, rel=1e-6)
    assert lazy.block_shape((64, 256, 256), (64, 32, 32), 1) == (64, 32, 32)  # never below one chunk
