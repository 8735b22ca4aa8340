"""Streamed prediction: OME-Zarr / Zarr / lazy TIFF in, OME-Zarr out, tile by tile, in one process or on Dask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader
from ome_zarr.writer import write_image

from gvtnet_zoo.cli import main
from gvtnet_zoo.data.synthetic import synthetic_pair
from gvtnet_zoo.errors import UserError
from gvtnet_zoo.image_io import ome_zarr_out
from gvtnet_zoo.predict.stream import predict_volumes

SCALE = {"z": 2.0, "y": 0.5, "x": 0.5}
TILE = "64,72,72"  # z whole; y and x in several tiles of the tiny 3D package (halo 24)


def _volume(times: int, shape: tuple[int, ...], seed: int = 3) -> np.ndarray:
    """(T, *shape) uint16 with structure and a brightness gradient (tiles see other statistics than the image)."""
    rng = np.random.default_rng(seed)
    frames = [synthetic_pair("denoise", shape, rng)[0] * np.linspace(0.2, 3.0, shape[-1]) for _ in range(times)]
    return (np.stack(frames) * 4000).clip(0, 65535).astype(np.uint16)


def _ome_zarr(path: Path, data: np.ndarray, axes: str, version: str) -> Path:
    group = zarr.open_group(str(path), mode="w", zarr_format=2 if version == "0.4" else 3)
    write_image(data, group, fmt=FormatV04() if version == "0.4" else FormatV05(), axes=axes, scale_factors=[2],
                scale=SCALE, axes_units={a: "micrometer" for a in "zyx" if a in axes},
                storage_options={"chunks": tuple(min(s, 40) for s in data.shape)})
    return path


def _tiff_predictions(package: Path, frames: np.ndarray, folder: Path, flags: list[str]) -> list[np.ndarray]:
    """The in-memory prediction of each time point, through today's TIFF path."""
    for t, frame in enumerate(frames):
        tifffile.imwrite(folder / f"t{t}.tif", frame)
    assert main(["predict", str(package), *[str(folder / f"t{t}.tif") for t in range(len(frames))],
                 "--out", str(folder / "pred"), *flags]) == 0
    return [tifffile.imread(folder / "pred" / f"t{t}.tif") for t in range(len(frames))]


def _assert_close(streamed: np.ndarray, reference: np.ndarray) -> None:
    np.testing.assert_allclose(streamed, reference, atol=1e-5 * float(np.ptp(reference)), rtol=0)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_with_t_and_c_streams_to_ngff_equal_to_the_tiff_prediction(packages: dict[str, Path], tmp_path: Path,
                                                                            version: str) -> None:
    volume = _volume(2, (12, 110, 100))
    source = _ome_zarr(tmp_path / "in.ome.zarr", volume[:, None], "tczyx", version)
    # global context in both paths (plain tiles are compared in test_one_plan.py and below)
    assert main(["predict", str(packages["3d"]), str(source), "--out", str(tmp_path / "out"), "--tile", TILE,
                 "--global-context"]) == 0
    out = tmp_path / "out" / "in.pred.ome.zarr"
    assert not Path(str(out) + ".progress").exists()
    node = next(iter(Reader(parse_url(str(out)))()))  # ome-zarr's own reader: NGFF metadata and levels
    assert [a["name"] for a in node.metadata["axes"]] == ["t", "c", "z", "y", "x"]
    assert node.metadata["axes"][2]["unit"] == "micrometer"
    assert node.metadata["coordinateTransformations"][0][0]["scale"] == [1.0, 1.0, 2.0, 0.5, 0.5]
    group = zarr.open_group(str(out), mode="r")
    assert group.metadata.zarr_format == (2 if version == "0.4" else 3)
    streamed = np.asarray(node.data[0])
    assert streamed.shape == (2, 1, 12, 110, 100)
    assert group["0"].chunks[-2:] == (24, 24)  # one tile core per chunk
    for t, reference in enumerate(_tiff_predictions(packages["3d"], volume, tmp_path, ["--tile", TILE, "--global-context"])):
        _assert_close(streamed[t], reference)
    assert not np.allclose(streamed[0], streamed[1])  # each time point is its own sample


