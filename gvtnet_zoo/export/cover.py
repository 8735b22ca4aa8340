"""Cover image of a package: the test input and the model's output side by side (2:1, as the zoo shows covers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..figures import plane, save_panels


def write_cover(path: Path, source: np.ndarray, output: np.ndarray, titles: tuple[str, str]) -> Path:
    """A 1024x512 PNG of ``source`` ((Z,) Y, X) and ``output`` ((Z,) Y, X or Y, X)."""
    project = source.ndim != output.ndim  # a projection model's input is shown as its maximum over z
    source_title = f"{titles[0]} (maximum over z)" if project else titles[0]
    return save_panels(path, [(source_title, plane(source, project), "magma"), (titles[1], plane(output), "magma")],
                       dpi=128)
