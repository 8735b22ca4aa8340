"""Figures: one headless matplotlib, image planes, and rows of image panels written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .atomic import atomic_path

DISPLAY_PERCENTILES = (0.5, 99.5)  # each panel's contrast: its own low and high percentiles at black and white


def pyplot() -> Any:
    """matplotlib.pyplot on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plane(image: np.ndarray, project: bool = False) -> np.ndarray:
    """(Z, Y, X) -> (Y, X): the maximum over z when ``project``, else the middle slice; 2D as it is."""
    if image.ndim == 2:
        return image
    return image.max(axis=0) if project else image[image.shape[0] // 2]


def plane_text(shape: Sequence[int], project: bool = False) -> str:
    """What ``plane`` shows of an image of ``shape``: 'z 8 of 0-15 (the middle plane)', 'maximum over 16 z planes'
    or '' for 2D."""
    if len(shape) == 2:
        return ""
    depth = shape[0]
    return f"maximum over {depth} z planes" if project else f"z {depth // 2} of 0-{depth - 1} (the middle plane)"


def scaling_text() -> str:
    """How ``save_panels`` scales each panel, for a figure's title."""
    low, high = DISPLAY_PERCENTILES
    return f"each panel scaled to its own {low:g}-{high:g} percentiles"


def save_figure(fig: Any, path: Path, dpi: int) -> Path:
    """Write ``fig`` as PNG to a temp name, rename, and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    pyplot().close(fig)
    return path


def save_panels(path: Path, panels: Sequence[tuple[str, np.ndarray, str]], *, vertical: bool = False,
                panel_size: tuple[float, float] = (4.0, 4.0), dpi: int = 90, title: Optional[str] = None) -> Path:
    """Images (title, 2D array, colormap) side by side (or stacked), each scaled to its own DISPLAY_PERCENTILES."""
    plt = pyplot()
    n = len(panels)
    shape, size = ((n, 1), (panel_size[0], panel_size[1] * n)) if vertical else ((1, n), (panel_size[0] * n, panel_size[1]))
    fig, axes = plt.subplots(*shape, figsize=size)
    for ax, (name, image, cmap) in zip(np.atleast_1d(axes), panels):
        low, high = np.percentile(image, DISPLAY_PERCENTILES)
        ax.imshow(image, cmap=cmap, vmin=low, vmax=high if high > low else low + 1)
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi)