def test_global_context_and_dask_workers_give_the_single_process_result(packages: dict[str, Path], tmp_path: Path) -> None:
    volume = _volume(1, (12, 100, 110), seed=5)[0]
    tifffile.imwrite(tmp_path / "stack.tif", volume, metadata={"axes": "ZYX"})
    results = {}
    for name, flags in {"global": ["--global-context"], "global-dask": ["--global-context", "--dask"],
                        "tiles": ["--plain-tiles"], "tiles-dask": ["--plain-tiles", "--dask"]}.items():
        assert main(["predict", str(packages["3d"]), str(tmp_path / "stack.tif"), "--out", str(tmp_path / name),
                     "--tile", TILE, "--out-format", "ome-zarr", *flags]) == 0
        results[name] = zarr.open_group(str(tmp_path / name / "stack.pred.ome.zarr"), mode="r")["0"][:]
    whole = _tiff_predictions(packages["3d"], volume[None], tmp_path, ["--whole"])[0]
    _assert_close(results["global"], whole)
    # contexts summed in float64: Dask's tree and the single process's sequence agree to float32 rounding (issue 26)
    np.testing.assert_allclose(results["global-dask"], results["global"], atol=1e-6 * float(np.ptp(results["global"])),
                               rtol=0)
    # plain tiles: Dask runs the single process's plan, tile for tile
    _assert_close(results["tiles-dask"], results["tiles"])


