"""Synthetic microscopy: the right shapes, structure in the targets, noise in the denoising inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from gvtnet_zoo.cli import main
from gvtnet_zoo.data.synthetic import synthetic_pair
from gvtnet_zoo.evaluate.metrics import pearson_r


@pytest.mark.parametrize("task, shape, target_shape", [
    ("denoise", (16, 48, 48), (16, 48, 48)),
    ("denoise", (64, 64), (64, 64)),
    ("label-free", (16, 48, 48), (16, 48, 48)),
    ("label-free", (64, 64), (64, 64)),
    ("projection", (16, 48, 48), (48, 48)),
])
def test_shapes_and_finite_values(task: str, shape: tuple[int, ...], target_shape: tuple[int, ...]) -> None:
    source, target = synthetic_pair(task, shape, np.random.default_rng(0))
    assert source.shape == shape and target.shape == target_shape
    assert np.isfinite(source).all() and np.isfinite(target).all()
    assert target.std() > 0.05 * target.mean()  # structure, not a flat image


def test_denoising_input_is_a_noisy_version_of_the_target() -> None:
    source, target = synthetic_pair("denoise", (16, 64, 64), np.random.default_rng(0))
    r = pearson_r(source, target)
    assert 0.2 < r < 0.9  # related, but far from clean
    assert source.mean() < 0.1 * target.mean()  # few photons vs bright


def test_label_free_target_is_one_structure_class() -> None:
    source, target = synthetic_pair("label-free", (96, 96), np.random.default_rng(0))
    bright = target > np.percentile(target, 95)
    assert 0.005 < bright.mean() < 0.2 and pearson_r(source, target) < 0.9


def test_synth_command_writes_pairs_and_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "projection", "--out", str(tmp_path), "--n", "2", "--n-test", "1", "--shape", "12,32,32"]) == 0
    assert sorted(p.name for p in (tmp_path / "train" / "source").iterdir()) == ["train_000.tif", "train_001.tif"]
    assert tifffile.imread(tmp_path / "test" / "target" / "test_000.tif").shape == (32, 32)
    before = (tmp_path / "train" / "source" / "train_000.tif").read_bytes()
    assert main(["synth", "denoise", "--out", str(tmp_path), "--n", "1"]) == 2
    assert "already holds images" in capsys.readouterr().err
    assert (tmp_path / "train" / "source" / "train_000.tif").read_bytes() == before


def test_real_label_free_pairs_from_the_sample_package(tmp_path: Path) -> None:
    from gvtnet_zoo.data.samples import prepare_label_free_2d

    out = prepare_label_free_2d(tmp_path)
    assert len(list((out / "train" / "source").iterdir())) == 8 and len(list((out / "test" / "target").iterdir())) == 2
    source = tifffile.imread(out / "train" / "source" / "t00.tif")
    target = tifffile.imread(out / "train" / "target" / "t00.tif")
    assert source.shape == target.shape == (210, 576) and source.dtype == np.uint16
    assert not np.array_equal(source, target)  # transmitted light and fluorescence are different channels


def test_real_nuclei_denoising_pairs_carry_simulated_shot_noise(tmp_path: Path) -> None:
    from gvtnet_zoo.data.samples import prepare_denoise_3d

    out = prepare_denoise_3d(tmp_path, photons=10.0)
    assert sorted(p.name for p in (out / "train" / "source").iterdir()) == ["top_left.tif", "top_right.tif"]
    source = tifffile.imread(out / "test" / "source" / "bottom.tif").astype(np.float64)
    target = tifffile.imread(out / "test" / "target" / "bottom.tif").astype(np.float64)
    assert source.shape == target.shape == (60, 128, 256)
    assert source.max() < 60  # ~10 photons at the brightest voxel plus background, read noise and offset
    # shot noise: the variance grows with the signal, so bright voxels scatter more than dark ones
    bright, dark = target > np.percentile(target, 95), target < np.percentile(target, 20)
    assert source[bright].var() > 2 * source[dark].var()
    assert 0.2 < pearson_r(source, target) < 0.8


@pytest.mark.parametrize("counts", [["--n", "0"], ["--n", "-2"], ["--n-test", "-1"]])
def test_synth_refuses_no_training_pairs_in_one_line(tmp_path: Path, counts: list[str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from gvtnet_zoo.cli import main

    assert main(["synth", "denoise", "--out", str(tmp_path / "s"), *counts, "--shape", "8,16,16"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not (tmp_path / "s").exists()
