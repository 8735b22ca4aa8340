"""What one executor got wrong and the others right (issue 31): time points kept by in-memory tiles, writes that
never race on Dask, the far border mirrored from the image, resume after the input changed, damaged weights."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr

from gvtnet_zoo.cli import main
from gvtnet_zoo.image_io import ome_zarr_out
from gvtnet_zoo.predict import tile_step

from .zoo_builders import single_io_package


def _valid_conv(tmp: Path) -> Path:
    """Conv 3x3 -> tanh -> conv 3x3 without padding: the output is 4 voxels smaller (offset -4)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Tanh(), torch.nn.Conv2d(4, 1, 3))
    x = np.random.default_rng(0).normal(size=(1, 1, 32, 32)).astype(np.float32)
    return single_io_package(tmp, net, x, size=(8, 4), offset=-4, name="validconv")


def _conv(tmp: Path, space: str = "zyx", size: tuple[int, int] = (8, 8), kernel: int = 3) -> Path:
    torch.manual_seed(1)
    net = (torch.nn.Conv3d if len(space) == 3 else torch.nn.Conv2d)(1, 1, kernel, padding=kernel // 2)
    x = np.random.default_rng(0).normal(size=(1, 1, *[16] * len(space))).astype(np.float32)
    return single_io_package(tmp, net, x, size=size, halo=2, name=f"conv{len(space)}d", space=space)


def _zarr(path: Path) -> np.ndarray:
    return np.asarray(zarr.open_group(str(path), mode="r")["0"][:])


def test_tiled_in_memory_prediction_keeps_every_time_point(tmp_path: Path) -> None:
    package = _conv(tmp_path)
    frames = np.random.default_rng(2).normal(size=(2, 16, 64, 64)).astype(np.float32)
    tifffile.imwrite(tmp_path / "t2.tif", frames, metadata={"axes": "TZYX"})
    for run, flags in {"whole": ["--whole"], "tiled": ["--tile", "16,40,40"]}.items():
        assert main(["predict", str(package), str(tmp_path / "t2.tif"), "--out", str(tmp_path / run), *flags]) == 0
    whole, tiled = (tifffile.imread(tmp_path / run / "t2.tif") for run in ("whole", "tiled"))
    assert tiled.shape == whole.shape == (2, 1, 16, 64, 64)
    np.testing.assert_allclose(tiled, whole, atol=1e-5, rtol=0)


def test_dask_workers_never_overwrite_each_others_tiles_of_a_size_offset_model(tmp_path: Path) -> None:
    package = _valid_conv(tmp_path)
    image = np.random.default_rng(1).normal(size=(150, 150)).astype(np.float32)
    tifffile.imwrite(tmp_path / "img.tif", image, metadata={"axes": "YX"})
    tile = ["--tile", "24,24", "--halo", "4,4"]
    assert main(["predict", str(package), str(tmp_path / "img.tif"), "--out", str(tmp_path / "mem"), *tile]) == 0
    assert main(["predict", str(package), str(tmp_path / "img.tif"), "--out", str(tmp_path / "d2"), *tile,
                 "--dask", "--dask-workers", "2"]) == 0
    reference = np.squeeze(tifffile.imread(tmp_path / "mem" / "img.tif"))
    np.testing.assert_allclose(np.squeeze(_zarr(tmp_path / "d2" / "img.pred.ome.zarr")), reference, atol=1e-5, rtol=0)


def test_write_waves_separate_every_pair_of_tiles_sharing_a_chunk(tmp_path: Path) -> None:
    from bioimageio.spec import load_model_description

    from gvtnet_zoo.predict.plan import plan_tiles

    descr = load_model_description(_valid_conv(tmp_path), perform_io_checks=False)
    plan = plan_tiles(descr, {"y": 150, "x": 101}, {"y": 24, "x": 24}, {"y": 4, "x": 4})
    chunks = plan.chunks("out")
    tiles = plan.tiles()
    waves = plan.write_waves(tiles)
    assert sorted(t.index for wave in waves for t in wave) == [t.index for t in tiles]
    assert len(waves) == 4  # a shift under one chunk: every other window along each axis
    for wave in waves:
        owners: dict[tuple[int, ...], int] = {}
        for tile in wave:
            _, place = plan.output_region("out", tile, (1, 1, 24, 24))
            ranges = [range(s.start // c, (s.stop - 1) // c + 1) for s, c in zip(place, chunks) if s.stop > s.start]
            for chunk in np.ndindex(*[len(r) for r in ranges]):
                key = tuple(r[k] for r, k in zip(ranges, chunk))
                assert owners.setdefault(key, tile.index) == tile.index, f"chunk {key} written twice in one wave"


def test_the_far_border_is_mirrored_from_the_image_with_no_halo(tmp_path: Path) -> None:
    package = _conv(tmp_path, "yx", (8, 8), kernel=5)  # reaches 2 voxels into the mirrored border
    image = np.random.default_rng(3).normal(size=(65, 65)).astype(np.float32)
    tifffile.imwrite(tmp_path / "img.tif", image, metadata={"axes": "YX"})
    tile = ["--tile", "8,8", "--halo", "0,0"]
    assert main(["predict", str(package), str(tmp_path / "img.tif"), "--out", str(tmp_path / "mem"), *tile]) == 0
    assert main(["predict", str(package), str(tmp_path / "img.tif"), "--out", str(tmp_path / "st"), *tile,
                 "--out-format", "ome-zarr"]) == 0
    reference = np.squeeze(tifffile.imread(tmp_path / "mem" / "img.tif"))
    np.testing.assert_allclose(np.squeeze(_zarr(tmp_path / "st" / "img.pred.ome.zarr")), reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["symmetric", "reflect"])
@pytest.mark.parametrize(("size", "before", "after"), [(3, 0, 5), (65, 0, 7), (65, 3, 4), (1, 2, 19), (5, 7, 9), (2, 5, 0)])
def test_border_indices_are_numpys_padding(mode: str, size: int, before: int, after: int) -> None:
    from gvtnet_zoo.predict.sizes import Border

    padded = np.pad(np.arange(size), (before, after), mode=mode)  # type: ignore[call-overload]
    indices = Border(mode).source_index(np.arange(len(padded)), size, before)
    np.testing.assert_array_equal(indices, padded)


def test_resume_refuses_an_input_rewritten_since(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    package = _conv(tmp_path, "yx", (8, 8))
    image = np.random.default_rng(4).normal(size=(80, 80)).astype(np.float32)
    source = tmp_path / "img.ome.zarr"
    zarr.create_array(str(source), data=image, chunks=(40, 40))  # a plain Zarr array, axes given
    args = ["predict", str(package), str(source), "--axes", "YX", "--out", str(tmp_path / "out"), "--tile", "24,24",
            "--halo", "2,2"]
    written, original = [], ome_zarr_out.OutputImage.write

    def dies_after_three(self: ome_zarr_out.OutputImage, key: str, place: tuple, block: np.ndarray) -> None:
        if len(written) == 3:
            raise KeyboardInterrupt
        original(self, key, place, block)
        written.append(key)

    monkeypatch.setattr(ome_zarr_out.OutputImage, "write", dies_after_three)
    assert main(args) == 2
    monkeypatch.setattr(ome_zarr_out.OutputImage, "write", original)
    array = zarr.open_array(str(source), mode="r+")
    array[:] = image[::-1]  # the same shape and dtype, other voxels
    capsys.readouterr()
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "another model, image or tiles" in err
    assert main([*args, "--overwrite"]) == 0  # and the fresh run completes


@pytest.mark.parametrize("damage", ["missing", "altered"])
@pytest.mark.parametrize("streamed", [False, True])
def test_damaged_weights_are_one_line_and_leave_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        damage: str, streamed: bool) -> None:
    folder = tmp_path / "pkg"
    zipfile.ZipFile(_conv(tmp_path, "yx", (8, 8))).extractall(folder)
    weights = folder / "w.pt"
    if damage == "missing":
        weights.unlink()
    else:
        weights.write_bytes(weights.read_bytes()[:-4] + b"0000")
    tifffile.imwrite(tmp_path / "img.tif", np.ones((32, 32), np.float32), metadata={"axes": "YX"})
    flags = ["--out-format", "ome-zarr"] if streamed else []
    capsys.readouterr()
    assert main(["predict", str(folder / "rdf.yaml"), str(tmp_path / "img.tif"), "--out", str(tmp_path / "out"),
                 *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "w.pt" in err and ("sha256" in err if damage == "altered" else "missing" in err)
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_any_failure_of_a_run_removes_the_output_it_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = _conv(tmp_path, "yx", (8, 8))
    tifffile.imwrite(tmp_path / "img.tif", np.ones((32, 32), np.float32), metadata={"axes": "YX"})

    def breaks(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a failure no one foresaw")

    monkeypatch.setattr(tile_step.TileStep, "predict", breaks)
    with pytest.raises(RuntimeError):
        main(["predict", str(package), str(tmp_path / "img.tif"), "--out", str(tmp_path / "out"),
              "--out-format", "ome-zarr", "--tile", "24,24", "--halo", "2,2"])
    assert not os.listdir(tmp_path / "out")


@pytest.mark.parametrize("flags", [["--whole"], ["--tile", "16,16"], ["--out-format", "ome-zarr", "--tile", "16,16"]])
def test_an_image_too_small_for_any_output_is_refused_alike(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            flags: list[str]) -> None:
    package = _valid_conv(tmp_path)  # 5x5 of input per output voxel
    tifffile.imwrite(tmp_path / "img.tif", np.ones((3, 40), np.float32), metadata={"axes": "YX"})
    capsys.readouterr()
    assert main(["predict", str(package), str(tmp_path / "img.tif"), "--out", str(tmp_path / "out"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "too small along y" in err and "at least 5" in err
