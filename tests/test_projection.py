"""3D-to-2D surface projection end to end: CSBDeep-style data, training, packaging with z dropped, prediction."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
import zarr

from gvtnet_zoo.cli import main
from gvtnet_zoo.data.pairs import load_pairs
from gvtnet_zoo.data.synthetic import write_synthetic
from gvtnet_zoo.spec_loading import load_spec

from .conftest import PACKAGE_RUN

TINY = PACKAGE_RUN + ["model.network.base_channels=4", "model.projection_channels=4", "data.patch_size=[16,32,32]"]


def test_csbdeep_projection_npz_gives_3d_sources_and_2d_targets(tmp_path: Path) -> None:
    x = np.random.rand(3, 1, 16, 32, 32).astype(np.float32)
    y = np.random.rand(3, 1, 1, 32, 32).astype(np.float32)  # CSBDeep keeps a singleton Z in projection targets
    np.savez(tmp_path / "flywing.npz", X=x, Y=y, axes="SCZYX")
    data = load_pairs(tmp_path / "flywing.npz", load_spec("demo-gvtnet-projection", TINY))
    assert [p.source.shape for p in data.pairs] == [(16, 32, 32)] * 3 and data.pairs[2].target.shape == (32, 32)
    np.testing.assert_array_equal(data.pairs[1].target, y[1, 0, 0])


def test_a_stack_shallower_than_the_spec_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_synthetic("projection", tmp_path / "data", 2, 0, (12, 32, 32), seed=0)
    args = ["train", "demo-gvtnet-projection", "--data", str(data / "train"), "--out", str(tmp_path / "run")]
    assert main(args + [f"--set={s}" for s in TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert "(12, 32, 32) is smaller than the patch [16, 32, 32]" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_projection_trains_packages_with_z_dropped_and_predicts_2d(tmp_path: Path) -> None:
    data = write_synthetic("projection", tmp_path / "data", 2, 1, (16, 32, 32), seed=0)
    write_synthetic("projection", tmp_path / "big", 0, 1, (16, 304, 240), seed=1)  # the package's smallest tile is 208
    assert main(["train", "demo-gvtnet-projection", "--data", str(data / "train"), "--val", str(data / "test"),
                 "--out", str(tmp_path / "run"), *[f"--set={s}" for s in TINY]]) == 0
    package = tmp_path / "proj.zip"
    sample = tmp_path / "big" / "test" / "source" / "test_000.tif"
    # package runs bioimageio.core's test_model for torchscript, onnx and pytorch_state_dict before writing
    assert main(["package", str(tmp_path / "run"), "--out", str(package), "--sample", str(sample)]) == 0
    with zipfile.ZipFile(package) as archive:
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
        test_input = np.load(archive.open("test_input.npy"))
        test_output = np.load(archive.open("test_output.npy"))
    assert [a.get("id", a["type"]) for a in rdf["inputs"][0]["axes"]] == ["batch", "channel", "z", "y", "x"]
    assert [a.get("id", a["type"]) for a in rdf["outputs"][0]["axes"]] == ["batch", "channel", "y", "x"]
    assert all(a["size"] == {"tensor_id": "input", "axis_id": a["id"]} for a in rdf["outputs"][0]["axes"][2:])
    assert test_input.shape[:3] == (1, 1, 16) and test_output.shape == (1, 1, *test_input.shape[3:])

    stack = tifffile.imread(sample)
    deep = np.concatenate([stack, stack[::-1], stack], axis=0)  # 48 slices, deeper than a 32-slice tile
    tifffile.imwrite(tmp_path / "deep.tif", deep)
    for mode in (["--whole"], ["--tile", "32,304,240"], ["--tile", "32,256,240"], ["--global-context", "--tile", "32,240,240"]):
        out = tmp_path / f"pred{len(mode)}{mode[-1]}"
        assert main(["predict", str(package), str(tmp_path / "deep.tif"), "--out", str(out), *mode]) == 0
        predicted = tifffile.imread(out / "deep.tif")
        assert predicted.shape == (1, 304, 240) and np.isfinite(predicted).all()
        if mode[-1] == "--whole":
            whole = predicted
        elif mode[-1] == "32,304,240" or mode[0] == "--global-context":
            # y and x whole: z must not be tiled; global context: y tiled, and still the whole stack's result
            np.testing.assert_allclose(predicted, whole, atol=1e-4 * np.ptp(whole), rtol=0)
    # streamed to OME-Zarr in tiles with global context: z stays whole in each, the 2D output is the whole prediction
    assert main(["predict", str(package), str(tmp_path / "deep.tif"), "--out", str(tmp_path / "zarr"),
                 "--out-format", "ome-zarr", "--tile", "32,256,240", "--global-context"]) == 0
    streamed = zarr.open_group(str(tmp_path / "zarr" / "deep.pred.ome.zarr"), mode="r")["0"][:]
    assert streamed.shape == (1, 304, 240)
    np.testing.assert_allclose(streamed, whole, atol=1e-4 * np.ptp(whole), rtol=0)
    truth = tmp_path / "truth"
    truth.mkdir()
    tifffile.imwrite(truth / "deep.tif", tifffile.imread(tmp_path / "big" / "test" / "target" / "test_000.tif"))
    assert main(["evaluate", str(tmp_path / "pred1--whole"), str(truth), "--out", str(tmp_path / "m.csv")]) == 0
    row = (tmp_path / "m.csv").read_text().splitlines()[1].split(",")
    assert row[0] == "deep" and all(np.isfinite(float(v)) for v in row[1:-1])  # 2D metrics of the 2D output
    assert row[-1] == "7x7"  # the SSIM window column
