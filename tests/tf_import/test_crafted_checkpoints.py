"""import-tf on checkpoints that are damaged, crafted or surrounded by other files (issue 31, items 4, 5, 6, 12).

Each checkpoint is the CARE fixture with its index rewritten (bundle.py), its data shard extended, or
files beside it; every refusal is one line, exit code 2, and nothing is written or deleted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import tifffile
import yaml

import gvtnet_zoo
from gvtnet_zoo.cli import main

from .bundle import copy_checkpoint, entries, masked_crc, rewrite

CARE = Path(__file__).parent / "fixtures" / "care" / "model.ckpt-1"
SPEC = ["--spec", "gvtnet-care-denoise", "--set", "model.base_channels=4"]
KERNEL = "first_convolution/kernel"  # (3, 3, 3, 1, 4) float32: 432 bytes
SHARD = ".data-00000-of-00001"
Records = list[tuple[str, dict]]


def _fields(records: Records, name: str) -> dict:
    return next(fields for key, fields in records if key == name)


def _append(prefix: Path, value: np.ndarray, dtype: int) -> dict:
    """Fields of an entry for ``value``, whose bytes are appended to the data shard."""
    shard = Path(f"{prefix}{SHARD}")
    data, offset = value.tobytes(), shard.stat().st_size
    with shard.open("ab") as f:
        f.write(data)
    return {"dtype": dtype, "shape": value.shape, "shard": 0, "offset": offset, "size": len(data),
            "crc32c": masked_crc(data)}


def _sparse(prefix: Path, records: Records) -> None:
    """A kernel declared as 256 MiB, which the shard (sparse) holds: reading it first would take 256 MiB."""
    kernel = _fields(records, KERNEL)
    kernel["size"] = 1 << 28
    os.truncate(f"{prefix}{SHARD}", kernel["offset"] + kernel["size"])


def _step(value: np.ndarray, dtype: int) -> Callable[[Path, Records], None]:
    def change(prefix: Path, records: Records) -> None:
        _fields(records, "global_step").update(_append(prefix, value, dtype))
    return change


def _kernel(**fields: object) -> Callable[[Path, Records], None]:
    return lambda prefix, records: _fields(records, KERNEL).update(fields)


def _past_the_end(prefix: Path, records: Records) -> None:
    _fields(records, KERNEL)["offset"] = Path(f"{prefix}{SHARD}").stat().st_size - 100


# case -> (change to the fixture, the variable and a phrase the one-line refusal holds)
CRAFTED = {
    "size_2^62": (_kernel(size=1 << 62), KERNEL, "declares"),
    "size_2^63": (_kernel(size=1 << 63), KERNEL, "declares"),
    "offset_2^63": (_kernel(offset=1 << 63), KERNEL, "lies at bytes"),
    "past_the_shard": (_past_the_end, KERNEL, "lies at bytes"),
    "item_size": (_kernel(dtype=2), KERNEL, "declares"),  # float64: 432 bytes hold 54, not 108
    "wrong_shape": (_kernel(shape=(3, 3, 3, 1, 5)), KERNEL, "declares"),
    "negative_shape": (_kernel(shape=(-1, 3, 3, 1, 4)), KERNEL, "shape [-1, 3, 3, 1, 4]"),
    "huge_shape": (_kernel(shape=(1 << 40, 1 << 40)), KERNEL, "declares"),
    "sparse_256MiB": (_sparse, KERNEL, "declares"),
    "step_not_scalar": (_step(np.array([1, 2], "<i8"), 9), "global_step", "not a non-negative integer"),
    "step_nan": (_step(np.array(np.nan, "<f4"), 1), "global_step", "not a non-negative integer"),
}


def _crafted(tmp_path: Path, change: Callable[[Path, Records], None]) -> Path:
    prefix = copy_checkpoint(CARE, tmp_path / "ck")
    records = entries(prefix)
    change(prefix, records)
    rewrite(prefix, records)
    return prefix


def _refusal(capsys: pytest.CaptureFixture, args: list[str], out: Path) -> str:
    """The one-line refusal of import-tf ``args`` --out ``out``, which must not have been written."""
    assert main(["import-tf", *args, "--out", str(out)]) == 2
    assert not out.exists()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_sizes_offsets_and_shapes_are_refused_before_reading(case: str, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    change, name, phrase = CRAFTED[case]
    prefix = _crafted(tmp_path, change)
    tracemalloc.start()
    try:
        err = _refusal(capsys, [str(prefix), *SPEC], tmp_path / "run")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f"{name} of {prefix}" in err and phrase in err, err
    assert peak < 64 << 20, f"{peak >> 20} MiB"  # the declared size is never read


@pytest.mark.parametrize("case", ["int32_kernel", "listed_twice", "out_of_order"])
def test_what_tensorflow_would_refuse_or_read_otherwise_is_refused(case: str, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    """An int32 kernel (TF restores no int tensor into a float variable); a key listed twice, where TF reads the
    first entry, or keys out of order, where TF's binary search finds what it finds."""
    prefix = copy_checkpoint(CARE, tmp_path / "ck")
    records = entries(prefix)
    at = next(i for i, (key, _) in enumerate(records) if key == KERNEL)
    if case == "int32_kernel":
        records[at][1]["dtype"] = 3
    elif case == "listed_twice":
        records.insert(at + 1, (KERNEL, {**records[at][1], "offset": 0}))
    else:
        records[at], records[at + 1] = records[at + 1], records[at]
    rewrite(prefix, records)
    err = _refusal(capsys, [str(prefix), *SPEC], tmp_path / "run")
    phrase = {"int32_kernel": f"{KERNEL} of {prefix} is stored as int32", "listed_twice": f"{KERNEL} is listed twice",
              "out_of_order": "out of order"}[case]
    assert phrase in err, err


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("out", ["ck", ".", "ck/model.ckpt-1.index", "ck/model.ckpt-1.data-00000-of-00001/run",
                                 "images"])