def test_a_killed_run_resumes_to_the_uninterrupted_result(packages: dict[str, Path], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    volume = _volume(1, (8, 136, 128), seed=9)[0]  # large enough for a second level
    source = _ome_zarr(tmp_path / "v.ome.zarr", volume, "zyx", "0.5")
    run = dict(weight_format=None, device="cpu", global_context=False, tile={"y": 72, "x": 72}, halo={}, axes=None,
               level=None, overwrite=False, allow_download=False, dask=None, echo=lambda _: None)
    predict_volumes(packages["3d"], [source], tmp_path / "full", resume=False, **run)
    written, original = [], ome_zarr_out.OutputImage.write

    def dies_after_three(self: ome_zarr_out.OutputImage, key: str, place: tuple, block: np.ndarray) -> None:
        if len(written) == 3:
            raise KeyboardInterrupt  # Ctrl-C, or a lost node, in the middle of the run
        original(self, key, place, block)
        written.append(key)

    monkeypatch.setattr(ome_zarr_out.OutputImage, "write", dies_after_three)
    with pytest.raises(UserError, match="--resume"):
        predict_volumes(packages["3d"], [source], tmp_path / "part", resume=False, **run)
    monkeypatch.setattr(ome_zarr_out.OutputImage, "write", original)
    with pytest.raises(UserError, match="exists; give --resume"):  # never touched without --resume or --overwrite
        predict_volumes(packages["3d"], [source], tmp_path / "part", resume=False, **run)
    lines: list[str] = []
    predict_volumes(packages["3d"], [source], tmp_path / "part", resume=True, **{**run, "echo": lines.append})
    assert "resuming, 3 of 36 tiles already written" in lines[0]
    full = zarr.open_group(str(tmp_path / "full" / "v.pred.ome.zarr"), mode="r")
    part = zarr.open_group(str(tmp_path / "part" / "v.pred.ome.zarr"), mode="r")
    np.testing.assert_array_equal(part["0"][:], full["0"][:])
    assert part["1"].shape == (1, 8, 68, 64)  # c z y x, y and x halved
    np.testing.assert_array_equal(part["1"][:], full["1"][:])
    with pytest.raises(UserError, match="is finished"):
        predict_volumes(packages["3d"], [source], tmp_path / "part", resume=True, **run)
    # a package re-made at the same path is another model: its tiles are not mixed with the old ones (issue 26, item 8)
    import shutil
    import zipfile

    remade = tmp_path / "model.zip"
    shutil.copy(packages["3d"], remade)
    monkeypatch.setattr(ome_zarr_out.OutputImage, "write", dies_after_three)
    written.clear()
    with pytest.raises(UserError, match="--resume"):
        predict_volumes(remade, [source], tmp_path / "again", resume=False, **run)
    monkeypatch.setattr(ome_zarr_out.OutputImage, "write", original)
    with zipfile.ZipFile(remade, "a") as archive:
        archive.comment = b"packaged again"
    with pytest.raises(UserError, match="made with another model"):
        predict_volumes(remade, [source], tmp_path / "again", resume=True, **run)


def test_2d_models_stream_a_lazy_tiff_with_its_time_axis(packages: dict[str, Path], tmp_path: Path) -> None:
    frames = np.stack([synthetic_pair("denoise", (150, 140), np.random.default_rng(s))[0] for s in (1, 2)]).astype(np.float32)
    tifffile.imwrite(tmp_path / "movie.tif", frames, metadata={"axes": "TYX"})
    assert main(["predict", str(packages["2d"]), str(tmp_path / "movie.tif"), "--out", str(tmp_path / "out"),
                 "--out-format", "ome-zarr", "--tile", "96,96", "--global-context"]) == 0
    streamed = zarr.open_group(str(tmp_path / "out" / "movie.pred.ome.zarr"), mode="r")["0"][:]
    assert streamed.shape == (2, 1, 150, 140)
    for t, reference in enumerate(_tiff_predictions(packages["2d"], frames, tmp_path, ["--tile", "96,96", "--global-context"])):
        _assert_close(streamed[t], reference)


def _one_line_exit_2(args: list[str], capsys: pytest.CaptureFixture[str], expected: str) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1, err


def test_bad_stores_are_one_line_and_write_nothing(packages: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    volume = _volume(1, (8, 64, 64))[0]
    good = _ome_zarr(tmp_path / "good.ome.zarr", volume, "zyx", "0.5")
    package, out = str(packages["3d"]), tmp_path / "out"
    _one_line_exit_2(["predict", package, str(tmp_path / "missing.ome.zarr"), "--out", str(out)], capsys, "not found")
    _one_line_exit_2(["predict", package, str(good), "--out", str(out), "--level", "5"], capsys,
                     "--level 5: ")
    odd = _ome_zarr(tmp_path / "odd.ome.zarr", volume, "zyx", "0.5")
    attrs = zarr.open_group(str(odd), mode="r+").attrs.asdict()
    attrs["ome"]["multiscales"][0]["axes"][0] = {"name": "angle", "type": "angle"}
    zarr.open_group(str(odd), mode="r+").attrs.update(attrs)
    _one_line_exit_2(["predict", package, str(odd), "--out", str(out)], capsys, "axis 'angle'")
    plain_group = zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    plain_group.create_array("raw", shape=(8, 64, 64), dtype="uint16")
    _one_line_exit_2(["predict", package, str(tmp_path / "plain.zarr"), "--out", str(out)], capsys,
                     "without OME-Zarr multiscales metadata")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _one_line_exit_2(["predict", package, str(good), "--out", str(blocker / "out")], capsys, "")
    assert not out.exists()
    out.mkdir()
    (out / "good.pred.ome.zarr").mkdir()
    _one_line_exit_2(["predict", package, str(good), "--out", str(out)], capsys, "exists; give --resume")
    assert list((out / "good.pred.ome.zarr").iterdir()) == []


def test_a_tiff_too_large_for_memory_is_streamed_not_read_whole(packages: dict[str, Path], tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    volume = _volume(1, (8, 96, 96))[0]
    tifffile.imwrite(tmp_path / "big.tif", volume)
    from gvtnet_zoo.predict import memory

    monkeypatch.setattr(memory, "free_memory_bytes", lambda devices: 8 * volume.size)  # less than 6 float32 copies
    assert main(["predict", str(packages["3d"]), str(tmp_path / "big.tif"), "--out", str(tmp_path / "out")]) == 0
    assert "would not fit in memory; streaming tile by tile to OME-Zarr" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["big.pred.ome.zarr"]
    monkeypatch.undo()
    assert main(["predict", str(packages["3d"]), str(tmp_path / "big.tif"), "--out", str(tmp_path / "mem")]) == 0
    assert sorted(p.name for p in (tmp_path / "mem").iterdir()) == ["big.tif"]


def test_a_dask_worker_that_dies_loses_only_its_tiles(packages: dict[str, Path], tmp_path: Path) -> None:
    import os
    import signal
    import threading
    import time

    import psutil

    volume = _volume(1, (8, 260, 240), seed=11)[0]
    source = _ome_zarr(tmp_path / "v.ome.zarr", volume, "zyx", "0.5")
    run = dict(weight_format=None, device="cpu", global_context=False, tile={"y": 72, "x": 72}, halo={}, axes=None,
               level=None, overwrite=False, resume=False, allow_download=False, echo=lambda _: None)
    predict_volumes(packages["3d"], [source], tmp_path / "single", dask=None, **run)
    done_folder = tmp_path / "dask" / "v.pred.ome.zarr.progress" / "done"
    killed: list[int] = []

    def kill_a_worker_after_three_tiles() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if done_folder.is_dir() and len(list(done_folder.iterdir())) >= 3:
                # the local cluster's workers: processes its nannies (in this process) spawned
                workers = [p for p in psutil.Process().children() if "spawn_main" in " ".join(p.cmdline())]
                if workers:
                    os.kill(workers[0].pid, signal.SIGKILL)
                    killed.append(workers[0].pid)
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_worker_after_three_tiles)
    killer.start()
    predict_volumes(packages["3d"], [source], tmp_path / "dask", dask="local", dask_workers=2, **run)
    killer.join()
    assert killed, "no worker was killed: the run ended first"
    single = zarr.open_group(str(tmp_path / "single" / "v.pred.ome.zarr"), mode="r")["0"][:]
    # (Dask CPU workers run the TorchScript weights, the single process ONNX: equal to float precision)
    _assert_close(zarr.open_group(str(tmp_path / "dask" / "v.pred.ome.zarr"), mode="r")["0"][:], single)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_streamed_prediction_on_cuda_equals_the_cpu_result(packages: dict[str, Path], tmp_path: Path) -> None:
    """--device cuda streams the same tiles as the CPU (TorchScript on the GPU; TF32 off for the comparison)."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    volume = _volume(1, (12, 100, 110), seed=7)[0]
    source = _ome_zarr(tmp_path / "v.ome.zarr", volume, "zyx", "0.5")
    results = {}
    for device in ("cpu", "cuda"):
        assert main(["predict", str(packages["3d"]), str(source), "--out", str(tmp_path / device), "--tile", TILE,
                     "--global-context", "--weight-format", "torchscript", "--device", device]) == 0
        results[device] = zarr.open_group(str(tmp_path / device / "v.pred.ome.zarr"), mode="r")["0"][:]
    np.testing.assert_allclose(results["cuda"], results["cpu"], atol=1e-4 * float(np.ptp(results["cpu"])), rtol=0)


def test_an_output_being_written_is_locked(packages: dict[str, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Two runs never write one image: a live run's lock refuses a second, even with --overwrite; a dead run's
    lock is named with how to clear it (issue 26, item 9)."""
    import json
    import os
    import socket
    import subprocess
    import sys

    source = _ome_zarr(tmp_path / "v.ome.zarr", _volume(1, (8, 64, 64))[0], "zyx", "0.5")
    lock = tmp_path / "out" / "v.pred.ome.zarr.lock"
    lock.parent.mkdir()
    args = ["predict", str(packages["3d"]), str(source), "--out", str(tmp_path / "out"), "--overwrite"]
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "2026-12-04 10:00:00"}))
    assert main(args) == 2
    assert f"is being written by process {os.getpid()}" in capsys.readouterr().err
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "started": "2026-12-04 10:00:00"}))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "stale lock" in err and f"delete {lock}" in err and err.count("\n") == 1
    assert sorted(p.name for p in lock.parent.iterdir()) == ["v.pred.ome.zarr.lock"]  # nothing written or removed
    lock.unlink()
    assert main(args) == 0 and not lock.exists()  # a finished run leaves no lock behind


