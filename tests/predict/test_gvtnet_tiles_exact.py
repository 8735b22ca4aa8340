"""Issue 33 item 5: a tiled GVTNet gives the whole image's answer by default (global context), plain tiles only when
asked for and always with a warning, tile sizes of at least the image leave the axis whole, and many tiles for an
image that fits whole get a hint."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile
import zarr

from gvtnet_zoo.cli import main
from gvtnet_zoo.data.synthetic import synthetic_pair
from gvtnet_zoo.errors import UserError
from gvtnet_zoo.models import build_model
from gvtnet_zoo.nn.attention import GlobalAttention
from gvtnet_zoo.predict import halos, memory
from gvtnet_zoo.predict.halos import package_halo
from gvtnet_zoo.predict.plan import plan_tiles
from gvtnet_zoo.predict.run import predict_files
from gvtnet_zoo.predict.tile_mode import tile_rule
from gvtnet_zoo.spec_loading import load_spec
from gvtnet_zoo.trust import read_description

SHAPE = (150, 170)  # the 2D package (halo 28, step 4) in tiles of 96: 4 x 5 = 20 tiles
TILE = "96,96"
WARNING = "plain tiles change every voxel of a GVTNet's output"


def _image(path: Path, shape: tuple[int, ...] = SHAPE) -> Path:
    image, _ = synthetic_pair("denoise", shape, np.random.default_rng(7))
    # bright on one side, dark on the other: what one tile sees differs from the whole image
    tifffile.imwrite(path, image * np.linspace(0.1, 3.0, shape[-1], dtype=np.float32))
    return path


def _predict(package: Path, image: Path, out: Path, *flags: str) -> np.ndarray:
    assert main(["predict", str(package), str(image), "--out", str(out), "--device", "cpu", *flags]) == 0
    if (out / image.name).exists():
        return tifffile.imread(out / image.name)
    return np.asarray(zarr.open_group(str(out / f"{image.stem}.pred.ome.zarr"), mode="r")["0"][:])


def _error(result: np.ndarray, whole: np.ndarray) -> float:
    return float(np.abs(np.squeeze(result) - np.squeeze(whole)).max() / np.ptp(whole))


def test_gvtnet_tiles_equal_whole_in_memory_and_streamed_and_plain_tiles_warn(
        packages: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = _image(tmp_path / "img.tif")
    whole = _predict(packages["2d"], image, tmp_path / "whole", "--whole")
    capsys.readouterr()
    tiled = _predict(packages["2d"], image, tmp_path / "tiles", "--tile", TILE)
    out = capsys.readouterr().out
    exact = _error(tiled, whole)
    assert exact <= 1e-5
    assert "with pytorch_state_dict (global context) weights" in out.splitlines()[-1] and WARNING not in out
    streamed = _predict(packages["2d"], image, tmp_path / "streamed", "--tile", TILE, "--out-format", "ome-zarr")
    out = capsys.readouterr().out
    assert _error(streamed, whole) <= 1e-5 and "(global context)" in out.splitlines()[-1] and WARNING not in out
    for name, extra in (("plain", []), ("plain-streamed", ["--out-format", "ome-zarr"])):
        plain = _predict(packages["2d"], image, tmp_path / name, "--tile", TILE, "--plain-tiles", *extra)
        out = capsys.readouterr().out
        # each tile attends to itself only (the tiny package is still near its residual identity: a small change)
        assert _error(plain, whole) > max(1e-5, 100 * exact), name
        assert out.count(WARNING) == 1 and "drop --plain-tiles" in out, name
        assert "neighbouring tiles differ" not in out  # no seam figure that understates the change


def test_auto_modes_tiles_of_a_gvtnet_are_exact_and_mode_plain_is_not(packages: dict[str, Path], tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    image = _image(tmp_path / "img.tif")
    whole = _predict(packages["2d"], image, tmp_path / "whole", "--whole")
    monkeypatch.setattr(memory, "free_memory_bytes", lambda devices: 10**6)  # auto mode's whole limit: 312 voxels
    monkeypatch.setattr(halos, "DEFAULT_TILE", {"z": 64, "y": 96, "x": 96})  # auto's tiles: 20 on this image
    results, lines = {}, []
    for mode in ("auto", "plain"):
        summary = predict_files(packages["2d"], [image], tmp_path / mode, mode=mode, device="cpu", echo=lines.append)
        results[mode] = tifffile.imread(tmp_path / mode / image.name)
        assert (summary.weight_format == "pytorch_state_dict (global context)") == (mode == "auto")
    exact = _error(results["auto"], whole)
    assert exact <= 1e-5 and _error(results["plain"], whole) > max(1e-5, 100 * exact)
    assert sum(WARNING in line for line in lines) == 1  # mode plain's


def test_plain_tiles_of_one_tile_are_the_whole_image_and_say_nothing(packages: dict[str, Path], tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    image = _image(tmp_path / "img.tif")
    whole = _predict(packages["2d"], image, tmp_path / "whole", "--whole")
    capsys.readouterr()
    one = _predict(packages["2d"], image, tmp_path / "one", "--tile", "200,200", "--plain-tiles")
    assert _error(one, whole) <= 1e-5 and "warning" not in capsys.readouterr().out


@pytest.mark.parametrize("other", [["--whole"], ["--global-context"], ["--patches", "64,64"]])
def test_plain_tiles_with_another_mode_is_refused_in_one_line(packages: dict[str, Path], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str], other: list[str]) -> None:
    image = _image(tmp_path / "img.tif")
    assert main(["predict", str(packages["2d"]), str(image), "--out", str(tmp_path / "o"), "--plain-tiles", *other]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--plain-tiles" in err and other[0] in err and not (tmp_path / "o").exists()


def test_a_tile_of_at_least_the_images_size_leaves_the_axis_whole(packages: dict[str, Path], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    descr = read_description(packages["3d"])
    sizes, halo = {"z": 21, "y": 77, "x": 93}, package_halo(descr)  # z halo 24, step 4: a cut z tile needs 52
    for z in (21, 22, 40):
        plan = plan_tiles(descr, sizes, {"z": z, "y": 56, "x": 56}, halo)
        assert [(a.axis, a.tiled, a.tile) for a in plan.axes][0] == ("z", False, 24), z  # the padded 21, not 20
    image, _ = synthetic_pair("denoise", (21, 77, 93), np.random.default_rng(3))
    tifffile.imwrite(tmp_path / "stack.tif", image)
    whole = _predict(packages["3d"], tmp_path / "stack.tif", tmp_path / "whole", "--whole")
    capsys.readouterr()
    tiled = _predict(packages["3d"], tmp_path / "stack.tif", tmp_path / "tiles", "--tile", "21,96,96")
    assert _error(tiled, whole) <= 1e-5 and " 20 " not in capsys.readouterr().out


def test_a_z_tile_too_small_for_its_halos_on_a_thin_stack_says_to_leave_z_whole(
        packages: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    descr = read_description(packages["3d"])
    with pytest.raises(UserError) as refused:
        plan_tiles(descr, {"z": 21, "y": 77, "x": 93}, {"z": 16, "y": 56, "x": 56}, package_halo(descr))
    message = str(refused.value)
    assert "--tile 16 along z" in message and "leave z whole" in message and "at least 21 along z" in message
    assert "52" in message and "tiles of at least 52" not in message  # never a size the image cannot have
    # a deep enough stack: the smallest tile that leaves a core is named, as before
    with pytest.raises(UserError, match="use tiles of at least 52"):
        plan_tiles(descr, {"z": 80, "y": 77, "x": 93}, {"z": 16, "y": 56, "x": 56}, package_halo(descr))
    image, _ = synthetic_pair("denoise", (21, 64, 64), np.random.default_rng(3))
    tifffile.imwrite(tmp_path / "thin.tif", image)
    capsys.readouterr()
    assert main(["predict", str(packages["3d"]), str(tmp_path / "thin.tif"), "--out", str(tmp_path / "o"),
                 "--tile", "18,64,64"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--tile 18 along z" in err and "leave z whole" in err


def test_many_tiles_for_an_image_that_fits_whole_get_a_hint(packages: dict[str, Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    image = _image(tmp_path / "img.tif")
    second = _image(tmp_path / "img2.tif")
    assert main(["predict", str(packages["2d"]), str(image), str(second), "--out", str(tmp_path / "t"), "--device",
                 "cpu", "--tile", TILE]) == 0
    out = capsys.readouterr().out
    hints = [line for line in out.splitlines() if "--whole would be faster" in line]
    assert len(hints) == 1 and "20 tiles planned for 25,500 voxels" in hints[0]  # once per run
    assert "than global context over tiles" in hints[0]
    for flags in (["--whole"], ["--tile", "150,128"]):  # 2 tiles: no hint
        _predict(packages["2d"], image, tmp_path / flags[-1].replace(",", "-"), *flags)
        assert "--whole would be faster" not in capsys.readouterr().out


def _descr(spec_name: str, overrides: list[str], state_dict: bool = True) -> SimpleNamespace:
    """What tile_rule reads of a package: config.gvtnet_zoo.spec and the weights."""
    spec = load_spec(spec_name, overrides)
    return SimpleNamespace(config=SimpleNamespace(gvtnet_zoo={"spec": spec.model_dump(mode="json", exclude={"provenance"})}),
                           weights=SimpleNamespace(pytorch_state_dict=object() if state_dict else None))


@pytest.mark.parametrize("name, overrides", [
    ("demo-gvtnet-label-free-2d", ["model.base_channels=4"]),
    ("demo-gvtnet-care-denoise-3d", ["model.base_channels=4"]),
    ("gvtnet-care-denoise", ["model.base_channels=4", "model.bottom=[residual_block]"]),  # no GVTO at all
    ("gvtnet-care-denoise", ["model.base_channels=4", "model.bottom=[residual_block]", "model.down_sampling=gvto_v1"]),
    ("gvtnet-care-denoise", ["model.base_channels=4", "model.depth=1", "model.encoder_blocks=[1]",
                             "model.up_sampling=gvto_v2"]),  # depth 1: no resampling, the bottom GVTO only
    ("demo-gvtnet-projection", ["model.network.base_channels=4", "model.projection_channels=4"]),
    ("demo-unet-label-free-2d", []),
])
def test_the_rule_counts_the_gvtos_the_network_has_without_building_it(name: str, overrides: list[str]) -> None:
    built = sum(isinstance(m, GlobalAttention) for m in build_model(load_spec(name, overrides)).modules())
    rule = tile_rule(_descr(name, overrides))
    assert rule.gvtos == built and rule.gvtnet == (built > 0) and rule.exact == (built > 0)


def test_packages_global_context_cannot_run_for_get_plain_tiles_with_the_reason() -> None:
    assert not tile_rule(SimpleNamespace(config=None, weights=None)).gvtnet  # not made by gvtnet-zoo: a local network
    no_state = tile_rule(_descr("demo-gvtnet-label-free-2d", [], state_dict=False))
    assert no_state.gvtnet and not no_state.exact and "pytorch_state_dict" in (no_state.refusal or "")
    softmax = tile_rule(_descr("demo-gvtnet-label-free-2d", ["model.softmax_attention=true"]))
    assert softmax.gvtnet and not softmax.exact and "softmax" in (softmax.refusal or "")


def test_an_explicit_global_context_refuses_softmax_gvtos_whose_contexts_do_not_add_up() -> None:
    from gvtnet_zoo.predict.global_context import ContextNetwork

    with pytest.raises(UserError, match="softmax attention"):
        ContextNetwork.build(load_spec("demo-gvtnet-label-free-2d", ["model.base_channels=4", "model.softmax_attention=true"]))
