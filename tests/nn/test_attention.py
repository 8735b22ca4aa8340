"""The linear global attention equals the explicit per-head formula and never builds N x N."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest
import torch

from gvtnet_zoo.nn import GlobalAttention

SPATIAL_SIZE = {2: (6, 4), 3: (4, 6, 2)}


def _explicit(att: GlobalAttention, x: torch.Tensor, softmax: bool) -> torch.Tensor:
    """Per head, per sample: A = Q K^T / sqrt(d) (N_q x N_k), O = A V / N_q (or softmax(A) V)."""
    q, k, v = att.query(x), att.key(x), att.value(x)
    heads, d = att.heads, att.head_channels
    samples = []
    for b in range(x.shape[0]):
        per_head = []
        for h in range(heads):
            group = slice(h * d, (h + 1) * d)
            qh = q[b, group].reshape(d, -1).T
            kh = k[b, group].reshape(d, -1).T
            vh = v[b, group].reshape(d, -1).T
            scores = qh @ kh.T / math.sqrt(d)
            oh = torch.softmax(scores, dim=-1) @ vh if softmax else scores @ vh / qh.shape[0]
            per_head.append(oh.T.reshape(d, *q.shape[2:]))
        samples.append(torch.cat(per_head))
    return att.output(torch.stack(samples))


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("heads", [1, 2])
@pytest.mark.parametrize("mode", ["same", "down", "up", "up4"])
def test_linear_attention_equals_explicit_formula(spatial_dims: int, heads: int, mode: str) -> None:
    in_channels = 4 if mode == "up4" else 6
    att = GlobalAttention(spatial_dims, in_channels, 4, heads, mode).double()
    x = torch.randn(2, in_channels, *SPATIAL_SIZE[spatial_dims], dtype=torch.float64)
    out, query = att(x)
    expected = _explicit(att, x, softmax=False)
    scale = {"same": 1, "down": 0.5, "up": 2}.get(mode)
    expected_size = [int(s * scale) for s in x.shape[2:]] if scale else [*x.shape[2:-2], 4 * x.shape[-2], 4 * x.shape[-1]]
    assert list(out.shape[2:]) == expected_size
    assert query.shape == out.shape
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_softmax_option_equals_explicit_softmax(spatial_dims: int) -> None:
    att = GlobalAttention(spatial_dims, 4, 4, 2, "same", softmax=True).double()
    x = torch.randn(1, 4, *SPATIAL_SIZE[spatial_dims], dtype=torch.float64)
    torch.testing.assert_close(att(x)[0], _explicit(att, x, softmax=True), rtol=1e-10, atol=1e-10)


def test_heads_are_contiguous_channel_groups() -> None:
    """Head h owns channels [h*d, (h+1)*d): a context that is zero for head 1 zeroes exactly channels 2-3."""
    att = GlobalAttention(2, 4, 4, 2, "same").double()
    q = torch.randn(1, 4, 5, 5, dtype=torch.float64)
    context = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
    context[:, 0] = torch.eye(2)
    att.output = torch.nn.Identity()
    out = att.attend(q, context, q[0, 0].numel())
    assert torch.count_nonzero(out[:, 2:]) == 0
    torch.testing.assert_close(out[:, :2], q[:, :2] / math.sqrt(2) / 25)


def test_memory_is_linear_in_the_number_of_voxels() -> None:
    """1M voxels: an N x N attention matrix would need 4 TB; the linear form stays within a few hundred MB."""
    script = textwrap.dedent(
        """
        import resource, torch
        from gvtnet_zoo.nn import GlobalAttention
        torch.set_num_threads(2)
        att = GlobalAttention(3, 16, 16, 2, "same").eval()
        x = torch.randn(1, 16, 64, 128, 128)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with torch.no_grad():
            out, _ = att(x)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) * 1024, tuple(out.shape))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    extra_bytes, shape = result.stdout.split(" ", 1)
    assert shape.strip() == "(1, 16, 64, 128, 128)"
    tensor_bytes = 16 * 64 * 128 * 128 * 4
    assert int(extra_bytes) < 8 * tensor_bytes  # q, k, v, scaled q, output and the conv temporaries


def test_a_collected_context_applied_equals_the_plain_forward() -> None:
    """The explicit context: collected over two halves of the input, then applied, it gives the whole forward."""
    from gvtnet_zoo.nn.attention import AttentionContext, ContextCollected

    torch.manual_seed(0)
    attention = GlobalAttention(3, 8, 8, heads=2, query="same").eval()
    x = torch.randn(1, 8, 4, 6, 8)
    with torch.no_grad():
        expected, expected_query = attention(x)
        context = AttentionContext(query_ratio=1.0)
        context.collecting = True
        attention.context = context
        for start, end in ((0, 4), (4, 8)):  # two cores along x, in a tile that is the whole input
            context.core = [(0, 4, 4), (0, 6, 6), (start, end, 8)]
            with pytest.raises(ContextCollected):
                attention(x)
        context.collecting = False
        output, query = attention(x[..., :4])  # a tile sees only its half, yet attends with the whole context
        attention.context = None
    assert context.query_count == x[0, 0].numel()
    torch.testing.assert_close(query, expected_query[..., :4])
    torch.testing.assert_close(output, expected[..., :4], rtol=1e-5, atol=1e-6)
    assert "forward" not in attention.__dict__  # nothing is patched onto the instance
