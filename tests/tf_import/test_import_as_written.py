"""The README's import-tf command as written (issue 33 item 1): an --out whose folders do not exist yet, and
`--set name=...` naming the model (a top-level key of the spec)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from gvtnet_zoo.cli import main

from .test_import_tf import CASES, FIXTURES


def test_import_tf_as_the_readme_writes_it(tmp_path: Path) -> None:
    spec, overrides, shape = CASES["care"]
    tifffile.imwrite(tmp_path / "NOISY_planaria.tif", np.random.default_rng(1).gamma(2.0, 10.0, shape).astype(np.float32))
    sets = [arg for value in overrides for arg in ("--set", value)]
    out = tmp_path / "runs" / "care-planaria"  # runs/ does not exist yet
    assert main(["import-tf", str(FIXTURES / "care" / "model.ckpt-1"), "--spec", spec, *sets,
                 "--set", "name=gvtnet-care-planaria", "--out", str(out),
                 "--sample", str(tmp_path / "NOISY_planaria.tif")]) == 0
    assert yaml.safe_load((out / "spec.yaml").read_text())["name"] == "gvtnet-care-planaria"


def test_package_warns_of_a_placeholder_author_that_upload_refuses(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 33 item 8: the README's placeholder author passes `package` and fails `upload`; say so at once."""
    spec, overrides, shape = CASES["care"]
    tifffile.imwrite(tmp_path / "s.tif", np.random.default_rng(1).gamma(2.0, 10.0, shape).astype(np.float32))
    sets = [arg for value in overrides for arg in ("--set", value)]
    assert main(["import-tf", str(FIXTURES / "care" / "model.ckpt-1"), "--spec", spec, *sets, "--out",
                 str(tmp_path / "run"), "--sample", str(tmp_path / "s.tif")]) == 0
    for author, warned in (("Your Name;Your Institute", True), ("Ada Lovelace;Analytical Engines", False)):
        capsys.readouterr()
        assert main(["package", str(tmp_path / "run"), "--out", str(tmp_path / "m.zip"), "--weight-formats",
                     "torchscript", "--author", author, "--overwrite"]) == 0
        out = capsys.readouterr().out
        assert ("warning: the author 'Your Name' is a placeholder" in out) == warned
        assert not warned or "--overwrite" in out