def test_overwrite_never_deletes_the_checkpoint_or_the_sample(out: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    """--out is, contains or lies inside the checkpoint's files or --sample: refused even with --overwrite."""
    prefix = copy_checkpoint(CARE, tmp_path / "ck")
    (tmp_path / "images").mkdir()
    sample = tmp_path / "images" / "sample.tif"
    tifffile.imwrite(sample, np.zeros((8, 64, 64), np.float32))
    before = _tree(tmp_path)
    code = main(["import-tf", str(prefix), *SPEC, "--sample", str(sample), "--out", str(tmp_path / out), "--overwrite"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "the input" in err and "--out" in err, err
    assert _tree(tmp_path) == before


def test_the_provenance_hashes_only_the_index_and_its_shards(tmp_path: Path) -> None:
    """Files and folders that merely share the prefix (a .meta, notes, a PREFIX.d folder) are no part of it."""
    prefix = copy_checkpoint(CARE, tmp_path / "ck")
    Path(f"{prefix}.d").mkdir()
    Path(f"{prefix}.meta").write_bytes(b"graph")
    Path(f"{prefix}.notes.txt").write_text("mine")
    assert main(["import-tf", str(prefix), *SPEC, "--out", str(tmp_path / "run")]) == 0
    imported_from = yaml.safe_load((tmp_path / "run" / "spec.yaml").read_text())["provenance"]["imported_from"]
    hashed = [part.split(" sha256 ")[0] for part in imported_from.split("(")[1].split(")")[0].split(", ")]
    assert hashed == ["model.ckpt-1.index", f"model.ckpt-1{SHARD}"], imported_from


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_data_shard_that_is_not_a_regular_file_is_refused(kind: str, tmp_path: Path) -> None:
    """Never opened: a FIFO would block the reader until someone writes to it (a subprocess, to time out)."""
    prefix = copy_checkpoint(CARE, tmp_path / "ck")
    shard = Path(f"{prefix}{SHARD}")
    shard.unlink()
    os.mkfifo(shard) if kind == "fifo" else shard.mkdir()
    command = [sys.executable, "-m", "gvtnet_zoo", "import-tf", str(prefix), *SPEC, "--out", str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180,
                          cwd=Path(gvtnet_zoo.__file__).parents[1])
    err = done.stderr.strip()
    assert done.returncode == 2 and len(err.splitlines()) == 1, err
    assert f"{shard} is not a regular file" in err and not (tmp_path / "run").exists()
