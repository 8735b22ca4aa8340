"""The GVTOs' residual rules and shapes, 2D and 3D."""

from __future__ import annotations

import pytest
import torch

from gvtnet_zoo.nn import ResamplingGVTO, SameGVTO


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("use_norm", [False, True])
def test_same_gvto_adds_attention_of_the_preactivated_input(spatial_dims: int, use_norm: bool) -> None:
    gvto = SameGVTO(spatial_dims, 8, 2, use_norm).double().eval()
    x = torch.randn(2, 8, *([4] * spatial_dims), dtype=torch.float64)
    expected = x + gvto.attention(torch.clamp(gvto.pre[0](x), 0, 6))[0]
    torch.testing.assert_close(gvto(x), expected)


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("direction, factor", [("down", 0.5), ("up", 2.0)])
@pytest.mark.parametrize("version", [1, 2])
def test_resampling_gvto_residuals_and_shapes(spatial_dims: int, direction: str, factor: float, version: int) -> None:
    gvto = ResamplingGVTO(spatial_dims, 8, 4, 2, False, direction, version).double()
    x = torch.randn(1, 8, *([4] * spatial_dims), dtype=torch.float64)
    a = torch.clamp(x, 0, 6)
    attention, query = gvto.attention(a)
    residual = query if version == 2 else gvto.shortcut(a)
    out = gvto(x)
    assert out.shape == (1, 4, *([int(4 * factor)] * spatial_dims))
    torch.testing.assert_close(out, residual + attention)
    if version == 1:
        assert gvto.shortcut.bias is None  # v1's shortcut is a bias-free (transposed) conv
        assert sum(p.numel() for p in gvto.shortcut.parameters()) == 8 * 4 * 3**spatial_dims


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_up4_gvto_upsamples_y_and_x_only_with_a_parameter_free_query(spatial_dims: int) -> None:
    gvto = ResamplingGVTO(spatial_dims, 8, 8, 2, False, "up4", 2).double()
    x = torch.randn(1, 8, *([3] * spatial_dims), dtype=torch.float64)
    out = gvto(x)
    assert out.shape == (1, 8, *([3] * (spatial_dims - 2)), 12, 12)
    # parameters: K, V and output 1x1 convolutions with bias, nothing for the query
    assert sum(p.numel() for p in gvto.parameters()) == 3 * (8 * 8 + 8)
    query = gvto.attention.query(torch.clamp(x, 0, 6))
    torch.testing.assert_close(query[..., ::4, ::4], torch.clamp(x, 0, 6))


def test_up4_requires_version_2() -> None:
    with pytest.raises(ValueError, match="version 2"):
        ResamplingGVTO(3, 8, 8, 2, False, "up4", 1)
