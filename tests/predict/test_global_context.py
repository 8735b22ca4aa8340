"""predict --global-context: a GVTNet's whole-image result from tiles, and clear refusals where it cannot apply."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from gvtnet_zoo.cli import main
from gvtnet_zoo.data.synthetic import synthetic_pair
from gvtnet_zoo.errors import UserError
from gvtnet_zoo.predict.global_context import ContextNetwork
from gvtnet_zoo.predict.plan import axis_windows
from gvtnet_zoo.spec_loading import load_spec

from .test_predict import _foreign_package

# images several tiles large, sizes no multiple of the tile or of the network's step
CASES = {"2d": ((150, 170), "72,72"), "3d": ((12, 100, 90), "12,64,64")}


@pytest.mark.parametrize("key", ["2d", "3d"])
def test_global_context_equals_whole_and_plain_tiles_do_not(packages: dict[str, Path], tmp_path: Path, key: str) -> None:
    shape, tile = CASES[key]
    image, _ = synthetic_pair("denoise", shape, np.random.default_rng(7))
    # bright on one side, dark on the other: what one tile sees differs from the whole image's statistics
    image = image * np.linspace(0.1, 3.0, shape[-1], dtype=np.float32)
    tifffile.imwrite(tmp_path / "big.tif", image)
    results = {}
    runs = {"whole": ["--whole"], "global": ["--global-context", "--tile", tile], "tiles": ["--plain-tiles", "--tile", tile]}
    for mode, flags in runs.items():
        assert main(["predict", str(packages[key]), str(tmp_path / "big.tif"), "--out", str(tmp_path / mode), *flags]) == 0
        results[mode] = tifffile.imread(tmp_path / mode / "big.tif")
    whole = results["whole"]
    assert whole.shape == results["global"].shape == (1, *shape)
    span = float(np.ptp(whole))
    global_error = np.abs(results["global"] - whole).max() / span
    tile_error = np.abs(results["tiles"] - whole).max() / span
    assert global_error < 1e-4
    if key == "2d":  # (the 3-step 3D package is still close to its residual identity; see the test below)
        assert tile_error > 100 * global_error  # each plain tile attends to itself only


def _randomized_batch_norm(network: torch.nn.Module) -> None:
    for module in network.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.3, 0.3)
            module.running_var.uniform_(0.5, 1.5)


def test_tiles_in_z_too_with_resampling_gvtos_and_batch_norm() -> None:
    """Down- and up-sampling GVTOs (v1 and v2), batch norm, tiles along every axis: equal to the whole forward."""
    spec = load_spec("gvtnet-care-denoise", ["model.base_channels=4", "model.depth=2", "model.batch_norm=true",
                                             "model.down_sampling=gvto_v1", "model.up_sampling=gvto_v2",
                                             "model.encoder_blocks=[1,1]", "model.residual_output=false"])
    context = ContextNetwork.build(spec)
    _randomized_batch_norm(context.network)
    assert len(context.attentions) == 3 and sorted(set(context.query_ratios)) == [0.125, 1.0, 8.0]
    image = np.random.default_rng(0).normal(size=(2, 1, 40, 36, 44)).astype(np.float32)
    image *= np.linspace(0.1, 4.0, 44, dtype=np.float32)  # not stationary: a tile's statistics are not the image's
    with torch.no_grad():
        whole = context.network(torch.from_numpy(image)).numpy()
    length = 2 * context.halo[0] + 8
    tiled = context.predict(image, {"z": length, "y": length, "x": length})
    np.testing.assert_allclose(tiled, whole, atol=1e-5 * np.ptp(whole), rtol=0)
    # the same tiles and cores, each tile attending to itself only: visibly different
    alone = context.predict(image, {"z": length, "y": length, "x": length}, global_context=False)
    assert np.abs(alone - whole).max() > 1e-3 * np.ptp(whole)


def test_projection_models_keep_z_whole_and_match_the_whole_forward() -> None:
    spec = load_spec("demo-gvtnet-projection", ["model.network.base_channels=4", "model.projection_channels=4"])
    context = ContextNetwork.build(spec)
    assert len(context.attentions) == 6  # bottom + two UP4 GVTOs in the projection net, three in the 2D GVTNet
    image = np.random.default_rng(2).normal(size=(1, 1, 8, 256, 224)).astype(np.float32)
    image *= np.linspace(0.1, 4.0, 256, dtype=np.float32)[:, None]  # along y, the axis the tiles cut
    with torch.no_grad():
        whole = context.network(torch.from_numpy(image)).numpy()
    tiles = {"z": 2, "y": 224, "x": 224}  # z is never tiled for a model that projects it away
    tiled = context.predict(image, tiles)
    assert tiled.shape == whole.shape == (1, 1, 256, 224)
    np.testing.assert_allclose(tiled, whole, atol=1e-5 * np.ptp(whole), rtol=0)
    assert np.abs(context.predict(image, tiles, global_context=False) - whole).max() > 1e-2 * np.ptp(whole)


def test_plan_windows_partition_the_axis_on_the_grid() -> None:
    windows = axis_windows(100, 64, 24, 4, "y")
    cores = [(a, b) for a, b, _, _ in windows]
    assert cores[0][0] == 0 and cores[-1][1] == 100 and all(b == c for (_, b), (c, _) in zip(cores, cores[1:]))
    assert all(t1 - t0 == 64 and a % 4 == 0 and t0 % 4 == 0 for a, b, t0, t1 in windows)
    assert all((a - t0 >= 24 or t0 == 0) and (t1 - b >= 24 or t1 == 100) for a, b, t0, t1 in windows)  # the halo
    assert axis_windows(60, 64, 24, 4, "z") == [(0, 60, 0, 60)]
    with pytest.raises(UserError, match="at least 52"):
        axis_windows(100, 50, 24, 4, "x")


def test_networks_without_gvtos_are_refused_with_the_reason() -> None:
    with pytest.raises(UserError, match="no GVTOs"):
        ContextNetwork.build(load_spec("demo-unet-label-free-2d"))


def test_packages_not_made_by_gvtnet_zoo_are_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                 packages: dict[str, Path]) -> None:
    package, x, _ = _foreign_package(tmp_path, weight_format="torchscript", crop=False)
    tifffile.imwrite(tmp_path / "a.tif", x[0, 0])
    capsys.readouterr()
    assert main(["predict", str(package), str(tmp_path / "a.tif"), "--out", str(tmp_path / "o"), "--global-context"]) == 2
    err = capsys.readouterr().err.strip()
    assert "made by gvtnet-zoo" in err and len(err.splitlines()) == 1 and not (tmp_path / "o").exists()
    assert main(["predict", str(packages["2d"]), str(tmp_path / "a.tif"), "--out", str(tmp_path / "o"),
                 "--global-context", "--whole"]) == 2
    assert "either it or --whole" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_global_context_on_cuda_equals_the_whole_forward() -> None:
    spec = load_spec("demo-gvtnet-care-denoise-3d", ["model.residual_output=false"])
    context = ContextNetwork.build(spec, device="cuda")
    assert all(p.is_contiguous() for p in context.network.parameters())  # channels-last is a CPU choice
    image = np.random.default_rng(1).normal(size=(1, 1, 32, 96, 80)).astype(np.float32)
    image *= np.linspace(0.1, 4.0, 80, dtype=np.float32)
    with torch.no_grad():
        whole = context.network(torch.from_numpy(image).cuda()).cpu().numpy()
    tiled = context.predict(image, {"z": 32, "y": 64, "x": 64})
    # TF32 convolutions on the GPU: a looser bound than the CPU's float32
    np.testing.assert_allclose(tiled, whole, atol=1e-3 * np.ptp(whole), rtol=0)


@pytest.mark.parametrize("by_levels", [True, False])
def test_progress_counts_every_pass_and_a_cancel_stops_before_the_next_tile(by_levels: bool) -> None:
    from gvtnet_zoo.errors import Cancelled
    from gvtnet_zoo.progress import CancellableProgress

    context = ContextNetwork.build(load_spec("demo-gvtnet-label-free-2d", ["model.base_channels=4"]))
    image = np.random.default_rng(0).normal(size=(1, 1, 128, 128)).astype(np.float32)
    tile = {"y": 2 * context.halo[-1] + 32, "x": 2 * context.halo[-1] + 32}
    seen: list[tuple[int, int]] = []
    context.predict(image, tile, progress=lambda done, total: seen.append((done, total)), by_levels=by_levels)
    total = seen[-1][1]
    assert total > len(context.attentions) + 1 and seen == [(i, total) for i in range(total + 1)]
    if not by_levels:  # one collecting pass per GVTO, then the predicting pass, each over the same tiles
        assert total % (len(context.attentions) + 1) == 0
    cancel = CancellableProgress(lambda done, total: cancel.cancel() if done == 2 else None)
    with pytest.raises(Cancelled):
        context.predict(image, tile, progress=cancel, by_levels=by_levels)
