"""gvtnet-zoo asks for huge pages for PyTorch's large CPU tensors where the kernel grants them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gvtnet_zoo import huge_pages


@pytest.mark.parametrize("setting, grants", [
    ("always [madvise] never\n", True),
    ("[always] madvise never\n", True),
    ("always madvise [never]\n", False),
    (None, False),  # no THP in the kernel, or no such file (not Linux)
])
def testkernel_setting(setting: str | None, grants: bool) -> None:
    assert huge_pages.kernel_grants_huge_pages(setting) is grants


def test_a_users_choice_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huge_pages, "kernel_setting", lambda: "always [madvise] never")
    monkeypatch.setattr(sys, "platform", "linux")
    environ = {"THP_MEM_ALLOC_ENABLE": "0"}
    assert huge_pages.use_huge_pages(environ) is False
    assert environ == {"THP_MEM_ALLOC_ENABLE": "0"}
    environ = {}
    assert huge_pages.use_huge_pages(environ) is True
    assert environ == {"THP_MEM_ALLOC_ENABLE": "1"}


def test_nothing_is_asked_where_the_kernel_does_not_grant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huge_pages, "kernel_setting", lambda: "always madvise [never]")
    monkeypatch.setattr(sys, "platform", "linux")
    environ: dict[str, str] = {}
    assert huge_pages.use_huge_pages(environ) is False
    assert environ == {}


# After the CLI has run (its first torch allocations included), a large tensor's memory carries the
# kernel's "huge page advised" flag (hg in /proc/self/smaps): PyTorch saw the setting in time.
_CHILD = """
import sys
from gvtnet_zoo.cli import main
main(["summary", "demo-gvtnet-care-denoise-3d"])
import torch
tensor = torch.ones(8 << 20)  # 32 MiB
address = tensor.data_ptr()
flags = ""
with open("/proc/self/smaps") as smaps:
    inside = False
    for line in smaps:
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            start, end = (int(v, 16) for v in head.split("-"))
            inside = start <= address < end
        elif inside and head == "VmFlags:":
            flags = line.split(":", 1)[1].split()
print("advised" if "hg" in flags else "not advised")
"""


@pytest.mark.skipif(not huge_pages.kernel_grants_huge_pages(huge_pages.kernel_setting()),
                    reason="this kernel grants no transparent huge pages")
@pytest.mark.parametrize("setting, expected", [(None, "advised"), ("0", "not advised")])
def test_the_cli_sets_it_before_torch_allocates(setting: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    if setting is not None:
        env["THP_MEM_ALLOC_ENABLE"] = setting
    done = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip().splitlines()[-1] == expected
