"""Back PyTorch's large CPU tensors with transparent huge pages (Linux), before torch allocates anything.

PyTorch's CPU allocator takes every large tensor fresh from the kernel and gives it back when freed,
so each full-resolution activation is first touched one 4 KiB page at a time: at 64x256x256 those page
faults cost as much as the memory-bound passes themselves. With ``THP_MEM_ALLOC_ENABLE=1`` PyTorch aligns
tensors of 2 MiB and more to 2 MiB and asks for huge pages (``madvise``), which most distributions
grant only to memory that asks ("madvise" mode). Measured by ``benchmarks/huge_pages.py``.

PyTorch reads the variable once, at its first CPU allocation, so this must run before that.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

TORCH_VARIABLE = "THP_MEM_ALLOC_ENABLE"
KERNEL_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def kernel_grants_huge_pages(setting: str | None) -> bool:
    """Whether the kernel's THP setting (the text of KERNEL_SETTING, None if absent) grants madvised memory.

    The text lists the modes with the active one in brackets, e.g. "always [madvise] never".
    """
    return setting is not None and ("[madvise]" in setting or "[always]" in setting)


def kernel_setting() -> str | None:
    """The text of KERNEL_SETTING, or None where there is none (no THP in this kernel, or not Linux)."""
    try:
        return KERNEL_SETTING.read_text()
    except OSError:
        return None


def use_huge_pages(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Turn PyTorch's huge-page allocation on where the kernel grants it and the user has not chosen.

    A value the user set (``THP_MEM_ALLOC_ENABLE=0`` turns it off) is left alone. Returns whether the
    variable now asks for huge pages.
    """
    if TORCH_VARIABLE not in environ and sys.platform.startswith("linux") and kernel_grants_huge_pages(kernel_setting()):
        environ[TORCH_VARIABLE] = "1"
    return environ.get(TORCH_VARIABLE) == "1"  # PyTorch reads "1" as on, "0" as off
