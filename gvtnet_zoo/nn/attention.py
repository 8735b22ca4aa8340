"""Multi-head global attention of the GVTOs, linear by default.

Per head h with d = C_out / heads channels and N_q query voxels:

    O_h = (Q_h / sqrt(d)) (K_h^T V_h) / N_q

K^T V (d x d) is formed first, so time is O(N d^2) and memory O(N d): no N x N matrix exists.
The only global state is, per head, that d x d matrix and the count N_q, which is what makes
exact whole-image inference from tiles possible.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from .layers import conv, nearest_upsample_yx, transposed_conv

QueryMode = Literal["same", "down", "up", "up4"]


def _query_transform(spatial_dims: int, in_channels: int, out_channels: int, mode: str) -> nn.Module:
    if mode == "same":
        return conv(spatial_dims, in_channels, out_channels, 1, bias=True)
    if mode == "down":
        return conv(spatial_dims, in_channels, out_channels, 3, stride=2, bias=True)
    if mode == "up":
        return transposed_conv(spatial_dims, in_channels, out_channels, 3, bias=True)
    if mode == "up4":
        if in_channels != out_channels:
            raise ValueError("the up4 query is parameter-free, so it needs in_channels == out_channels")
        return nearest_upsample_yx(spatial_dims, 4)
    raise ValueError(f"query mode must be one of same, down, up, up4; got {mode!r}")


class GlobalAttention(nn.Module):
    """Multi-head global attention: (B, C_in, *S) -> ((B, C_out, *S_q), query (B, C_out, *S_q)).

    S_q is S for "same", S/2 for "down", 2S for "up" and (…, 4Y, 4X) for "up4". Q comes from the
    query transform, K and V from 1x1 convolutions of the same input; all transforms have bias.
    ``softmax=True`` gives the original's optional softmax attention (O(N^2) memory; not used by
    the paper's models).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        heads: int,
        query: QueryMode = "same",
        softmax: bool = False,
    ) -> None:
        super().__init__()
        if out_channels % heads != 0:
            raise ValueError(f"{out_channels} channels cannot be split into {heads} heads")
        self.heads = heads
        self.head_channels = out_channels // heads
        self.softmax = softmax
        self.query = _query_transform(spatial_dims, in_channels, out_channels, query)
        self.key = conv(spatial_dims, in_channels, out_channels, 1, bias=True)
        self.value = conv(spatial_dims, in_channels, out_channels, 1, bias=True)
        self.output = conv(spatial_dims, out_channels, out_channels, 1, bias=True)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *S) -> (B, heads, d, N)."""
        return x.reshape(x.shape[0], self.heads, self.head_channels, -1)

    def key_value_context(self, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Sum over voxels of k v^T per head: (B, C, *S) twice -> (B, heads, d, d)."""
        return torch.matmul(self._split_heads(k), self._split_heads(v).transpose(-1, -2))

    def attend(self, q: torch.Tensor, context: torch.Tensor, query_count: int) -> torch.Tensor:
        """Linear attention of queries (B, C, *S_q) on a context (B, heads, d, d) -> (B, C, *S_q).

        ``query_count`` is N_q, the number of query voxels the context is normalized by.
        """
        # both scalars go into the d x d context, not into query-sized tensors: no extra full-size passes
        weights = context.transpose(-1, -2) * (1.0 / (math.sqrt(self.head_channels) * query_count))
        out = torch.matmul(weights, self._split_heads(q))
        return self.output(out.reshape(q.shape))

    def _softmax_attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        qh = self._split_heads(q) * (1.0 / math.sqrt(self.head_channels))
        weights = torch.softmax(torch.matmul(qh.transpose(-1, -2), self._split_heads(k)), dim=-1)
        out = torch.matmul(self._split_heads(v), weights.transpose(-1, -2))
        return self.output(out.reshape(q.shape))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.query(x)
        k = self.key(x)
        v = self.value(x)
        if self.softmax:
            return self._softmax_attend(q, k, v), q
        query_count = q[0, 0].numel()
        return self.attend(q, self.key_value_context(k, v), query_count), q
