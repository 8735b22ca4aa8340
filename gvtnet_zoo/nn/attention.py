"""Multi-head global attention of the GVTOs, linear by default.

Per head h with d = C_out / heads channels and N_q query voxels:

    O_h = (Q_h / sqrt(d)) (K_h^T V_h) / N_q

K^T V (d x d) is formed first, so time is O(N d^2) and memory O(N d): no N x N matrix exists.
The only global state is, per head, that d x d matrix and the count N_q, which is what makes
exact whole-image inference from tiles possible. An ``AttentionContext`` set on the attention makes
that state explicit: training and whole-image prediction leave it unset (each input is its own
context); global-context inference (predict/global_context.py) first collects it over tiles, then
applies it to every tile.
"""

from __future__ import annotations

import math
from typing import Literal, Optional

import torch
from torch import nn

from .layers import conv, nearest_upsample_yx, transposed_conv

QueryMode = Literal["same", "down", "up", "up4"]


class ContextCollected(Exception):
    """Raised by a collecting attention once it has added its tile's keys and values.

    Nothing after the collecting GVTO is needed for the context, so the pass ends there: the
    collecting passes of global-context inference are shorter than full forwards.
    """


class AttentionContext:
    """One attention's global state across tiles: per head K^T V summed over voxels, and the query count.

    ``collecting``: a forward adds the keys and values of the tile's ``core`` (per input space axis of
    the network: core start, core end, tile length, in input voxels) and ends the pass with
    ContextCollected. Otherwise a forward attends with ``kv`` and ``query_count`` instead of its own.
    (A plain class, not a dataclass: this module is also part of the packages' standalone network file.)
    """

    def __init__(self, query_ratio: float) -> None:
        self.query_ratio = query_ratio  # query voxels per input voxel: 1 (same), 1/2^d (down), 2^d (up), ...
        self.collecting = False
        self.kv: Optional[torch.Tensor] = None  # (B, heads, d, d)
        self.query_count = 0.0
        self.core: list[tuple[int, int, int]] = []


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
        self.context: Optional[AttentionContext] = None  # unset: each input is its own context

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

    @torch.jit.unused
    def _collect(self, x: torch.Tensor, context: AttentionContext) -> None:
        """Add the core region's K^T V and query count to ``context``; ends the pass (ContextCollected)."""
        region = [slice(None), slice(None)]
        sizes = x.shape[2:]
        # a 2D attention after a 3D-to-2D projection sees the last axes of the input
        for size, (start, end, length) in zip(sizes, context.core[len(context.core) - len(sizes):]):
            factor = length // size
            if factor * size != length or start % factor or end % factor:
                raise RuntimeError("a tile core is off the network's down-sampling grid")
            region.append(slice(start // factor, end // factor))
        k, v = self.key(x)[tuple(region)], self.value(x)[tuple(region)]
        kv = self.key_value_context(k, v)
        context.kv = kv if context.kv is None else context.kv + kv
        context.query_count += k[0, 0].numel() * context.query_ratio
        raise ContextCollected

    @torch.jit.unused
    def _attend_in_context(self, x: torch.Tensor, context: AttentionContext) -> tuple[torch.Tensor, torch.Tensor]:
        if context.collecting:
            self._collect(x, context)
        if context.kv is None:
            raise RuntimeError("the attention's context was never collected")
        q = self.query(x)
        # the summed context is float64 on the CPU (so any order of summing gives the same float32 here)
        return self.attend(q, context.kv.to(device=q.device, dtype=q.dtype), round(context.query_count)), q

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not torch.jit.is_scripting() and self.context is not None:
            return self._attend_in_context(x, self.context)
        q = self.query(x)
        k = self.key(x)
        v = self.value(x)
        if self.softmax:
            return self._softmax_attend(q, k, v), q
        query_count = q[0, 0].numel()
        return self.attend(q, self.key_value_context(k, v), query_count), q
