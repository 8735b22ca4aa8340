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


def files_fingerprint(path: str | Path) -> str:
    """What changes when a file, or any file under a folder, is rewritten (name, size and modification time of
    each, no content read: a volume's store may hold terabytes). Symbolic links are followed."""
    root = Path(path)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(f"{file.relative_to(root) if file != root else file.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()
