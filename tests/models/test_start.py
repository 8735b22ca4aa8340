"""Each network starts as its original: GVTNets and CSBDeep's CARE as tf.layers / Keras (Glorot-uniform kernels,
zero biases, batch norm 1 / 0), the fnet U-Net as pytorch_fnet's _weights_init; CARE's scale reads the features
before the head's activation, as the original's ``penult``."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gvtnet_zoo.models import build_model
from gvtnet_zoo.spec_loading import load_spec

CONVS = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _glorot_std(weight: torch.Tensor) -> float:
    receptive = weight[0, 0].numel()
    return math.sqrt(2.0 / ((weight.shape[0] + weight.shape[1]) * receptive))


@pytest.mark.parametrize("spec", ["gvtnet-label-free", "gvtnet-care-denoise", "gvtnet-flywing-projection",
                                  "unet-care-denoise"])
def test_glorot_kernels_zero_biases_and_unit_norms(spec: str) -> None:
    torch.manual_seed(0)
    model = build_model(load_spec(spec))
    checked = 0
    for name, module in model.named_modules():
        if isinstance(module, CONVS):
            if module.weight.numel() >= 4096:  # enough values for the spread to be the distribution's
                ratio = float(module.weight.detach().std()) / _glorot_std(module.weight)
                assert 0.9 < ratio < 1.1, (name, ratio)
                checked += 1
            assert module.bias is None or not module.bias.any(), name
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            assert bool((module.weight == 1).all() and not module.bias.any()), name
    assert checked >= 5


def test_the_fnet_unet_starts_as_pytorch_fnet() -> None:
    torch.manual_seed(0)
    model = build_model(load_spec("unet-fnet-label-free"))
    for name, module in model.named_modules():
        if isinstance(module, CONVS) and module.weight.numel() >= 4096:
            assert abs(float(module.weight.detach().std()) - 0.02) < 0.002, name
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            w = module.weight.detach()
            assert abs(float(w.mean()) - 1.0) < 0.01 and 0.01 < float(w.std()) < 0.03, name
            assert not module.bias.any(), name


def test_the_scale_head_reads_the_features_before_the_heads_activation() -> None:
    torch.manual_seed(0)
    model = build_model(load_spec("gvtnet-care-denoise", ["model.base_channels=8"])).eval()
    x = torch.randn(1, 1, 8, 16, 16) * 20
    with torch.no_grad():
        features = model.features(x)
        mean, scale = model.forward_with_scale(x)
    assert features.min() < 0 or features.max() > 6  # not ReLU6 output: the head's activation comes after
    expected = nn.functional.softplus(model.sigma_head(features)) + 1e-3
    torch.testing.assert_close(scale, expected)
    torch.testing.assert_close(mean, x + model.head(nn.functional.relu6(features)))
