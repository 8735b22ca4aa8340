"""Global context level by level (predict/stagewise.py): equal to the whole forward over generated sizes, tiles
and store budgets; the encoder runs once; scratch files never outlive the prediction."""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from gvtnet_zoo.errors import Cancelled
from gvtnet_zoo.predict.global_context import ContextNetwork
from gvtnet_zoo.predict.live_bytes import LiveBytes
from gvtnet_zoo.predict.plan import axis_windows
from gvtnet_zoo.predict.stagewise import ArrayImage, LevelByLevel
from gvtnet_zoo.predict.value_store import ScratchArray, ValueStore
from gvtnet_zoo.progress import CancellableProgress
from gvtnet_zoo.spec_loading import load_spec

# tiny networks with GVTOs at the bottom, as up-sampling and (3D) down-sampling operators, batch norm, projection
SPECS = {
    "2d": ("demo-gvtnet-label-free-2d", ["model.base_channels=4", "model.bottom=[gvto]", "model.up_sampling=gvto_v2"]),
    "3d": ("gvtnet-care-denoise", ["model.base_channels=4", "model.depth=2", "model.down_sampling=gvto_v1",
                                   "model.up_sampling=gvto_v2", "model.encoder_blocks=[1,1]", "model.batch_norm=true"]),
    "care": ("gvtnet-care-denoise", ["model.base_channels=4"]),
    "projection": ("demo-gvtnet-projection", ["model.network.base_channels=4", "model.projection_channels=4"]),
}
_BUILT: dict[str, tuple[ContextNetwork, LevelByLevel]] = {}


def _network(key: str) -> tuple[ContextNetwork, LevelByLevel]:
    if key not in _BUILT:
        torch.manual_seed(0)
        context = ContextNetwork.build(load_spec(*SPECS[key]))
        for module in context.network.modules():  # batch norm that is not the identity
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
        _BUILT[key] = context, LevelByLevel(context)
    return _BUILT[key]


def _case(key: str, seed: int) -> tuple[np.ndarray, float, int]:
    """A seeded image of a valid size (several steps per axis, not stationary), tile bytes for a few tiles per
    segment, and a store budget (everything in memory, nothing, or in between)."""
    context, levels = _network(key)
    rng = np.random.default_rng(seed)
    step = context.spec.model.size_step()
    lo = {"2d": [10, 10], "3d": [4, 8, 8], "care": [4, 8, 8], "projection": [2, 5, 5]}[key]
    space = [s * int(rng.integers(n, n + 5)) for s, n in zip(step, lo)]
    if key == "projection":
        space[0] = int(rng.integers(2, 6))
    image = rng.normal(size=(int(rng.integers(1, 3)), 1, *space)).astype(np.float32)
    image *= np.linspace(0.1, 4.0, space[-1], dtype=np.float32)
    # the tile of the widest segment: its minimal tile (two halos and a step per cut axis) up to twice that
    widest = max(levels.geometry.segments, key=lambda s: s.bytes_per_voxel)
    cut = len(space) - context.spec.model.output_dims
    smallest = math.prod(n if a < cut else min(n, 2 * h + 2 * s) for a, (n, h, s) in enumerate(zip(space, widest.halo, step)))
    tile_bytes = widest.bytes_per_voxel * smallest * float(rng.uniform(1.0, 2.0))
    store = [0, 10**12, int(rng.integers(1, 4 * image.nbytes * 8))][seed % 3]
    return image, tile_bytes, store


