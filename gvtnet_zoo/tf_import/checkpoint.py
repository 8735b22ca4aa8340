"""A reader of TensorFlow checkpoints (tensor bundle V2) that needs no TensorFlow.

A checkpoint ``PREFIX`` is ``PREFIX.index``, a LevelDB-format sorted table mapping each variable name
to a ``BundleEntryProto`` (dtype, shape, shard, offset, size, CRC32C), and ``PREFIX.data-SSSSS-of-NNNNN``,
the raw little-endian tensor bytes. Both formats are small and documented (leveldb's table_format.md;
tensorflow/core/protobuf/tensor_bundle.proto), so reading them here keeps TensorFlow, which no
longer installs beside a current Python and torch, out of gvtnet-zoo. Every tensor read is checked
against its CRC32C. Partitioned (sliced) variables and compressed tables are refused: TF1's Saver
writes neither for the GVTNets.

The index is someone else's file (DESIGN.md section 9): a key listed twice or out of order, or a tensor
whose byte count disagrees with its dtype and shape or reaches past its shard, is refused in one line
before any tensor byte is read, so a crafted index can neither exhaust memory nor be read otherwise
than TensorFlow would read it.
"""

from __future__ import annotations

import math
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

import google_crc32c
import numpy as np

from ..errors import UserError
from ..hashing import file_sha256

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_BLOCK_TRAILER = 5  # compression type (1 byte) + masked CRC32C (4 bytes)
# tensorflow/core/framework/types.proto
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64,
           10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64}  # bfloat16 (14): refused
# TF restores a variable only from a tensor of its own dtype, and model weights are floating point
_FLOAT_DTYPES = frozenset({1, 2, 19})


@dataclass(frozen=True)
class TensorEntry:
    """Where one variable lies in the data shards."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, object]]:
    """The (field number, value) pairs of a serialized protobuf message; bytes for length-delimited fields."""
    out: list[tuple[int, object]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise ValueError(f"protobuf wire type {wire}")
        out.append((field, value))
    return out


def _masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _block(table: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of one table block, its trailer checked."""
    contents = table[offset:offset + size]
    kind, crc = table[offset + size], struct.unpack_from("<I", table, offset + size + 1)[0]
    if kind != 0:
        raise ValueError(f"compressed table block (type {kind})")
    if _masked_crc(contents + bytes([kind])) != crc:
        raise ValueError("a table block fails its checksum")
    restarts = struct.unpack_from("<I", contents, len(contents) - 4)[0]
    end = len(contents) - 4 - 4 * restarts
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(contents, pos)
        unshared, pos = _varint(contents, pos)
        length, pos = _varint(contents, pos)
        key = key[:shared] + contents[pos:pos + unshared]
        pos += unshared
        entries.append((key, contents[pos:pos + length]))
        pos += length
    return entries


def _signed(value: object) -> int:
    """A protobuf int32/int64 field: negative numbers come as their 64-bit two's complement."""
    value = int(value)  # type: ignore[call-overload]
    return value - (1 << 64) if value >= 1 << 63 else value


def _entry(name: str, proto: bytes) -> TensorEntry:
    """A BundleEntryProto; later occurrences of a field win, as protobuf parsers do."""
    dtype = shard = offset = size = crc = 0
    shape: list[int] = []
    for field, value in _fields(proto):
        if field == 1:
            dtype = _signed(value)
        elif field == 2:
            shape = [_signed(dict(_fields(dim)).get(1, 0)) for f, dim in _fields(value) if f == 2]
        elif field == 3:
            shard = _signed(value)
        elif field == 4:
            offset = _signed(value)
        elif field == 5:
            size = _signed(value)
        elif field == 6:
            crc = int(value)
        elif field == 7:
            raise ValueError(f"variable {name} is partitioned (sliced)")
    return TensorEntry(name, dtype, tuple(shape), shard, offset, size, crc)


def shape_text(shape: tuple[int, ...]) -> str:
    """A shape for a one-line message, however many axes a crafted index declares."""
    return str(list(shape[:8]))[:-1] + ", ...]" if len(shape) > 8 else str(list(shape))


