"""Residual blocks: pre-activation structure, shortcuts and shapes in 2D and 3D."""

from __future__ import annotations

import pytest
import torch

from gvtnet_zoo.nn import DownResidualBlock, ResidualBlock
from gvtnet_zoo.nn.layers import BN_EPS, BN_MOMENTUM, norm, transposed_conv


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_residual_block_identity_shortcut(spatial_dims: int) -> None:
    block = ResidualBlock(spatial_dims, 4, 4, use_norm=False).double()
    x = torch.randn(1, 4, *([6] * spatial_dims), dtype=torch.float64)
    main = block.conv2(torch.clamp(block.conv1(torch.clamp(x, 0, 6)), 0, 6))
    torch.testing.assert_close(block(x), x + main)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_residual_block_projects_the_preactivated_input_when_channels_change(spatial_dims: int) -> None:
    block = ResidualBlock(spatial_dims, 8, 4, use_norm=False).double()
    x = torch.randn(1, 8, *([6] * spatial_dims), dtype=torch.float64)
    a = torch.clamp(x, 0, 6)
    expected = block.shortcut(a) + block.conv2(torch.clamp(block.conv1(a), 0, 6))
    torch.testing.assert_close(block(x), expected)
    assert block.shortcut.bias is None and block.shortcut.kernel_size == (1,) * spatial_dims


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_down_residual_block_halves_every_axis(spatial_dims: int) -> None:
    block = DownResidualBlock(spatial_dims, 4, 8, use_norm=True)
    out = block(torch.randn(2, 4, *([8] * spatial_dims)))
    assert out.shape == (2, 8, *([4] * spatial_dims))


def test_batch_norm_uses_the_original_tf_settings() -> None:
    bn = norm(3, 8, enabled=True)
    assert bn.momentum == BN_MOMENTUM == pytest.approx(1 - 0.997)
    assert bn.eps == BN_EPS == 1e-5
    assert isinstance(norm(3, 8, enabled=False), torch.nn.Identity)


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_transposed_conv_doubles_exactly(kernel_size: int) -> None:
    up = transposed_conv(3, 4, 2, kernel_size)
    assert up(torch.randn(1, 4, 3, 5, 7)).shape == (1, 2, 6, 10, 14)