@pytest.mark.parametrize("key", sorted(SPECS))
@pytest.mark.parametrize("seed", range(3))
def test_level_by_level_equals_the_whole_forward_over_generated_cases(key: str, seed: int) -> None:
    context, levels = _network(key)
    image, tile_bytes, store = _case(key, seed)
    with torch.no_grad():
        whole = context.network(torch.from_numpy(image)).numpy()
    predicted = levels.predict(image, tile_bytes, store)
    assert predicted.shape == whole.shape
    np.testing.assert_allclose(predicted, whole, atol=1e-5 * np.ptp(whole), rtol=0)
    assert max(levels.tiles) > 1, "the case should cut the image"
    if store == 0:
        assert levels.spilled, "nothing fits a store of 0 bytes"
    # as streamed prediction reads it: the output left in a scratch file, read back by regions of cut windows
    with ValueStore() as kept:
        levels.run(ArrayImage(image), kept, tile_bytes, 0, out_in_memory=False)
        assert "out" in kept.spilled
        space = image.shape[2:]
        cut = [axis_windows(n, max(s, n // 2 // s * s), 0, s) for n, s in zip(space, context.spec.model.size_step())]
        for combo in itertools.product(*cut):
            region = levels.region("out", combo)
            block = np.empty((*whole.shape[:2], *[r.stop - r.start for r in region]), np.float32)
            kept.read("out", region, block)
            np.testing.assert_allclose(block, whole[(slice(None), slice(None), *region)], atol=1e-5 * np.ptp(whole), rtol=0)


def test_the_encoder_runs_once_per_tile_of_its_segment_and_each_segment_has_its_own_halo() -> None:
    context, levels = _network("care")
    image, tile_bytes, _ = _case("care", 0)
    calls: list[int] = []
    handle = context.network.stem.register_forward_hook(lambda *_: calls.append(1))
    try:
        levels.predict(image, tile_bytes / 2, 10**12)
    finally:
        handle.remove()
    assert len(calls) == levels.tiles[0] > 1  # not once per GVTO, as tile passes run it
    halos = [max(s.halo) for s in levels.geometry.segments]
    assert max(halos) < max(context.halo) and min(halos) == 0  # no segment pays the whole network's halo


def _open_in(folder: Path) -> int:
    """This process's open files in ``folder`` (deleted ones included: /proc names them by their old path)."""
    found = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            found += str(Path(str(folder)).resolve()) in os.readlink(fd)
        except OSError:
            pass
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="lists open files through /proc")
def test_scratch_files_are_anonymous_and_closed_after_a_prediction_and_after_a_cancel(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    context, levels = _network("care")
    image, tile_bytes, _ = _case("care", 1)
    seen: list[tuple[int, int]] = []

    def watch(done: int, total: int) -> None:
        seen.append((_open_in(tmp_path), len(list(tmp_path.iterdir()))))

    levels.predict(image, tile_bytes, 0, progress=watch)
    # open while in use, but never a name in the folder: a killed process leaves nothing behind
    assert max(n for n, _ in seen) > 0 and max(listed for _, listed in seen) == 0
    assert _open_in(tmp_path) == 0
    cancel = CancellableProgress(lambda done, total: cancel.cancel() if done == 3 else None)
    with pytest.raises(Cancelled):
        levels.predict(image, tile_bytes, 0, progress=cancel)
    assert _open_in(tmp_path) == 0 and not list(tmp_path.iterdir())


def test_a_full_scratch_disk_is_one_line_naming_tmpdir(monkeypatch: pytest.MonkeyPatch) -> None:
    from gvtnet_zoo.errors import UserError
    from gvtnet_zoo.predict import value_store

    def full(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(value_store.ScratchArray, "write", full)
    context, levels = _network("care")
    image, tile_bytes, _ = _case("care", 1)
    with pytest.raises(UserError, match="No space left on device; set TMPDIR"):
        levels.predict(image, tile_bytes, 0)


@pytest.mark.parametrize("seed", range(4))
def test_scratch_arrays_read_back_what_was_written_into_any_view(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), *rng.integers(3, 12, size=int(rng.integers(2, 4))))
    reference = np.zeros(shape, np.float32)
    array = ScratchArray(shape)
    for _ in range(6):  # regions written in any order, partly over each other
        region = tuple(slice(int(a), int(rng.integers(a + 1, n + 1))) for n in shape[2:] for a in [rng.integers(0, n)])
        block = rng.normal(size=(*shape[:2], *[r.stop - r.start for r in region])).astype(np.float32)
        array.write(region, block)
        reference[(slice(None), slice(None), *region)] = block
    region = tuple(slice(int(a), int(rng.integers(a + 1, n + 1))) for n in shape[2:] for a in [rng.integers(0, n)])
    expected = reference[(slice(None), slice(None), *region)]
    buffer = np.empty((expected.shape[0], *expected.shape[2:], expected.shape[1]), np.float32)
    array.read(region, np.moveaxis(buffer, -1, 1))  # a channels-last view
    np.testing.assert_array_equal(np.moveaxis(buffer, -1, 1), expected)
    array.close()
    with ValueStore() as store:
        store.create("a", shape, spill=False)
        store.write("a", region, expected)
        out = np.empty_like(expected)
        store.read("a", region, out)
        np.testing.assert_array_equal(out, expected)


def test_live_bytes_counts_the_most_tensors_held_at_once() -> None:
    mib = 2**20
    with LiveBytes() as count:
        a = torch.empty(mib // 4)  # 1 MiB
        b = torch.empty(2 * mib // 4)  # 2 MiB: 3 held
        view = b[:10]  # nothing new
        del a
        c = torch.empty(mib // 4)  # 3 MiB again, not 4
        b.add_(1)  # in place: nothing new
    count.hold(0)
    assert count.peak == 3 * mib and count.live == 3 * mib
    del b, c, view
    assert count.live == 0


def test_streamed_global_context_without_scratch_space_runs_the_tile_passes_with_a_note(
        packages: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil
    from collections import namedtuple

    import tifffile
    import zarr

    from gvtnet_zoo.cli import main

    image = np.random.default_rng(5).normal(size=(150, 170)).astype(np.float32) * np.linspace(0.1, 3, 170, dtype=np.float32)
    tifffile.imwrite(tmp_path / "img.tif", image)
    args = ["predict", str(packages["2d"]), str(tmp_path / "img.tif"), "--device", "cpu", "--tile", "96,96",
            "--out-format", "ome-zarr", "--out"]
    from gvtnet_zoo.predict import memory

    monkeypatch.setattr(memory, "free_memory_bytes", lambda _devices: 4096)  # every feature map to scratch files
    assert main([*args, str(tmp_path / "levels")]) == 0
    assert "scratch files" not in capsys.readouterr().out
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(1000, 1000, 0))
    assert main([*args, str(tmp_path / "passes")]) == 0
    out = capsys.readouterr().out
    assert "scratch files" in out and "one pass over the tiles per GVTO" in out
    read = lambda name: np.asarray(zarr.open_group(str(tmp_path / name / "img.pred.ome.zarr"), mode="r")["0"][:])  # noqa: E731
    whole = tmp_path / "whole"
    assert main(["predict", str(packages["2d"]), str(tmp_path / "img.tif"), "--device", "cpu", "--whole", "--out", str(whole)]) == 0
    reference = np.squeeze(tifffile.imread(whole / "img.tif"))
    for name in ("levels", "passes"):
        np.testing.assert_allclose(np.squeeze(read(name)), reference, atol=1e-5 * np.ptp(reference), rtol=0)


def test_in_memory_without_scratch_space_runs_the_tile_passes_with_a_note(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil
    from collections import namedtuple

    context, _ = _network("care")
    image = np.random.default_rng(2).normal(size=(1, 1, 16, 2 * context.halo[1] + 40, 2 * context.halo[2] + 44))
    image = (image * np.linspace(0.1, 4.0, image.shape[-1])).astype(np.float32)
    with torch.no_grad():
        whole = context.network(torch.from_numpy(image)).numpy()
    context.keep_bytes = 0  # every feature map would go to a scratch file
    monkeypatch.setattr(shutil, "disk_usage", lambda _: namedtuple("usage", "total used free")(1000, 1000, 0))
    tile = {a: 2 * context.halo[1] + 8 for a in "yx"}  # several tiles along y and x
    try:
        predicted = context.predict(image, tile)
    finally:
        context.keep_bytes = None
    out = capsys.readouterr().out
    assert "scratch files" in out and "one pass over the tiles per GVTO" in out and "0 KiB free" in out
    np.testing.assert_allclose(predicted, whole, atol=1e-5 * np.ptp(whole), rtol=0)
