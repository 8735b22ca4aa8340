"""A reader of TensorFlow checkpoints (tensor bundle V2) that needs no TensorFlow.

A checkpoint ``PREFIX`` is ``PREFIX.index``, a LevelDB-format sorted table mapping each variable name
to a ``BundleEntryProto`` (dtype, shape, shard, offset, size, CRC32C), and ``PREFIX.data-SSSSS-of-NNNNN``,
the raw little-endian tensor bytes. Both formats are small and documented (leveldb's table_format.md;
tensorflow/core/protobuf/tensor_bundle.proto), so reading them here keeps TensorFlow, which no
longer installs beside a current Python and torch, out of gvtnet-zoo. Every tensor read is checked
against its CRC32C. Partitioned (sliced) variables and compressed tables are refused: TF1's Saver
writes neither for the GVTNets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import google_crc32c
import numpy as np

from ..errors import UserError

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_BLOCK_TRAILER = 5  # compression type (1 byte) + masked CRC32C (4 bytes)
# tensorflow/core/framework/types.proto
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64,
           10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64}  # bfloat16 (14): refused


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


def _entry(name: str, proto: bytes) -> TensorEntry:
    dtype = shard = offset = size = crc = 0
    shape: list[int] = []
    for field, value in _fields(proto):
        if field == 1:
            dtype = int(value)
        elif field == 2:
            shape = [int(dict(_fields(dim)).get(1, 0)) for f, dim in _fields(value) if f == 2]
        elif field == 3:
            shard = int(value)
        elif field == 4:
            offset = int(value)
        elif field == 5:
            size = int(value)
        elif field == 6:
            crc = int(value)
        elif field == 7:
            raise ValueError(f"variable {name} is partitioned (sliced)")
    return TensorEntry(name, dtype, tuple(shape), shard, offset, size, crc)


class TFCheckpoint:
    """The variables of a TF checkpoint given by its prefix (``.../model.ckpt-55000``)."""

    def __init__(self, prefix: str | Path) -> None:
        prefix = Path(prefix)
        if prefix.name.endswith(".index"):
            prefix = prefix.with_name(prefix.name[: -len(".index")])
        self.prefix = prefix
        index = Path(f"{prefix}.index")
        if not index.is_file():
            raise UserError(f"{index} not found; give the checkpoint's prefix, e.g. save_dir/.../model.ckpt-pretrained "
                            "(beside it: .index and .data-00000-of-00001)")
        try:
            self.num_shards, self.entries = self._read_index(index.read_bytes())
        except (ValueError, IndexError, struct.error) as err:
            raise UserError(f"{index} is not a TensorFlow checkpoint index ({err}); give a TF1/TF2 Saver checkpoint") \
                from None

    @staticmethod
    def _read_index(table: bytes) -> tuple[int, dict[str, TensorEntry]]:
        if len(table) < _FOOTER_SIZE or struct.unpack_from("<Q", table, len(table) - 8)[0] != _TABLE_MAGIC:
            raise ValueError("no table footer")
        footer = table[len(table) - _FOOTER_SIZE:]
        _, pos = _varint(footer, 0)  # metaindex offset
        _, pos = _varint(footer, pos)  # and size: TF writes no meta blocks
        index_offset, pos = _varint(footer, pos)
        index_size, _ = _varint(footer, pos)
        num_shards, entries = 1, {}
        for _, handle in _block(table, index_offset, index_size):
            offset, pos = _varint(handle, 0)
            size, _ = _varint(handle, pos)
            for key, value in _block(table, offset, size):
                if key == b"":  # the bundle header: num_shards (1), endianness (2: 0 little), version (3)
                    header = dict(_fields(value))
                    num_shards = int(header.get(1, 1))
                    if header.get(2, 0) != 0:
                        raise ValueError("a big-endian bundle")
                    continue
                name = key.decode()
                entries[name] = _entry(name, value)
        return num_shards, entries

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Every variable's shape, by name."""
        return {name: entry.shape for name, entry in self.entries.items()}

    def read(self, name: str) -> np.ndarray:
        """One variable's value, its checksum verified."""
        entry = self.entries[name]
        if entry.dtype not in _DTYPES:
            raise UserError(f"variable {name} of {self.prefix} has TF dtype {entry.dtype}, which gvtnet-zoo cannot read")
        shard = Path(f"{self.prefix}.data-{entry.shard:05d}-of-{self.num_shards:05d}")
        try:
            with shard.open("rb") as f:
                f.seek(entry.offset)
                data = f.read(entry.size)
        except OSError as err:
            raise UserError(f"cannot read {shard} ({err.strerror}); it must lie beside {self.prefix}.index") from None
        if len(data) != entry.size or _masked_crc(data) != entry.crc32c:
            raise UserError(f"variable {name} in {shard} fails its checksum; the checkpoint is damaged or incomplete "
                            "(a Git LFS pointer instead of the data?)")
        return np.frombuffer(data, dtype=np.dtype(_DTYPES[entry.dtype]).newbyteorder("<")).reshape(entry.shape).copy()
