"""The paper's models are exact to the published parameter counts (DESIGN.md §4)."""

from __future__ import annotations

import pytest

from gvtnet_zoo import build_model, count_parameters, load_spec
from gvtnet_zoo.config import GVTNetConfig, Spec

# Literal numbers on purpose: they come from the paper, not from our own reference table.
EXPECTED = {
    "gvtnet-label-free": 6_172_225,
    "gvtnet-care-denoise": 1_347_360,
    "gvtnet-flywing-projection": 538_873,
    "unet-fnet-label-free": 23_280_769,
    "unet-care-denoise": 996_802,
}


@pytest.mark.parametrize("name, expected", EXPECTED.items())
def test_paper_parameter_counts(name: str, expected: int) -> None:
    assert count_parameters(build_model(load_spec(name))) == expected


def test_counts_without_the_scale_heads() -> None:
    assert count_parameters(build_model(load_spec("gvtnet-care-denoise", ["model.sigma_head=false", "train.loss=mae"]))) == 1_347_328
    assert count_parameters(build_model(load_spec("unet-care-denoise", ["model.sigma_head=false", "train.loss=mae"]))) == 996_769


def test_flywing_parts() -> None:
    model = build_model(load_spec("gvtnet-flywing-projection"))
    assert count_parameters(model.projection) == 21_561
    assert count_parameters(model.network) == 517_312


def test_defaults_are_the_label_free_gvtnet() -> None:
    spec = Spec(name="defaults")
    assert isinstance(spec.model, GVTNetConfig)
    assert count_parameters(build_model(spec)) == 6_172_225
    assert spec.train.lr == 1e-3 and spec.train.betas == (0.5, 0.999) and spec.train.loss == "mse"
    assert spec.data.patch_size == [32, 64, 64] and spec.data.batch_size == 16


def test_state_dict_keys_say_where_weights_live() -> None:
    keys = build_model(load_spec("gvtnet-care-denoise")).state_dict().keys()
    assert "encoder.1.down.weight" in keys
    assert "bottom.0.attention.key.weight" in keys
    assert "decoder.0.up.attention.query.weight" in keys
    assert "decoder.1.blocks.0.shortcut.weight" in keys
