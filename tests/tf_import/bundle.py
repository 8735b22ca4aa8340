"""A writer of TensorFlow checkpoint indexes (tensor bundle V2) for crafted checkpoints.

Writes what the reader reads (leveldb's table_format.md, tensorflow/core/protobuf/tensor_bundle.proto):
one uncompressed data block of (key, BundleEntryProto) records, one index block pointing at it, and the
footer. The records are written in the order given, so a test can list a key twice or out of order.
"""

from __future__ import annotations

import shutil
import struct
from dataclasses import asdict
from pathlib import Path

import google_crc32c

from gvtnet_zoo.tf_import.checkpoint import TFCheckpoint

MAGIC = 0xDB4775248B80FB57


def masked_crc(data: bytes) -> int:
    """LevelDB's and the bundle's masked CRC32C."""
    crc = google_crc32c.value(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    if value < 0:  # an int64: its two's complement, as protobuf writes it
        value += 1 << 64
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    return _varint(number << 3) + _varint(value)


def entry_proto(dtype: int, shape: tuple[int, ...], shard: int, offset: int, size: int, crc32c: int) -> bytes:
    """A BundleEntryProto."""
    dims = b"".join(_field(2, _field(1, n)) for n in shape)
    return (_field(1, dtype) + _field(2, dims) + _field(3, shard) + _field(4, offset) + _field(5, size)
            + _varint(6 << 3 | 5) + struct.pack("<I", crc32c))


def _block(records: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v for k, v in records)
    contents = body + struct.pack("<II", 0, 1)  # one restart point, at 0
    return contents + b"\0" + struct.pack("<I", masked_crc(contents + b"\0"))


def write_index(path: Path, records: list[tuple[str, bytes]], num_shards: int = 1) -> None:
    """An index of the header and ``records`` (name, BundleEntryProto), in this order."""
    data = _block([(b"", _field(1, num_shards)), *((k.encode(), v) for k, v in records)])
    index = _block([(b"\xff", _varint(0) + _varint(len(data) - 5))])
    handle = _varint(0) + _varint(0) + _varint(len(data)) + _varint(len(index) - 5)
    path.write_bytes(data + index + handle.ljust(40, b"\0") + struct.pack("<Q", MAGIC))


def entries(prefix: Path) -> list[tuple[str, dict]]:
    """The (name, fields) of a checkpoint's entries, in key order, to change and write back with ``rewrite``."""
    fields = [(name, asdict(entry)) for name, entry in sorted(TFCheckpoint(prefix).entries.items())]
    for _, entry in fields:
        entry.pop("name")
    return fields


def rewrite(prefix: Path, records: list[tuple[str, dict]]) -> None:
    """Write the index of ``prefix`` from (name, fields) records."""
    write_index(Path(f"{prefix}.index"), [(name, entry_proto(**fields)) for name, fields in records])


def copy_checkpoint(source: Path, folder: Path) -> Path:
    """Copy the index and data shard of the checkpoint ``source`` (a prefix) into ``folder``; its new prefix."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(f"{source}{suffix}", folder / f"{source.name}{suffix}")
    return folder / source.name
