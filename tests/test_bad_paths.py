"""Every verb with bad paths: one line, exit code 2, no traceback, and nothing left behind.

The tests run as root in CI, where permissions do not stop reading or writing, so "unreadable" is a
file whose content cannot be read as what it should be, and "unwritable" is an output below a file.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import tifffile

from gvtnet_zoo.cli import main

Case = Callable[[Path, dict[str, Path]], list[str]]


def _garbage(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00\x01 this is not what the file claims to be \xff" * 10)
    return path


def _image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.random.default_rng(0).random((64, 64)).astype(np.float32))
    return path


def _a_file(root: Path) -> Path:
    """A regular file: anything 'below' it cannot be written."""
    path = root / "a-file"
    path.write_text("not a folder")
    return path


def _pairs(root: Path, broken: bool) -> Path:
    for side in ("source", "target"):
        (_garbage if broken else _image)(root / side / "a.tif")
    return root


CASES: dict[str, Case] = {
    # summary
    "summary missing spec": lambda t, p: ["summary", str(t / "nowhere.yaml")],
    "summary unreadable spec": lambda t, p: ["summary", str(_garbage(t / "spec.yaml"))],
    "summary folder as spec": lambda t, p: ["summary", str(t)],
    # train
    "train missing data": lambda t, p: ["train", "demo-gvtnet-label-free-2d", "--data", str(t / "none"), "--out", str(t / "run")],
    "train unreadable data": lambda t, p: ["train", "demo-gvtnet-label-free-2d", "--data", str(_pairs(t / "d", True)),
                                           "--out", str(t / "run")],
    "train folder as spec": lambda t, p: ["train", str(t), "--data", str(_pairs(t / "d", False)), "--out", str(t / "run")],
    "train unwritable out": lambda t, p: ["train", "demo-gvtnet-label-free-2d", "--data", str(_pairs(t / "d", False)),
                                          "--out", str(_a_file(t) / "run"), "--set", "data.val_fraction=0.5",
                                          "--set", "data.patch_size=[32,32]"],
    # synth
    "synth unwritable out": lambda t, p: ["synth", "denoise", "--out", str(_a_file(t) / "data"), "--shape", "32,32"],
    # package
    "package missing run": lambda t, p: ["package", str(t / "none"), "--out", str(t / "m.zip")],
    "package unreadable run": lambda t, p: ["package", str(_garbage(t / "run" / "spec.yaml").parent), "--out", str(t / "m.zip")],
    "package folder as out": lambda t, p: ["package", str(p["run"]), "--out", str(_folder(t / "m.zip"))],
    "package folder as sample": lambda t, p: ["package", str(p["run"]), "--out", str(t / "m.zip"), "--sample", str(t)],
    "package unwritable out": lambda t, p: ["package", str(p["run"]), "--out", str(_a_file(t) / "m.zip")],
    # test
    "test missing model": lambda t, p: ["test", str(t / "none.zip")],
    "test unreadable model": lambda t, p: ["test", str(_garbage(t / "m.zip"))],
    "test folder as model": lambda t, p: ["test", str(t)],
    # predict
    "predict missing input": lambda t, p: ["predict", str(p["package"]), str(t / "none.tif"), "--out", str(t / "o")],
    "predict unreadable input": lambda t, p: ["predict", str(p["package"]), str(_garbage(t / "in" / "a.tif")), "--out", str(t / "o")],
    "predict folder as model": lambda t, p: ["predict", str(t), str(_image(t / "in" / "a.tif")), "--out", str(t / "o")],
    "predict unwritable out": lambda t, p: ["predict", str(p["package"]), str(_image(t / "in" / "a.tif")),
                                            "--out", str(_a_file(t) / "o")],
    # evaluate
    "evaluate missing predictions": lambda t, p: ["evaluate", str(t / "none"), str(_pairs(t / "d", False) / "target")],
    "evaluate unreadable prediction": lambda t, p: ["evaluate", str(_garbage(t / "p" / "a.tif").parent),
                                                    str(_pairs(t / "d", False) / "target"), "--out", str(t / "m.csv")],
    "evaluate folder as out": lambda t, p: ["evaluate", str(_pairs(t / "d", False) / "source"),
                                            str(t / "d" / "target"), "--out", str(_folder(t / "m.csv"))],
    "evaluate unwritable out": lambda t, p: ["evaluate", str(_pairs(t / "d", False) / "source"), str(t / "d" / "target"),
                                             "--out", str(_a_file(t) / "m.csv")],
    "evaluate unwritable plot": lambda t, p: ["evaluate", str(_pairs(t / "d", False) / "source"), str(t / "d" / "target"),
                                              "--out", str(t / "m.csv"), "--baseline", str(t / "d" / "source"),
                                              "--plot", str(_a_file(t) / "box.png")],
    # demo
    "demo unwritable out": lambda t, p: ["demo", "--out", str(_a_file(t) / "demo")],
}


def _folder(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_paths_are_one_line_exit_2_and_leave_nothing(case: str, packages: dict[str, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    run = tmp_path / "run"
    shutil.copytree(packages["2d"].parent / "run", run)
    argv = CASES[case](work, {"run": run, "package": packages["2d"]})
    before = _files(tmp_path)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gvtnet-zoo: error: ") and "Traceback" not in err, err
    assert _files(tmp_path) == before, sorted(map(str, _files(tmp_path) - before))


def test_predict_never_writes_over_its_input(packages: dict[str, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """An output that is, contains or lies inside an input is refused, even with --overwrite (issue 26, item 1)."""
    import numpy as np
    import tifffile
    import zarr
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_image

    volume = (np.random.default_rng(0).random((8, 64, 64)) * 1000).astype(np.uint16)
    store = tmp_path / "a.ome.zarr"
    write_image(volume, zarr.open_group(str(store), mode="w", zarr_format=3), fmt=FormatV05(), axes="zyx")
    files = lambda: {p.relative_to(store): p.read_bytes() for p in store.rglob("*") if p.is_file()}  # noqa: E731
    before = files()
    for out in (store, store / "inside"):
        assert main(["predict", str(packages["3d"]), str(store), "--out", str(out), "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert "no input is written over" in err and err.count("\n") == 1
    assert files() == before and len(before) > 2
    # beside the input, a streamed output has a name of its own: a.pred.ome.zarr, the input untouched
    assert main(["predict", str(packages["3d"]), str(store), "--out", str(tmp_path), "--tile", "64,72,72"]) == 0
    assert (tmp_path / "a.pred.ome.zarr" / "zarr.json").is_file() and files() == before
    image = tmp_path / "b.tif"
    tifffile.imwrite(image, volume[0].astype(np.float32))
    assert main(["predict", str(packages["2d"]), str(image), "--out", str(tmp_path), "--overwrite"]) == 2
    assert "no input is written over" in capsys.readouterr().err
    np.testing.assert_array_equal(tifffile.imread(image), volume[0].astype(np.float32))


def test_a_thin_stack_read_as_channels_names_the_axes_to_give(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 33 item 7: 3 planes are guessed to be channels; the message names --axes zyx."""
    from gvtnet_zoo.errors import UserError
    from gvtnet_zoo.image_io.files import to_model_axes

    with pytest.raises(UserError, match="if its c axis is z, give --axes zyx"):
        to_model_axes(np.zeros((3, 77, 93), np.float32), "cyx", "bczyx", "thin.tif")
