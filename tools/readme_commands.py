"""The README's tested command blocks, as written.

A block is the indented code block after a ``<!-- commands: NAME -->`` line (one blank line between them
allowed); blocks of one NAME form one walkthrough, in README order. tests/test_readme_commands.py runs them
and benchmarks/walkthrough_figures.py measures the synthetic one, so a README edit is what both run.

    python tools/readme_commands.py [NAME]     # print the walkthroughs (or one) as shell scripts
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = re.compile(r"^<!-- commands: ([\w-]+) -->$")


def walkthroughs(text: str) -> dict[str, list[str]]:
    """{name: [block, ...]} with each block's lines de-indented by four spaces and joined by newlines."""
    found: dict[str, list[str]] = {}
    lines = text.splitlines()
    for number, line in enumerate(lines):
        match = MARKER.match(line.strip())
        if not match:
            continue
        start = number + 1
        while start < len(lines) and not lines[start].strip():
            start += 1
        end = start
        while end < len(lines) and (lines[end].startswith("    ") or not lines[end].strip()):
            end += 1
        body = [l[4:] for l in lines[start:end]]
        while body and not body[-1].strip():
            body.pop()
        if not body:
            raise ValueError(f"README line {number + 1}: {line.strip()} is not followed by an indented block")
        found.setdefault(match.group(1), []).append("\n".join(body))
    return found


def script(name: str, text: str | None = None) -> str:
    """The walkthrough NAME as one shell script (its blocks in order)."""
    blocks = walkthroughs(README.read_text() if text is None else text)
    if name not in blocks:
        raise KeyError(f"the README has no walkthrough {name!r}; it has {', '.join(sorted(blocks))}")
    return "\n".join(blocks[name]) + "\n"


if __name__ == "__main__":
    every = walkthroughs(README.read_text())
    for key in sys.argv[1:] or sorted(every):
        print(f"# --- {key}\n{script(key)}")
