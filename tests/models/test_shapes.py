"""Every shipped spec builds and keeps the spatial size; invalid sizes fail early and clearly."""

from __future__ import annotations

import pytest
import torch

from gvtnet_zoo import build_model, load_spec
from gvtnet_zoo.config import GVTNetConfig
from gvtnet_zoo.export import script_model
from gvtnet_zoo.models import GVTNet

from ..conftest import ALL_SPECS, valid_input


@pytest.mark.parametrize("name", ALL_SPECS)
@pytest.mark.parametrize("multiples", [(1, 1, 2), (2, 3, 1)])
def test_forward_keeps_the_spatial_size(name: str, multiples: tuple[int, ...]) -> None:
    spec = load_spec(name)
    model = build_model(spec).eval()
    x = valid_input(name, multiples[3 - spec.model.input_dims:], batch=2)
    with torch.no_grad():
        y = model(x)
    if spec.model.architecture == "gvtnet_projection":
        assert y.shape == (2, 1, *x.shape[3:])  # z is projected away
    else:
        assert y.shape == (2, 1, *x.shape[2:])
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", ["gvtnet-care-denoise", "unet-care-denoise"])
def test_scale_head_gives_positive_scale_for_training(name: str) -> None:
    model = build_model(load_spec(name))
    x = valid_input(name, (1, 1, 1))
    mean, scale = model.forward_with_scale(x)
    assert mean.shape == scale.shape == x.shape
    assert (scale >= 1e-3).all()
    torch.testing.assert_close(mean, model(x))


def test_forward_with_scale_without_a_scale_head_says_how_to_get_one() -> None:
    model = build_model(load_spec("gvtnet-label-free"))
    with pytest.raises(RuntimeError, match="sigma_head: true"):
        model.forward_with_scale(torch.zeros(1, 1, 8, 8, 8))


def test_invalid_size_raises_before_any_convolution() -> None:
    model = GVTNet(GVTNetConfig(depth=4, base_channels=4))
    calls = []
    model.stem.register_forward_pre_hook(lambda *_: calls.append(1))
    with pytest.raises(ValueError) as err:
        model(torch.zeros(1, 1, 12, 16, 17))
    message = str(err.value)
    assert "[12, 16, 17]" in message and "multiple of [8, 8, 8]" in message
    assert "[8, 16, 16] or [16, 16, 24]" in message
    assert calls == []


def test_invalid_size_is_refused_by_the_scripted_model_too() -> None:
    scripted = script_model(build_model(load_spec("demo-gvtnet-projection")))
    with pytest.raises(Exception, match="nearest valid sizes"):
        scripted(torch.zeros(1, 1, 3, 60, 64))


def test_wrong_number_of_axes_is_named() -> None:
    model = build_model(load_spec("demo-gvtnet-label-free-2d"))
    with pytest.raises(ValueError, match="2 spatial axes"):
        model(torch.zeros(1, 1, 4, 16, 16))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_two_and_three_dimensions_share_one_code_path(spatial_dims: int) -> None:
    cfg = GVTNetConfig(spatial_dims=spatial_dims, depth=2, base_channels=4, encoder_blocks=[1, 1],
                       up_sampling="gvto_v1", down_sampling="gvto_v2", heads=2)
    model = GVTNet(cfg)
    names = [type(m).__name__ for m in model.modules()]
    assert names.count("ResamplingGVTO") == 2 and names.count("SameGVTO") == 1
    assert model(torch.randn(1, 1, *([4] * spatial_dims))).shape == (1, 1, *([4] * spatial_dims))
