"""Shared by the benchmark scripts: print a markdown report and optionally append it to a file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional


def emit(text: str, out: Optional[Path]) -> None:
    print(text)
    if out:
        with out.open("a") as handle:
            handle.write(text.rstrip("\n") + "\n\n")


def write_between(path: Path, start: str, end: str, text: str) -> None:
    """Replace what lies between the marker lines ``start`` and ``end`` of ``path`` with ``text``."""
    document = path.read_text()
    if start not in document or end not in document:
        raise SystemExit(f"{path} has no {start} ... {end} block to write into")
    head, rest = document.split(start, 1)
    path.write_text(head + start + "\n" + text + "\n" + end + rest.split(end, 1)[1])


def as_it_falls(script: str) -> str:
    """The opening of a README figure: which script wrote it, when, and on what machine."""
    import os
    import platform
    from datetime import date

    return (f"Reported as it falls (`python benchmarks/{script}`, {date.today().isoformat()}, {os.cpu_count()} CPU "
            f"cores, {platform.machine()})")
