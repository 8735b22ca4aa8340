"""Folder runs: reading and writing overlap the computation, errors still stop cleanly, no torch for ONNX on CPU."""

from __future__ import annotations

import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile

from gvtnet_zoo.cli import main
from gvtnet_zoo.devices import gpu_possible
from gvtnet_zoo.predict.overlap import BackgroundWriter, prefetched

WAIT = 10.0  # seconds; only reached when the overlap is missing


def test_the_next_item_is_read_while_the_caller_works_on_this_one() -> None:
    started = {i: threading.Event() for i in range(3)}

    def read(i: int) -> int:
        started[i].set()
        return 10 * i

    seen = []
    for item, loaded in prefetched([0, 1, 2], read):
        if item < 2:  # the read of the next item starts while this one is being worked on
            assert started[item + 1].wait(WAIT)
        seen.append((item, loaded))
    assert seen == [(0, 0), (1, 10), (2, 20)]


def test_a_read_error_is_raised_when_its_item_is_reached() -> None:
    def read(i: int) -> int:
        if i == 1:
            raise ValueError("unreadable")
        return i

    got = []
    with pytest.raises(ValueError, match="unreadable"):
        for item, _ in prefetched([0, 1, 2], read):
            got.append(item)
    assert got == [0]


def test_writes_run_behind_the_caller_one_at_a_time() -> None:
    release, written, order = threading.Event(), [], []

    def slow_write(name: str) -> None:
        assert release.wait(WAIT)
        written.append(name)

    with BackgroundWriter() as writer:
        writer.submit(slow_write, "a")
        order.append("computing b")  # the caller goes on while "a" is still being written
        assert written == []
        release.set()
        writer.submit(slow_write, "b")  # waits for "a" first: at most one write in flight
        assert written == ["a"]
    assert written == ["a", "b"]
    assert order == ["computing b"]


def test_a_failed_write_stops_the_next_submit() -> None:
    def failing(_: str) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), BackgroundWriter() as writer:
        writer.submit(failing, "a")
        writer.submit(failing, "b")


def test_the_write_in_flight_finishes_when_the_run_stops(tmp_path: Path) -> None:
    release = threading.Event()

    def write(path: Path) -> None:
        assert release.wait(WAIT)
        path.write_text("done")

    with pytest.raises(RuntimeError), BackgroundWriter() as writer:
        writer.submit(write, tmp_path / "a.txt")
        threading.Timer(0.2, release.set).start()
        raise RuntimeError("the next file failed")
    assert (tmp_path / "a.txt").read_text() == "done"


def _test_input(package: Path) -> np.ndarray:
    with zipfile.ZipFile(package) as archive:
        return np.load(archive.open("test_input.npy"))[0, 0]


def test_a_broken_file_keeps_the_outputs_of_the_files_before_it(packages: dict[str, Path], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", _test_input(packages["2d"]))
    (folder / "b.tif").write_bytes(b"not a tiff")
    assert main(["predict", str(packages["2d"]), str(folder), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err  # the progress bar, then one line naming the file
    assert err.endswith("\n") and "b.tif" in err.splitlines()[-1] and "Traceback" not in err
    assert tifffile.imread(tmp_path / "out" / "a.tif").shape[-2:] == _test_input(packages["2d"]).shape
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.tif"]  # no temp file, no b.tif


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_onnx_prediction_on_the_cpu_does_not_import_torch(packages: dict[str, Path], tmp_path: Path, device: str) -> None:
    if device == "auto" and gpu_possible():
        pytest.skip("a GPU driver is here: the default device asks torch whether it can use the GPU")
    tifffile.imwrite(tmp_path / "a.tif", _test_input(packages["2d"]))
    script = ("import sys; from gvtnet_zoo.cli import main; "
              f"code = main(['predict', {str(packages['2d'])!r}, {str(tmp_path / 'a.tif')!r}, '--out', "
              f"{str(tmp_path / 'out')!r}, '--device', {device!r}]); "
              "print(code, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "0 False", result.stderr[-2000:]
    assert (tmp_path / "out" / "a.tif").exists()