def test_a_nan_voxel_is_refused_before_any_tile_is_written(packages: dict[str, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """One NaN would spread through the network (and make the streamed statistics NaN): refused in one line
    (issue 26, item 4)."""
    volume = _volume(1, (8, 100, 100))[0].astype(np.float32)
    volume[4, 50, 50] = np.nan
    source = _ome_zarr(tmp_path / "nan.ome.zarr", volume, "zyx", "0.5")
    assert main(["predict", str(packages["3d"]), str(source), "--out", str(tmp_path / "out"), "--tile", TILE]) == 2
    err = capsys.readouterr().err
    assert "nan.ome.zarr: contains NaN or Inf values" in err and err.count("\n") == 1
    assert list((tmp_path / "out").iterdir()) == []  # the half-made output, its progress and lock are gone


def test_the_output_keeps_the_inputs_position(packages: dict[str, Path], tmp_path: Path) -> None:
    """Every coordinate transformation of the input (the level's translation and the multiscale's own) is
    carried to the output's levels (issue 26, item 6)."""
    volume = _volume(1, (8, 64, 64))[0]
    path = tmp_path / "placed.ome.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    levels = [[{"type": "scale", "scale": [2.0, 0.5 * f, 0.5 * f]},
               {"type": "translation", "translation": [10.0, 5.0 + 0.25 * (f - 1), 5.0 + 0.25 * (f - 1)]}] for f in (1, 2)]
    write_image(volume, group, fmt=FormatV05(), axes="zyx", scale_factors=[2], axes_units={a: "micrometer" for a in "zyx"})
    attrs = group.attrs.asdict()
    entry = attrs["ome"]["multiscales"][0]
    for dataset, transforms in zip(entry["datasets"], levels):
        dataset["coordinateTransformations"] = transforms
    entry["coordinateTransformations"] = [{"type": "scale", "scale": [1.0, 1.0, 1.0]},
                                          {"type": "translation", "translation": [1.0, 0.0, 0.0]}]
    group.attrs.update(attrs)
    assert main(["predict", str(packages["3d"]), str(path), "--out", str(tmp_path / "out"), "--tile", TILE]) == 0
    node = next(iter(Reader(parse_url(str(tmp_path / "out" / "placed.pred.ome.zarr")))()))
    level0 = {t["type"]: t[t["type"]] for t in node.metadata["coordinateTransformations"][0]}
    assert level0["scale"][-3:] == [2.0, 0.5, 0.5] and level0["translation"][-3:] == [11.0, 5.0, 5.0]


