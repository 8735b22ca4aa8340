"""CSBDeep .npz training data: normalized once by CSBDeep, trained on as stored, packaged with CARE's percentiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gvtnet_zoo.cli import main
from gvtnet_zoo.config import CARE_PREDICTION_PERCENTILES
from gvtnet_zoo.export.rdf import preprocessing
from gvtnet_zoo.spec_loading import load_spec
from gvtnet_zoo.train import trainer

from .conftest import tiny_args

SPEC = "demo-gvtnet-care-denoise-3d"
SHAPE = ["model.base_channels=4", "data.patch_size=[8,32,32]", "data.flips=false", "data.rotations=false"]


def _csbdeep_npz(path: Path, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """X, Y as CSBDeep's create_patches + save_training_data write them: float32 (S, C, Z, Y, X), axes 'SCZYX'.

    create_patches has normalized each patch with percentiles of its whole source image, so the values
    are roughly in [0, 1] with tails outside; a second per-patch normalization would change them.
    """
    rng = np.random.default_rng(seed)
    brightness = np.linspace(0.2, 1.5, n)[:, None, None, None, None]
    y = (rng.gamma(2.0, 0.2, size=(n, 1, 8, 32, 32)) * brightness).astype(np.float32)
    x = (y + rng.normal(0, 0.1, size=y.shape)).astype(np.float32)
    np.savez(path, X=x, Y=y, axes="SCZYX")
    return x, y


def test_npz_patches_train_on_exactly_the_stored_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _csbdeep_npz(tmp_path / "data.npz", 5, seed=0)
    x_val, y_val = _csbdeep_npz(tmp_path / "val.npz", 2, seed=1)
    seen: list[list] = []
    real = trainer.PatchSampler

    def recording(pairs, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202 - the sampler's own signature
        seen.append(list(pairs))
        return real(pairs, *args, **kwargs)

    monkeypatch.setattr(trainer, "PatchSampler", recording)
    assert main(["train", SPEC, "--data", str(tmp_path / "data.npz"), "--val", str(tmp_path / "val.npz"),
                 "--out", str(tmp_path / "run"), "--device", "cpu", *tiny_args(*SHAPE, "train.steps=2")]) == 0
    training, validation = seen[0], seen[1]
    for pairs, xs, ys in ((training, x, y), (validation, x_val, y_val)):
        assert len(pairs) == len(xs)
        for pair, xi, yi in zip(pairs, xs, ys):
            np.testing.assert_array_equal(pair.source, xi[0])
            np.testing.assert_array_equal(pair.target, yi[0])
    recorded = load_spec(tmp_path / "run" / "spec.yaml")
    assert recorded.data.normalization == "as_stored"
    assert recorded.data.input_percentiles == CARE_PREDICTION_PERCENTILES == (2.0, 99.8)
    # the package's preprocessing of whole images: CARE's prediction normalization
    (step,) = preprocessing(recorded)
    assert step.id == "scale_range"
    assert (step.kwargs.min_percentile, step.kwargs.max_percentile) == (2.0, 99.8)
    # resuming with the same spec accepts the recorded normalization
    assert main(["train", SPEC, "--data", str(tmp_path / "data.npz"), "--val", str(tmp_path / "val.npz"),
                 "--out", str(tmp_path / "run"), "--device", "cpu", "--resume",
                 *tiny_args(*SHAPE, "train.steps=3")]) == 0


def test_chosen_percentiles_are_kept_and_mixing_patches_with_images_is_refused(
        tmp_path: Path, denoise_3d: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _csbdeep_npz(tmp_path / "data.npz", 4, seed=2)
    assert main(["train", SPEC, "--data", str(tmp_path / "data.npz"), "--out", str(tmp_path / "run"), "--device", "cpu",
                 *tiny_args(*SHAPE, "train.steps=1", "data.input_percentiles=[2,99.9]")]) == 0
    assert load_spec(tmp_path / "run" / "spec.yaml").data.input_percentiles == (2.0, 99.9)
    capsys.readouterr()
    assert main(["train", SPEC, "--data", str(tmp_path / "data.npz"), "--val", str(denoise_3d / "test"),
                 "--out", str(tmp_path / "mixed"), "--device", "cpu", *tiny_args(*SHAPE)]) == 2
    err = capsys.readouterr().err
    assert "both be CSBDeep .npz patches or both be images" in err and err.count("\n") == 1
    assert not (tmp_path / "mixed").exists()
    assert main(["train", SPEC, "--data", str(denoise_3d / "train"), "--out", str(tmp_path / "stored"), "--device", "cpu",
                 *tiny_args(*SHAPE, "data.normalization=as_stored")]) == 2
    assert "is for CSBDeep .npz patches" in capsys.readouterr().err
