"""SHA-256 of files and folders: what identifies a model or checkpoint that may be replaced at the same path."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """The hex SHA-256 of one file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_sha256(source: str | Path) -> str:
    """A package's identity: the SHA-256 of its zip, or of every file of its folder (an rdf.yaml's folder), by name."""
    path = Path(source)
    if path.is_file() and path.suffix.lower() == ".zip":
        return file_sha256(path)
    folder = path if path.is_dir() else path.parent
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(folder)}\0{file_sha256(file)}\0".encode())
    return digest.hexdigest()
