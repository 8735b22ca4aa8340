"""The peak of live tensor bytes during a piece of PyTorch code, counted op by op (any device, no allocator stats).

Every tensor an operation returns is counted once per storage until the storage is freed (a weakref finalizer), so
the peak is what the code's own tensors hold at once; views and in-place results add nothing. On the CARE GVTNet the
whole forward peaks at 1224 bytes per input voxel at every probe size tried; times a 64x288x288 volume plus the
0.3 GiB PyTorch holds before, that is 6.36 GiB against 6.33-6.39 GiB measured (VmHWM of a fresh process,
benchmarks/inference_modes.py), so tile plans can rest on it (predict/stagewise.py).
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LiveBytes(TorchDispatchMode):
    """``with LiveBytes() as count: ...``; then ``count.peak`` (bytes). ``hold(n)`` counts bytes made before."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._owned: dict[int, int] = {}

    def hold(self, nbytes: int) -> None:
        """Counts ``nbytes`` held throughout (inputs made outside the counted code)."""
        self.live += nbytes
        self.peak = max(self.peak, self.live)

    def _free(self, key: int) -> None:
        self.live -= self._owned.pop(key, 0)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor):
                storage = tensor.untyped_storage()
                key = storage.data_ptr()
                if key and key not in self._owned:
                    self._owned[key] = storage.nbytes()
                    self.hold(storage.nbytes())
                    weakref.finalize(storage, self._free, key)
        return out
