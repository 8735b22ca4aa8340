"""predict --memory: tiles sized from a memory budget (predict/budget.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gvtnet_zoo.cli import main
from gvtnet_zoo.errors import UserError
from gvtnet_zoo.predict.budget import budget_plan, context_plan, parse_memory, tile_for_budget
from gvtnet_zoo.predict.global_context import ContextNetwork
from gvtnet_zoo.spec_loading import load_spec

SIZES, HALO, STEP = {"z": 64, "y": 288, "x": 288}, {"z": 24, "y": 24, "x": 24}, {"z": 4, "y": 4, "x": 4}


@pytest.mark.parametrize("text, size", [("1.5GiB", 3 * 2**29), ("800MiB", 800 * 2**20), ("4G", 4 * 10**9),
                                        ("2000000", 2_000_000), (" 0.5 gib ", 2**29)])
def test_sizes_parse_with_binary_and_decimal_units(text: str, size: int) -> None:
    assert parse_memory(text) == size


@pytest.mark.parametrize("text", ["lots", "1.5 GB extra", "-2G", "0", "3 parsecs", ""])
def test_a_malformed_size_is_one_line(text: str) -> None:
    with pytest.raises(UserError, match="--memory expects a size like") as error:
        parse_memory(text)
    assert "\n" not in str(error.value)


def test_a_larger_budget_gives_a_larger_tile_and_tiles_cut_the_longest_axis_evenly() -> None:
    per_voxel, resident = 1500.0, 300 * 2**20
    tiles = [tile_for_budget(gib * 2**30, resident, per_voxel, SIZES, HALO, STEP) for gib in (1, 2, 4, 16)]
    voxels = [math.prod(t.values()) for t in tiles]
    assert voxels == sorted(voxels) and len(set(voxels)) == 4
    assert tiles[-1] == SIZES  # the whole image fits: one tile, no halo
    for tile, gib in zip(tiles, (1, 2, 4, 16)):
        assert resident + per_voxel * math.prod(tile.values()) <= gib * 2**30
        assert tile["z"] == 64  # z, the short axis, is cut last
        for axis in "yx":  # cores of equal length on the grid: no tile computes mostly another's core
            core = tile[axis] - 2 * HALO[axis]
            assert tile[axis] == 288 or (core % 4 == 0 and math.ceil(288 / core) * core - 288 < core)


def test_a_budget_below_one_minimal_tile_is_refused_in_one_line() -> None:
    with pytest.raises(UserError, match="--memory .* less than the smallest tile needs") as error:
        tile_for_budget(400 * 2**20, 300 * 2**20, 1500.0, SIZES, HALO, STEP)
    assert "\n" not in str(error.value) and "52x52x52" in str(error.value)
    with pytest.raises(UserError, match="less than this process already holds"):
        budget_plan(100 * 2**20, 1500.0, SIZES, HALO, STEP, resident=300 * 2**20)


def test_global_context_shares_the_budget_between_its_tile_and_kept_pass_states() -> None:
    context = ContextNetwork.build(load_spec("gvtnet-care-denoise", ["model.base_channels=4"]))
    budget, resident = 2**30, 300 * 2**20
    plain, _ = context_plan(context, budget, (64, 288, 288), global_context=False, resident=resident)
    exact, keep = context_plan(context, budget, (64, 288, 288), global_context=True, resident=resident)
    assert math.prod(exact.values()) < math.prod(plain.values())
    assert keep >= (budget - resident) // 2
    # projection models keep z whole, whatever the budget
    projection = ContextNetwork.build(load_spec("demo-gvtnet-projection", ["model.network.base_channels=4",
                                                                         "model.projection_channels=4"]))
    tile, _ = context_plan(projection, 600 * 2**20, (8, 1024, 1024), resident=resident)
    assert tile["z"] == 8 and tile["y"] < 1024


@pytest.mark.parametrize("flags, message", [(["--memory", "lots"], "--memory expects a size like"),
                                            (["--memory", "1GiB", "--whole"], "--memory sizes tiles; --whole")])
def test_the_command_line_refuses_a_bad_memory_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           flags: list[str], message: str) -> None:
    assert main(["predict", str(tmp_path / "model.zip"), str(tmp_path / "in.tif"), "--out", str(tmp_path / "out"),
                 *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_global_context_gives_its_tile_all_of_the_budget_when_the_states_would_not_fit_anyway() -> None:
    budget, resident, per_voxel = 2 * 2**30, 300 * 2**20, 1500.0
    plain, _ = budget_plan(budget, per_voxel, SIZES, HALO, STEP, resident=resident)
    small_states, keep = budget_plan(budget, per_voxel, SIZES, HALO, STEP, global_context=True, resident=resident,
                                     state_per_voxel=1.0)
    assert math.prod(small_states.values()) < math.prod(plain.values()) and keep > (budget - resident) // 3
    large_states, _ = budget_plan(budget, per_voxel, SIZES, HALO, STEP, global_context=True, resident=resident,
                                  state_per_voxel=168.0)
    assert large_states == plain


@pytest.mark.parametrize("version", ["v1", "v2", "none", "unlimited"])
def test_a_memory_cgroups_limit_caps_the_free_memory(tmp_path: Path, version: str) -> None:
    from gvtnet_zoo.predict.memory import cgroup_memory_left

    proc = tmp_path / "cgroup"
    root = tmp_path / "sys"
    if version == "v2":
        proc.write_text("0::/job/42\n")
        (root / "job" / "42").mkdir(parents=True)
        (root / "job" / "42" / "memory.max").write_text("3000000000\n")
        (root / "job" / "42" / "memory.current").write_text("1000000000\n")
    else:
        proc.write_text("9:name=systemd:/\n4:memory:/docker/abc\n0::/\n")
        folder = root / "memory" / "docker" / "abc"
        folder.mkdir(parents=True)
        limit = {"v1": "2000000000", "unlimited": str(2**63 - 4096), "none": ""}[version]
        if limit:
            (folder / "memory.limit_in_bytes").write_text(limit + "\n")
        (folder / "memory.usage_in_bytes").write_text("500000000\n")
    expected = {"v1": 1_500_000_000, "v2": 2_000_000_000, "none": None, "unlimited": None}[version]
    assert cgroup_memory_left(proc, root) == expected
