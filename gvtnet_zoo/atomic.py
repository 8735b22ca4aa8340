"""Writing files so that nothing is ever half-written (a temp name in the same folder, then rename) nor
replaced unasked."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

from .errors import UserError


def refuse_to_replace(paths: Sequence[str | Path], overwrite: bool) -> None:
    """UserError for an output path that is a folder, or for existing outputs without ``overwrite``."""
    paths = [Path(p) for p in paths]
    for path in paths:
        if path.is_dir():
            raise UserError(f"{path} is a folder; give a file name for the output")
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise UserError(f"{len(existing)} output(s) exist already (e.g. {existing[0]}); add --overwrite to replace "
                        "them, or choose another output")


def refuse_to_touch_inputs(outputs: Sequence[str | Path], inputs: Sequence[str | Path]) -> None:
    """UserError when an output would resolve to, contain or lie inside an input: replacing it would destroy
    the input (an OME-Zarr output is a folder that is removed and rewritten)."""
    sources = [Path(p).resolve() for p in inputs]
    for output in (Path(p).resolve() for p in outputs):
        for source in sources:
            if output == source or source.is_relative_to(output) or output.is_relative_to(source):
                where = "is" if output == source else "contains" if source.is_relative_to(output) else "lies inside"
                raise UserError(f"the output {output} {where} the input {source}; give another --out folder, so that "
                                "no input is written over")


def _umask() -> int:
    """The process's umask, read without changing it where the system shows it (os.umask sets it, which other
    threads writing files at that moment would see)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it is renamed to ``path``, on error removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        if os.path.exists(tmp):  # mkstemp makes it private (0600): give it the mode a plain write would have
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomically(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