class TFCheckpoint:
    """The variables of a TF checkpoint given by its prefix (``.../model.ckpt-55000``)."""

    def __init__(self, prefix: str | Path) -> None:
        prefix = Path(prefix)
        if prefix.name.endswith(".index"):
            prefix = prefix.with_name(prefix.name[: -len(".index")])
        self.prefix = prefix
        self.index = Path(f"{prefix}.index")
        if not self.index.exists():
            raise UserError(f"{self.index} not found; give the checkpoint's prefix, e.g. save_dir/.../"
                            "model.ckpt-pretrained (beside it: .index and .data-00000-of-00001)")
        self._regular_size(self.index)
        try:
            self.num_shards, self.entries = self._read_index(self.index.read_bytes())
        except (ValueError, IndexError, struct.error) as err:
            raise UserError(f"{self.index} is not a TensorFlow checkpoint index ({err}); give a TF1/TF2 Saver "
                            "checkpoint") from None

    @staticmethod
    def _read_index(table: bytes) -> tuple[int, dict[str, TensorEntry]]:
        if len(table) < _FOOTER_SIZE or struct.unpack_from("<Q", table, len(table) - 8)[0] != _TABLE_MAGIC:
            raise ValueError("no table footer")
        footer = table[len(table) - _FOOTER_SIZE:]
        _, pos = _varint(footer, 0)  # metaindex offset
        _, pos = _varint(footer, pos)  # and size: TF writes no meta blocks
        index_offset, pos = _varint(footer, pos)
        index_size, _ = _varint(footer, pos)
        num_shards, entries, previous = 1, {}, None
        for _, handle in _block(table, index_offset, index_size):
            offset, pos = _varint(handle, 0)
            size, _ = _varint(handle, pos)
            for key, value in _block(table, offset, size):
                # TF looks a key up by binary search and finds its first entry; keys must rise strictly for
                # that entry to be the one read here
                if previous is not None and key <= previous:
                    what = key.decode(errors="replace")
                    raise ValueError(f"variable {what} is listed twice" if key == previous else
                                     f"the keys are out of order at {what}")
                previous = key
                if key == b"":  # the bundle header: num_shards (1), endianness (2: 0 little), version (3)
                    header = dict(_fields(value))
                    num_shards = _signed(header.get(1, 1))
                    if header.get(2, 0) != 0:
                        raise ValueError("a big-endian bundle")
                    continue
                name = key.decode()
                entries[name] = _entry(name, value)
        for entry in entries.values():
            if not 0 <= entry.shard < num_shards:
                raise ValueError(f"variable {entry.name} lies in shard {entry.shard} of {num_shards}")
        return num_shards, entries

    def _shard(self, shard: int) -> Path:
        return Path(f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}")

    def files(self) -> list[Path]:
        """The checkpoint's own files: its index and the data shards its variables lie in (not .meta, nor any
        other file that shares the prefix)."""
        return [self.index, *(self._shard(s) for s in sorted({e.shard for e in self.entries.values()}))]

    def sha256s(self) -> dict[str, str]:
        """The SHA-256 of each of ``files()``, by file name."""
        sums = {}
        for path in self.files():
            self._regular_size(path)  # before opening it to hash it
            sums[path.name] = file_sha256(path)
        return sums

    def _regular_size(self, path: Path) -> int:
        """The size of ``path``, refused unless a regular file: stat, never open, since opening a FIFO blocks."""
        try:
            info = os.stat(path)
        except OSError as err:
            raise UserError(f"cannot read {path} ({err.strerror}); it must lie beside {self.index}") from None
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"{path} is not a regular file (a folder, FIFO or device); a checkpoint's index and data "
                            "shards must be files")
        return info.st_size

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Every variable's shape, by name."""
        return {name: entry.shape for name, entry in self.entries.items()}

    def check(self, name: str, floating: bool = False) -> TensorEntry:
        """The entry of ``name`` once its dtype (floating point if ``floating``), shape and byte count agree and
        its bytes lie inside its shard; UserError naming the checkpoint and the variable otherwise."""
        entry = self.entries[name]
        what = f"variable {name} of {self.prefix}"
        if entry.dtype not in _DTYPES:
            raise UserError(f"{what} has TF dtype {entry.dtype}, which gvtnet-zoo cannot read")
        dtype = np.dtype(_DTYPES[entry.dtype])
        if floating and entry.dtype not in _FLOAT_DTYPES:
            raise UserError(f"{what} is stored as {dtype.name}, but a network weight is floating point (TensorFlow "
                            "would refuse to restore it); the checkpoint is damaged or not the network's")
        if any(n < 0 for n in entry.shape):
            raise UserError(f"{what} has the shape {shape_text(entry.shape)}; the checkpoint index is damaged")
        needed = math.prod(entry.shape) * dtype.itemsize  # Python ints: no overflow, however large the shape
        if entry.size != needed:
            raise UserError(f"{what} declares {entry.size} bytes, but {dtype.name} of shape {shape_text(entry.shape)} "
                            f"takes {needed}; the checkpoint index is damaged")
        shard = self._shard(entry.shard)
        length = self._regular_size(shard)
        if entry.offset < 0 or entry.offset + entry.size > length:
            raise UserError(f"{what} lies at bytes {entry.offset} to {entry.offset + entry.size} of {shard}, which "
                            f"holds {length}; the checkpoint is damaged or incomplete (a Git LFS pointer instead "
                            "of the data?)")
        return entry

    def read(self, name: str, floating: bool = False) -> np.ndarray:
        """One variable's value, its entry checked (``check``) before any byte is read and its checksum verified."""
        entry = self.check(name, floating)
        shard = self._shard(entry.shard)
        try:
            with shard.open("rb") as f:
                f.seek(entry.offset)
                data = f.read(entry.size)
        except OSError as err:
            raise UserError(f"cannot read {shard} ({err.strerror}); it must lie beside {self.index}") from None
        if len(data) != entry.size or _masked_crc(data) != entry.crc32c:
            raise UserError(f"variable {name} in {shard} fails its checksum; the checkpoint is damaged or incomplete "
                            "(a Git LFS pointer instead of the data?)")
        dtype = np.dtype(_DTYPES[entry.dtype]).newbyteorder("<")
        return np.frombuffer(data, dtype=dtype).reshape(entry.shape).copy()

    def global_step(self) -> int:
        """The step the checkpoint was saved at (0 without a ``global_step``): TF's is a non-negative integer
        scalar, and anything else is refused."""
        if "global_step" not in self.entries:
            return 0
        value = self.read("global_step")
        if value.shape != () or not np.issubdtype(value.dtype, np.integer) or int(value) < 0:
            raise UserError(f"global_step of {self.prefix} is {value.dtype.name} of shape {shape_text(value.shape)} "
                            f"({str(value.ravel()[:3])[:40]}), not a non-negative integer; the checkpoint is damaged")
        return int(value)
