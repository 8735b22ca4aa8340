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
        available = int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 8 * 1024**3  # no /proc (not Linux): assume a modest machine
    left = cgroup_memory_left()
    return available if left is None else min(available, left)


def kept_state_bytes(device: str) -> int:
    """What global context keeps between its steps without a --memory budget (tiles' pass states, or the
    level-by-level forward's feature maps in memory): a quarter of the device's free memory."""
    return free_memory_bytes([device]) // 4


def cgroup_memory_left(proc: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """What this process's memory cgroup (v2 ``memory.max`` less ``memory.current``, or v1 ``memory.limit_in_bytes``
    less ``memory.usage_in_bytes``) still allows; None without a limit. A container's or a batch job's limit is
    often far below the machine's free memory, and going over it gets the process killed, not slowed."""
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "" and (root / path.lstrip("/") / "memory.max").exists():  # v2
            folder, limit_file, used_file = root / path.lstrip("/"), "memory.max", "memory.current"
        elif "memory" in controllers.split(","):  # v1
            folder, limit_file, used_file = root / "memory" / path.lstrip("/"), "memory.limit_in_bytes", "memory.usage_in_bytes"
        else:
            continue
        try:
            limit, used = (folder / limit_file).read_text().strip(), int((folder / used_file).read_text())
        except (OSError, ValueError):
            continue
        if limit != "max" and int(limit) < 2**60:  # v1 says "no limit" with a huge number
            return max(0, int(limit) - used)
    return None


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
