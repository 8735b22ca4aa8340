"""How much memory a prediction may take: the device's free memory, and whether an image fits in memory or must
be streamed (sizes from TIFF headers, no voxel read)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

# Auto mode predicts an image whole when this many bytes per voxel fit in half the free memory of the
# device: the CARE GVTNet peaked at ~1.3 kB per voxel on a 64x256x256 volume (benchmarks/results).
BYTES_PER_VOXEL = 1600
IN_MEMORY_COPIES = 6


def free_memory_bytes(devices: Sequence[str]) -> int:
    """Free memory of the device the model runs on: the CUDA device's, else the machine's available RAM."""
    if devices and devices[0].startswith("cuda") or devices == ["CUDAExecutionProvider"]:
        import torch

        index = int(devices[0].split(":")[1]) if ":" in devices[0] else 0
        return int(torch.cuda.mem_get_info(index)[0])
    try:
        with open("/proc/meminfo") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 8 * 1024**3  # no /proc (not Linux): assume a modest machine


def fits_in_memory(voxels: int, free_bytes: int) -> bool:
    """Whether predicting ``voxels`` in memory (float32 input, its normalized and padded copies, the output and
    the reader's buffer: IN_MEMORY_COPIES copies) takes at most half of ``free_bytes``."""
    return voxels * 4 * IN_MEMORY_COPIES <= free_bytes // 2


def too_large_for_memory(paths: Sequence[Path], free_bytes: int) -> list[Path]:
    """The TIFF files whose in-memory prediction would not fit (``fits_in_memory``); sizes from the headers."""
    import tifffile

    large = []
    for path in paths:
        if path.suffix.lower() in (".tif", ".tiff"):
            try:
                with tifffile.TiffFile(path) as tiff:
                    voxels = int(np.prod(tiff.series[0].shape))
            except Exception:  # noqa: BLE001 - the reader says what is wrong with the file later
                continue
            if not fits_in_memory(voxels, free_bytes):
                large.append(path)
    return large
