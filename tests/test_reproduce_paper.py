"""tools/reproduce_paper.py end to end on stand-ins laid out like the real data and the original's save_dir/.

The checkpoints are the reduced-width fixtures of the original networks (tests/tf_import/fixtures), placed where the
published ones lie in a GVTNets checkout; the data are tiny synthetic images in the CSBDeep / original layouts.
"""

from __future__ import annotations

import csv
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "tf_import" / "fixtures"
spec = importlib.util.spec_from_file_location("reproduce_paper", ROOT / "tools" / "reproduce_paper.py")
reproduce = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reproduce)


def _checkpoint(original: Path, fixture: str, save: str, model: str) -> None:
    """The fixture checkpoint at save_dir/SAVE/models/MODEL_pretrained/model.ckpt-pretrained, as published."""
    folder = original / "save_dir" / save / "models" / f"{model}_pretrained"
    folder.mkdir(parents=True)
    for path in (FIXTURES / fixture).glob("model.ckpt-1.*"):
        shutil.copy(path, folder / path.name.replace("model.ckpt-1", "model.ckpt-pretrained"))


def _table(out: Path) -> list[dict[str, str]]:
    with (out / "table.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _per_image(path: Path, metric: str) -> list[float]:
    with path.open(newline="") as handle:
        return [float(row[metric]) for row in csv.DictReader(handle)]


def test_care_tribolium_stacks_are_split_imported_packaged_predicted_and_tabled(tmp_path: Path) -> None:
    original, data, out = tmp_path / "GVTNets", tmp_path / "Denoising_Tribolium", tmp_path / "results"
    _checkpoint(original, "care", "care_denoising/tribolium", "gvtnet_care")
    (data / "test_data").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = ["nGFP_0.1_0.2_0.5_20_13_late.tif", "nGFP_0.1_0.2_0.5_20_14_late.tif"]
    for name in names:  # as published: 4 volumes per file, index 3 the ground truth, 2..0 conditions 1..3
        gt = rng.gamma(2.0, 10.0, (8, 64, 72)).astype(np.float32)
        noisy = [gt + rng.normal(0, s, gt.shape).astype(np.float32) for s in (20.0, 10.0, 5.0)]
        tifffile.imwrite(data / "test_data" / name, np.stack([*noisy, gt]))
    assert reproduce.main(["care", "--original", str(original), "--data", str(data), "--out", str(out),
                           "--set", "model.base_channels=4", "--weight-formats", "torchscript", "--device", "cpu"]) == 0
    for condition, index in (("GT", 3), ("condition_1", 2), ("condition_3", 0)):
        split = tifffile.imread(out / "test_data" / condition / names[1])
        np.testing.assert_array_equal(split, tifffile.imread(data / "test_data" / names[1])[index])
    assert (out / "packages" / "tribolium.zip").is_file()
    for name in names:
        assert tifffile.imread(out / "predictions" / "condition_1" / name).squeeze().shape == (8, 64, 72)
    rows = _table(out)
    assert [r["condition"] for r in rows] == ["condition_1", "condition_2", "condition_3"]
    for row in rows:
        values = _per_image(out / "metrics" / f"{row['condition']}.csv", "psnr")
        assert row["n"] == "2" and float(row["psnr_mean"]) == pytest.approx(np.mean(values), rel=1e-5)
        assert float(row["psnr_sd"]) == pytest.approx(np.std(values, ddof=1), rel=1e-4, abs=1e-6)
    markdown = (out / "table.md").read_text()
    assert "| condition | n | NRMSE | PSNR | SSIM |" in markdown and "±" in markdown


def test_flywing_projection_is_predicted_whole_and_evaluated_in_2d(tmp_path: Path) -> None:
    original, data, out = tmp_path / "GVTNets", tmp_path / "Projection_Flywing", tmp_path / "results"
    _checkpoint(original, "flywing", "care_projection/flywing", "gvtnet_care")
    rng = np.random.default_rng(1)
    (data / "test_data" / "PreMosa" / "GT").mkdir(parents=True)
    (data / "test_data" / "C1").mkdir()
    gt = rng.gamma(2.0, 10.0, (208, 208)).astype(np.float32)
    tifffile.imwrite(data / "test_data" / "PreMosa" / "GT" / "a.tif", gt)
    tifffile.imwrite(data / "test_data" / "C1" / "a.tif", (gt + rng.normal(0, 5, (6, 208, 208))).astype(np.float32))
    assert reproduce.main(["flywing", "--original", str(original), "--data", str(data / "test_data"), "--out", str(out),
                           "--conditions", "C1", "--set", "model.network.base_channels=4",
                           "--weight-formats", "torchscript", "--device", "cpu"]) == 0
    assert tifffile.imread(out / "predictions" / "C1" / "a.tif").squeeze().shape == (208, 208)
    assert [r["condition"] for r in _table(out)] == ["C1"]


def test_label_free_reads_the_originals_test_tiffs_and_tables_pearson_r(tmp_path: Path) -> None:
    original, out = tmp_path / "GVTNets", tmp_path / "results"
    _checkpoint(original, "label_free_3d", "label-free/dna", "gvtnet_label-free")
    test = original / "save_dir" / "label-free" / "dna" / "datasets" / "test"  # where the original's predict.sh writes
    (test / "ground_truth").mkdir(parents=True)
    rng = np.random.default_rng(2)
    signal = rng.normal(0, 1, (16, 128, 128)).astype(np.float32)
    tifffile.imwrite(test / "test_image_00.tiff", signal)
    tifffile.imwrite(test / "ground_truth" / "test_image_00.tiff", signal + rng.normal(0, 1, signal.shape).astype(np.float32))
    assert reproduce.main(["label-free", "--original", str(original), "--structures", "dna", "--out", str(out),
                           "--set", "model.base_channels=4", "--weight-formats", "torchscript", "--device", "cpu"]) == 0
    rows = _table(out)
    assert [r["structure"] for r in rows] == ["dna"] and list(rows[0]) == ["structure", "n", "pearson_r_mean",
                                                                           "pearson_r_sd"]
    assert float(rows[0]["pearson_r_mean"]) == pytest.approx(_per_image(out / "metrics" / "dna.csv", "pearson_r")[0],
                                                             rel=1e-5)


def test_a_checkout_without_the_checkpoint_is_refused_in_one_line(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "Denoising_Planaria" / "test_data").mkdir(parents=True)
    assert reproduce.main(["care", "--original", str(tmp_path), "--data", str(tmp_path / "Denoising_Planaria"),
                           "--out", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model.ckpt-pretrained.index" in err