@pytest.mark.parametrize("kind", ["ome", "imagej"])
def test_tiff_physical_sizes_reach_the_ome_zarr_output(packages: dict[str, Path], tmp_path: Path, kind: str) -> None:
    """OME-XML's PhysicalSizeX/Y/Z (a pyramidal OME-TIFF with sub-IFDs) and ImageJ's resolution and spacing
    become the output's scale and units (issue 26, item 13)."""
    volume = _volume(1, (8, 64, 64))[0]
    path = tmp_path / ("v.ome.tif" if kind == "ome" else "v.tif")
    if kind == "ome":
        with tifffile.TiffWriter(path, ome=True) as tiff:
            tiff.write(volume, subifds=1, metadata={"axes": "ZYX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.2,
                                                    "PhysicalSizeZ": 1.0})
            tiff.write(volume[:, ::2, ::2], subfiletype=1)
    else:
        tifffile.imwrite(path, volume, imagej=True, resolution=(5.0, 5.0),
                         metadata={"axes": "ZYX", "spacing": 1.0, "unit": "um"})
    assert main(["predict", str(packages["3d"]), str(path), "--out", str(tmp_path / "out"), "--tile", TILE,
                 "--out-format", "ome-zarr"]) == 0
    node = next(iter(Reader(parse_url(str(tmp_path / "out" / "v.pred.ome.zarr")))()))
    level0 = {t["type"]: t[t["type"]] for t in node.metadata["coordinateTransformations"][0]}
    assert level0["scale"][-3:] == pytest.approx([1.0, 0.2, 0.2])
    assert [a.get("unit") for a in node.metadata["axes"][-3:]] == ["micrometer"] * 3


def _sharded_ome_zarr(path: Path, data: np.ndarray, chunks: tuple[int, ...], shards: tuple[int, ...] | None) -> Path:
    """An NGFF 0.5 image written as other writers do (bioio-ome-zarr shards its arrays), with zarr's own API."""
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    axes = [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    group.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 0.5, 0.5]}]}]}]}
    group.create_array("0", data=data, chunks=chunks, shards=shards)
    return path


@pytest.mark.parametrize("dtype, chunks, shards, shape", [
    ("uint8", (8, 32, 32), (16, 64, 64), (30, 97, 83)),  # sharded, sizes no multiple of tile, chunk or shard
    ("uint16", (5, 50, 20), None, (23, 101, 77)),
    ("float32", (30, 16, 128), (30, 32, 128), (30, 90, 100)),  # a zero background under half the volume
])
def test_third_party_volumes_stream_to_the_in_memory_result(packages: dict[str, Path], tmp_path: Path, dtype: str,
                                                            chunks: tuple[int, ...], shards: tuple[int, ...] | None,
                                                            shape: tuple[int, ...], capsys: pytest.CaptureFixture[str]) -> None:
    """Streamed tiles and in-memory tiles are one plan: the same statistics and the same tiles (a GVTNet's plain
    tiles, which see only themselves) give the same result, whatever the store's chunks, shards and dtype."""
    volume = _volume(1, shape, seed=13)[0].astype(np.float32) / 257
    if dtype == "float32":
        volume[:, : shape[1] // 2] = 0.0
    volume = volume.astype(dtype)
    source = _sharded_ome_zarr(tmp_path / "v.ome.zarr", volume, chunks, shards)
    tile = TILE
    assert main(["predict", str(packages["3d"]), str(source), "--out", str(tmp_path / "out"), "--tile", tile,
                 "--plain-tiles"]) == 0
    # the moments, then the quantiles: one counting pass for integers, two radix passes for float32 (item 2)
    assert f"statistics in {3 if dtype == 'float32' else 2} pass(es) over the volume ({dtype}" in capsys.readouterr().out
    streamed = zarr.open_group(str(tmp_path / "out" / "v.pred.ome.zarr"), mode="r")["0"][:]
    reference = _tiff_predictions(packages["3d"], volume[None], tmp_path, ["--tile", tile, "--plain-tiles"])[0]
    np.testing.assert_allclose(np.squeeze(streamed), np.squeeze(reference), atol=1e-6 * float(np.ptp(reference)), rtol=0)
