"""``predict`` against the original GVTNets' predict.py (issue 32): fixtures made by tools/tf_predict_reference.py
running the original's own prediction path (normalize, pad, optionally cut into patches, offset, crop,
de-normalize) on odd-sized raw images with the fixture checkpoints of tests/tf_import/fixtures. No TensorFlow runs
here: each checkpoint is imported, packaged and predicted by gvtnet-zoo alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from gvtnet_zoo.cli import main

from .test_import_tf import CASES, FIXTURES

PREDICTIONS = Path(__file__).parent / "predict_fixtures"
TOLERANCE = 1e-5  # of the original output's range


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """case -> the package of its fixture checkpoint, made by import-tf and package."""
    made = {}
    for case in ("care", "flywing", "label_free_3d"):
        spec, overrides, sample_shape = CASES[case]
        root = tmp_path_factory.mktemp(case)
        tifffile.imwrite(root / "sample.tif", np.random.default_rng(1).gamma(2.0, 10.0, sample_shape).astype(np.float32))
        sets = [arg for value in overrides for arg in ("--set", value)]
        assert main(["import-tf", str(FIXTURES / case / "model.ckpt-1"), "--spec", spec, *sets, "--out",
                     str(root / "run"), "--sample", str(root / "sample.tif")]) == 0
        assert main(["package", str(root / "run"), "--out", str(root / "model.zip"), "--weight-formats",
                     "torchscript"]) == 0
        made[case] = root / "model.zip"
    return made


def _flags(case: str, output: str, settings: dict) -> list[str]:
    """gvtnet-zoo's flags for what the original ran: de-normalized outputs where it wrote the input's units, its
    patches and overlap where it cropped."""
    original = settings["outputs"][output]["flags"]
    flags = ["--denormalize"] if "--CARE_normalize" in original else []
    if "--cropped_prediction" in original:
        at = original.index("--predict_patch_size")
        overlap = settings["outputs"][output].get("overlap_default") or (
            [int(original[original.index("--overlap") + 1])] * 3 if "--overlap" in original else [64, 64, 64])
        flags += ["--patches", ",".join(original[at + 1:at + 4]), "--overlap", ",".join(map(str, overlap))]
    else:
        flags += ["--whole"]
    return flags


CHECKS = [(case, output) for case in ("care", "flywing", "label_free_3d")
          for output in json.loads((PREDICTIONS / case / "settings.json").read_text())["outputs"]]


@pytest.mark.parametrize(("case", "output"), CHECKS)
def test_predict_gives_the_originals_tiff(imported: dict[str, Path], tmp_path: Path, case: str, output: str) -> None:
    reference = np.load(PREDICTIONS / case / "reference.npz")
    settings = json.loads((PREDICTIONS / case / "settings.json").read_text())
    tifffile.imwrite(tmp_path / "raw.tif", reference["raw"])
    assert main(["predict", str(imported[case]), str(tmp_path / "raw.tif"), "--out", str(tmp_path / "out"),
                 "--weight-format", "torchscript", *_flags(case, output, settings)]) == 0
    produced = np.squeeze(tifffile.imread(tmp_path / "out" / "raw.tif"))
    expected = reference[output]
    assert produced.shape == expected.shape
    span = float(np.ptp(expected))
    assert float(np.abs(produced - expected).max()) <= TOLERANCE * span, \
        f"{case} {output}: {np.abs(produced - expected).max() / span:.2e} of the range"
