"""Cover image of a package: the test input and the model's output side by side (2:1, as the zoo shows covers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_path


def _plane(image: np.ndarray, project: bool) -> np.ndarray:
    """(Z, Y, X) -> (Y, X): the z maximum for a projection model's input, else the middle z slice."""
    if image.ndim == 2:
        return image
    return image.max(axis=0) if project else image[image.shape[0] // 2]


def write_cover(path: Path, source: np.ndarray, output: np.ndarray, titles: tuple[str, str]) -> Path:
    """A 1024x512 PNG of ``source`` ((Z,) Y, X) and ``output`` ((Z,) Y, X or Y, X)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    project = source.ndim != output.ndim
    fig, axes = plt.subplots(1, 2, figsize=(8, 4), dpi=128)
    for ax, image, title in zip(axes, (_plane(source, project), _plane(output, False)), titles):
        low, high = np.percentile(image, (0.5, 99.5))
        ax.imshow(image, cmap="magma", vmin=low, vmax=high if high > low else low + 1)
        ax.set_title(title, fontsize=11)
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=128)
    plt.close(fig)
    return path
