"""Shared by the benchmark scripts: print a markdown report and optionally append it to a file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional


def emit(text: str, out: Optional[Path]) -> None:
    print(text)
    if out:
        with out.open("a") as handle:
            handle.write(text.rstrip("\n") + "\n\n")
