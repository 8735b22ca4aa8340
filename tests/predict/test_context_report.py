"""predict --context-report: each GVTO's K^T V / N recorded at package time, and an image's distance from it."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from gvtnet_zoo.cli import main
from gvtnet_zoo.data.normalization import normalize_input
from gvtnet_zoo.models import build_model
from gvtnet_zoo.nn.attention import GlobalAttention
from gvtnet_zoo.predict.context_report import NO_RECORD, context_record, gvto_contexts, report_files, report_lines
from gvtnet_zoo.spec_loading import load_spec

TINY = ["model.base_channels=4", "data.patch_size=[8,32,32]"]


def _rdf(package: Path) -> dict:
    with zipfile.ZipFile(package) as archive:
        return yaml.safe_load(archive.read("rdf.yaml"))


def test_package_records_each_gvtos_context_and_its_spread(packages: dict[str, Path]) -> None:
    record = _rdf(packages["3d"])["config"]["gvtnet_zoo"]["context"]
    spec = load_spec("demo-gvtnet-care-denoise-3d", TINY)
    assert len(record["gvtos"]) == 3  # bottom GVTO and two up-sampling GVTOs
    channels = [16, 8, 4]  # base 4 doubled per level: the bottom's 16, then the up GVTOs' outputs
    for stats, c in zip(record["gvtos"], channels):
        assert np.array(stats["mean"]).shape == (spec.model.heads, c // spec.model.heads, c // spec.model.heads)
        assert 0 < stats["spread"] <= stats["p95"]
    assert record["patches"] == 32 and record["source"] == "the run's held-out sample image"


def test_report_says_within_for_the_recorded_context_and_outside_for_a_distant_one() -> None:
    spec = load_spec("demo-gvtnet-care-denoise-3d", TINY)
    network = build_model(spec).eval()
    image = np.random.default_rng(0).poisson(5.0, (8, 32, 32)).astype(np.float32)
    record = context_record(network, spec, image, "test")
    assert record is not None
    own = gvto_contexts(network, spec, normalize_input(image, spec.data)[None, None])
    near = {**record, "gvtos": [{**s, "mean": kv[0].tolist(), "p95": 0.5} for s, kv in zip(record["gvtos"], own)]}
    far = {**record, "gvtos": [{**s, "mean": (3 * kv[0]).tolist(), "p95": 0.5} for s, kv in zip(record["gvtos"], own)]}
    lines = report_lines(near, network, spec, image, "a.tif")
    assert len(lines) == 4 and all("distance 0.00" in line and "within" in line for line in lines[1:])
    lines = report_lines(far, network, spec, image, "a.tif")
    assert all("distance 0.67" in line and "OUTSIDE" in line for line in lines[1:])  # |kv - 3 kv| / |3 kv| = 2/3


def test_projection_networks_record_their_2d_gvtos_from_3d_stacks() -> None:
    spec = load_spec("demo-gvtnet-projection", ["model.network.base_channels=4"])
    network = build_model(spec).eval()
    record = context_record(network, spec, np.random.default_rng(1).random((5, 40, 36), np.float32), "test")
    step = spec.model.size_step()[-1]
    assert record is not None and record["patch_size"] == [5, 40 // step * step, 36 // step * step]  # 16x64x64, cut
    assert len(record["gvtos"]) == sum(isinstance(m, GlobalAttention) for m in network.modules()) > 0


def test_networks_without_gvtos_record_nothing() -> None:
    spec = load_spec("demo-unet-care-denoise-3d")
    assert context_record(build_model(spec).eval(), spec, np.ones((16, 32, 32), np.float32), "test") is None


def test_context_report_prints_per_gvto_and_leaves_predictions_alone(packages: dict[str, Path], tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    image = np.random.default_rng(3).poisson(4.0, (8, 48, 40)).astype(np.float32)
    tifffile.imwrite(tmp_path / "in.tif", image)
    plain, reported = tmp_path / "plain", tmp_path / "reported"
    assert main(["predict", str(packages["3d"]), str(tmp_path / "in.tif"), "--out", str(plain), "--whole"]) == 0
    capsys.readouterr()
    assert main(["predict", str(packages["3d"]), str(tmp_path / "in.tif"), "--out", str(reported), "--whole",
                 "--context-report"]) == 0
    out = capsys.readouterr().out
    assert "in.tif: context report" in out and sum("GVTO" in line and "recorded spread" in line
                                                   for line in out.splitlines()) == 3
    np.testing.assert_array_equal(tifffile.imread(plain / "in.tif"), tifffile.imread(reported / "in.tif"))


def test_packages_without_a_record_say_so_in_one_line(packages: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "old"
    with zipfile.ZipFile(packages["3d"]) as archive:
        archive.extractall(folder)
    rdf = yaml.safe_load((folder / "rdf.yaml").read_text())
    del rdf["config"]["gvtnet_zoo"]["context"]  # as packages made before the record existed
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    heard: list[str] = []
    report_files(folder / "rdf.yaml", [tmp_path], heard.append)
    assert heard == [NO_RECORD]


def test_imported_tf_packages_carry_no_record_and_say_so(tmp_path: Path) -> None:
    """An import-tf run has no training data here: its package records nothing, even with a --sample image."""
    fixture = Path(__file__).parent.parent / "tf_import" / "fixtures" / "care" / "model.ckpt-1"
    tifffile.imwrite(tmp_path / "sample.tif", np.random.default_rng(1).gamma(2.0, 10.0, (8, 64, 64)).astype(np.float32))
    assert main(["import-tf", str(fixture), "--spec", "gvtnet-care-denoise", "--set", "model.base_channels=4",
                 "--out", str(tmp_path / "run"), "--sample", str(tmp_path / "sample.tif")]) == 0
    assert main(["package", str(tmp_path / "run"), "--out", str(tmp_path / "model.zip"),
                 "--weight-formats", "torchscript"]) == 0
    assert "context" not in _rdf(tmp_path / "model.zip")["config"]["gvtnet_zoo"]
    heard: list[str] = []
    report_files(tmp_path / "model.zip", [tmp_path / "sample.tif"], heard.append)
    assert heard == [NO_RECORD]


def test_the_report_pads_as_prediction_does() -> None:
    """The context reported is the one prediction computes: padded by sizes.ORIGINAL_BORDER (half before the image)."""
    from gvtnet_zoo.predict.context_report import _valid

    image = np.arange(2 * 5 * 7, dtype=np.float32).reshape(1, 2, 5, 7)[:, 0]  # (C, Y, X) = (1, 5, 7)
    padded = _valid(image, [4, 4])
    np.testing.assert_array_equal(padded, np.pad(image, [(0, 0), (1, 2), (0, 1)], mode="reflect"))
