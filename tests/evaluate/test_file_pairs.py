"""gvtnet-zoo evaluate on one prediction/target file pair, as the original's --prediction_file/--target_file."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tifffile

from gvtnet_zoo.cli import main


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_a_file_pair_scores_as_the_same_pair_in_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(7)
    truth = rng.gamma(2.0, 30.0, size=(9, 20, 22)).astype(np.float32)
    pred = (0.5 * truth + rng.normal(0, 10, size=truth.shape)).astype(np.float32)
    for folder in ("p", "t"):
        (tmp_path / folder).mkdir()
    tifffile.imwrite(tmp_path / "p" / "cell.tif", pred)
    tifffile.imwrite(tmp_path / "t" / "cell.tif", truth)
    tifffile.imwrite(tmp_path / "prediction.tif", pred)  # file names need not match, as in the original
    np.save(tmp_path / "target.npy", truth)
    assert main(["evaluate", str(tmp_path / "p"), str(tmp_path / "t"), "--out", str(tmp_path / "folders.csv")]) == 0
    folders_out = capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "prediction.tif"), str(tmp_path / "target.npy")]) == 0
    files_out = capsys.readouterr().out
    written = tmp_path / "prediction-metrics.csv"  # beside the prediction, named after it
    assert f"wrote {written}" in files_out
    (folder_row,), (file_row,) = _rows(tmp_path / "folders.csv"), _rows(written)
    assert file_row["image"] == "prediction"
    assert {k: v for k, v in file_row.items() if k != "image"} == {k: v for k, v in folder_row.items() if k != "image"}
    assert [line for line in files_out.splitlines() if "mean" in line] == \
        [line for line in folders_out.splitlines() if "mean" in line]


@pytest.mark.parametrize("pred_is_file", [True, False])
def test_a_file_against_a_folder_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        pred_is_file: bool) -> None:
    image = np.random.default_rng(8).random((16, 16)).astype(np.float32)
    (tmp_path / "folder").mkdir()
    tifffile.imwrite(tmp_path / "folder" / "a.tif", image)
    tifffile.imwrite(tmp_path / "a.tif", image)
    pair = [tmp_path / "a.tif", tmp_path / "folder"]
    pred, truth = pair if pred_is_file else pair[::-1]
    assert main(["evaluate", str(pred), str(truth), "--out", str(tmp_path / "m.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "two image files" in err and "two folders" in err
    assert ("is a file but the ground truth" if pred_is_file else "is a folder but the ground truth") in err
    assert not (tmp_path / "m.csv").exists()


def test_a_missing_or_non_image_file_says_what_to_give(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tifffile.imwrite(tmp_path / "t.tif", np.ones((8, 8), np.float32))
    (tmp_path / "notes.txt").write_text("not an image")
    assert main(["evaluate", str(tmp_path / "p.tif"), str(tmp_path / "t.tif"), "--out", str(tmp_path / "m.csv")]) == 2
    err = capsys.readouterr().err
    assert "prediction" in err and "p.tif not found" in err and "TIFF or .npy image" in err and err.count("\n") == 1
    assert main(["evaluate", str(tmp_path / "notes.txt"), str(tmp_path / "t.tif"), "--out", str(tmp_path / "m.csv")]) == 2
    assert "is not a TIFF or .npy image" in capsys.readouterr().err
