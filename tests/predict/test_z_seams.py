"""Deep stacks tiled in z: the z receptive field is a halo like y's and x's, so tiles leave no z seams."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from gvtnet_zoo.cli import main
from gvtnet_zoo.data.synthetic import synthetic_pair
from gvtnet_zoo.export.package import package_run
from gvtnet_zoo.predict.halos import DEFAULT_TILE, default_tile
from gvtnet_zoo.predict.run import predict_files
from gvtnet_zoo.spec_loading import load_spec
from gvtnet_zoo.train.trainer import train
from gvtnet_zoo.trust import read_description

from ..conftest import PACKAGE_RUN

SHAPE = (96, 96, 96)  # several tiles deep at --tile 72 (a z halo of 24, a stride of 12)


def _deep_stack(path: Path) -> Path:
    image, _ = synthetic_pair("denoise", SHAPE, np.random.default_rng(11))
    # structure that changes along z, so that a z seam would show
    image = image * np.linspace(0.2, 2.5, SHAPE[0], dtype=np.float32)[:, None, None]
    tifffile.imwrite(path, image)
    return path


def _predict(package: Path, image: Path, out: Path, *flags: str) -> np.ndarray:
    assert main(["predict", str(package), str(image), "--out", str(out), "--device", "cpu", *flags]) == 0
    return tifffile.imread(out / image.name)


def _rdf(package: Path) -> dict:
    with zipfile.ZipFile(package) as archive:
        return yaml.safe_load(archive.read("rdf.yaml"))


@pytest.fixture(scope="module")
def unet_3d(tmp_path_factory: pytest.TempPathFactory, denoise_3d: Path) -> Path:
    root = tmp_path_factory.mktemp("unet3d")
    spec = load_spec("demo-unet-care-denoise-3d", PACKAGE_RUN + ["model.base_channels=4", "data.patch_size=[8,32,32]"])
    train(spec, denoise_3d / "train", root / "run", val=denoise_3d / "test", device="cpu")
    return package_run(root / "run", root / "unet.zip", weight_formats=["torchscript"], echo=lambda _: None)


def test_a_3d_unet_tiled_in_z_y_and_x_equals_the_whole_prediction(unet_3d: Path, tmp_path: Path) -> None:
    rdf = _rdf(unet_3d)
    assert rdf["config"]["gvtnet_zoo"]["halo"] == {"z": 24, "y": 24, "x": 24}
    declared = {axis["id"]: axis.get("halo", 0) for axis in rdf["outputs"][0]["axes"] if axis["type"] == "space"}
    assert declared == {"z": 0, "y": 24, "x": 24}  # thin stacks stay valid inputs: z declares no halo
    image = _deep_stack(tmp_path / "deep.tif")
    whole = _predict(unet_3d, image, tmp_path / "whole", "--whole")
    tiled = _predict(unet_3d, image, tmp_path / "tiles", "--tile", "72,72,72")
    assert whole.shape == tiled.shape == (1, *SHAPE)
    span = float(np.ptp(whole))
    assert np.abs(tiled - whole).max() <= 1e-5 * span


def test_default_tiles_grow_to_fit_the_z_halo(unet_3d: Path, tmp_path: Path) -> None:
    """Without --tile, z tiles of the default 64 grow to 4 halos plus a step (100), never failing for lack of room."""
    image, _ = synthetic_pair("denoise", (160, 32, 32), np.random.default_rng(12))
    tifffile.imwrite(tmp_path / "tall.tif", image)
    whole = _predict(unet_3d, tmp_path / "tall.tif", tmp_path / "whole", "--whole")
    predict_files(unet_3d, [tmp_path / "tall.tif"], tmp_path / "tiles", mode="tile", device="cpu", echo=lambda _: None)
    tiled = tifffile.imread(tmp_path / "tiles" / "tall.tif")
    assert whole.shape == tiled.shape == (1, 160, 32, 32)
    assert np.abs(tiled - whole).max() <= 1e-5 * float(np.ptp(whole))
    assert default_tile(read_description(unet_3d), {"z": 24, "y": 24, "x": 24}, DEFAULT_TILE) == {
        "z": 100, "y": 256, "x": 256}


def test_a_gvtnet_with_global_context_tiled_in_z_equals_the_whole_prediction(packages: dict[str, Path],
                                                                            tmp_path: Path) -> None:
    image = _deep_stack(tmp_path / "deep.tif")
    whole = _predict(packages["3d"], image, tmp_path / "whole", "--whole")
    tiled = _predict(packages["3d"], image, tmp_path / "global", "--global-context", "--tile", "72,72,72")
    span = float(np.ptp(whole))
    assert np.abs(tiled - whole).max() <= 1e-5 * span
