"""The paper's models: the parameter counts our builds must reproduce, and where each comes from."""

from __future__ import annotations

from typing import NamedTuple


class PaperModel(NamedTuple):
    parameters: int
    source: str


PAPER_MODELS: dict[str, PaperModel] = {
    "gvtnet-label-free": PaperModel(6_172_225, "basic GVTNet, label-free prediction"),
    "gvtnet-care-denoise": PaperModel(1_347_360, "CARE denoising GVTNet with Laplace scale head"),
    "gvtnet-flywing-projection": PaperModel(538_873, "Flywing 3D-to-2D projection GVTNet"),
    "unet-fnet-label-free": PaperModel(23_280_769, "pytorch_fnet U-Net baseline"),
    "unet-care-denoise": PaperModel(996_802, "CSBDeep CARE U-Net baseline, probabilistic"),
}
