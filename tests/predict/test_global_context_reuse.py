"""Global context's passes resume where the tile's last pass stopped, and stay equal to the whole forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gvtnet_zoo.predict.global_context import ContextNetwork
from gvtnet_zoo.spec_loading import load_spec

# tiny networks with GVTOs (and the tile's core in network steps) at the bottom and as up-sampling (and, in 3D, down-sampling) operators
SPECS = {
    "2d": ("demo-gvtnet-label-free-2d", ["model.base_channels=4", "model.bottom=[gvto]", "model.up_sampling=gvto_v2",
                                         "model.batch_norm=false"], (1, 1, 152, 168), 8),
    "3d": ("gvtnet-care-denoise", ["model.base_channels=4", "model.depth=2", "model.down_sampling=gvto_v1",
                                   "model.up_sampling=gvto_v2", "model.encoder_blocks=[1,1]"], (1, 1, 12, 60, 68), 8),
    "projection": ("demo-gvtnet-projection", ["model.network.base_channels=4", "model.projection_channels=4"],
                   (1, 1, 4, 256, 224), 2),
}


def _first_module(context: ContextNetwork) -> torch.nn.Module:
    """The module every pass from the input runs first (the projection net's first conv, or the stem)."""
    network = context.network
    return network.projection.encoder[0] if hasattr(network, "projection") else network.stem


def _run(key: str, keep_bytes: int | None) -> tuple[ContextNetwork, np.ndarray, np.ndarray, int, int]:
    name, overrides, shape, core = SPECS[key]
    context = ContextNetwork.build(load_spec(name, overrides))
    context.keep_bytes = keep_bytes
    image = np.random.default_rng(3).normal(size=shape).astype(np.float32)
    image *= np.linspace(0.1, 4.0, shape[-2], dtype=np.float32)[:, None]  # not stationary along y, which is cut
    with torch.no_grad():
        whole = context.network(torch.from_numpy(image)).numpy()
    calls = []
    handle = _first_module(context).register_forward_hook(lambda *_: calls.append(1))
    step = context.spec.model.size_step()[-1]
    length = 2 * context.halo[-1] + core * step  # several tiles along y (and x)
    tiled = context.predict(image, {"y": length, "x": length}, by_levels=False)
    handle.remove()
    tiles = len(calls) // (len(context.attentions) + 1) if keep_bytes == 0 else len(calls)
    return context, tiled, whole, len(calls), tiles


@pytest.mark.parametrize("key", sorted(SPECS))
def test_passes_resume_and_equal_the_whole_forward(key: str) -> None:
    context, tiled, whole, first_calls, tiles = _run(key, None)
    np.testing.assert_allclose(tiled, whole, atol=1e-5 * np.ptp(whole), rtol=0)
    _, plain, plain_whole, all_calls, _ = _run(key, 0)  # nothing may be kept: every pass runs from the input
    np.testing.assert_allclose(plain, plain_whole, atol=1e-5 * np.ptp(plain_whole), rtol=0)
    assert tiles > 2 and len(context.attentions) >= 2
    # kept: the first module runs once per tile, not once per pass
    assert first_calls == tiles and all_calls == tiles * (len(context.attentions) + 1)
    assert context.store is not None and context.store.used == 0  # nothing is left kept after the prediction


def test_states_beyond_the_budget_are_recomputed_with_the_same_result() -> None:
    name, overrides, shape, _ = SPECS["3d"]
    context = ContextNetwork.build(load_spec(name, overrides))
    image = np.random.default_rng(4).normal(size=shape).astype(np.float32)
    with torch.no_grad():
        whole = context.network(torch.from_numpy(image)).numpy()
    length = 2 * context.halo[-1] + 8
    context.keep_bytes = None
    context.predict(image, {"y": length, "x": length}, by_levels=False)
    assert context.store is not None and context.store.dropped == 0
    context.keep_bytes, context.store = 600_000, None  # about one tile's state: the rest start from the input
    tiled = context.predict(image, {"y": length, "x": length}, by_levels=False)
    assert context.store.dropped > 0
    np.testing.assert_allclose(tiled, whole, atol=1e-5 * np.ptp(whole), rtol=0)


def test_a_stale_state_of_an_earlier_series_is_never_resumed() -> None:
    """Streamed keys are reused per time point: a tile's first collecting pass drops what its key kept."""
    name, overrides, *_ = SPECS["2d"]
    context = ContextNetwork.build(load_spec(name, overrides))
    rng = np.random.default_rng(5)
    first, second = (rng.normal(size=(1, 1, 64, 64)).astype(np.float32) for _ in range(2))
    core = [(0, 64, 64), (0, 64, 64)]
    context.collect_tile(first, core, 0, [], key="tile")
    assert "tile" in context.store.resume
    parts = context.collect_tile(second, core, 0, [], key="tile")
    assert np.allclose(parts.kv, context.collect_tile(second, core, 0, []).kv, rtol=0, atol=0)


@pytest.mark.parametrize("seed", range(6))
def test_kept_dropped_and_partly_kept_states_equal_the_whole_forward_over_generated_cases(seed: int) -> None:
    """Over seeded image sizes (steps off any tile multiple), tile lengths and budgets (all kept, none, part), 2D
    and 3D: the tiled global-context result equals the whole forward."""
    rng = np.random.default_rng(100 + seed)
    key = "2d" if seed % 2 == 0 else "3d"
    name, overrides, shape, _ = SPECS[key]
    context = ContextNetwork.build(load_spec(name, overrides))
    step = context.spec.model.size_step()
    sizes = [s * int(rng.integers(max(1, n // s // 3), n // s + 1)) for n, s in zip(shape[2:], step)]
    image = rng.normal(size=(1, 1, *sizes)).astype(np.float32) * rng.uniform(0.1, 5.0)
    with torch.no_grad():
        whole = context.network(torch.from_numpy(image)).numpy()
    tile = {a: 2 * h + s * int(rng.integers(1, 4)) for a, h, s in zip("zyx"[3 - len(sizes):], context.halo, step)}
    context.keep_bytes = [None, 0, int(rng.integers(100_000, 2_000_000))][seed % 3]
    tiled = context.predict(image, {a: n for a, n in tile.items() if a != "z"}, by_levels=False)
    np.testing.assert_allclose(tiled, whole, atol=1e-5 * np.ptp(whole), rtol=0)
