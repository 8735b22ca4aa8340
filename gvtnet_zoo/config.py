"""Pydantic models of a spec file (sections model, data, train, export); the only place defaults live.

Defaults reproduce the paper's label-free GVTNet. Unknown keys are refused with their name and
the allowed ones.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _SameSizeNetwork(_Strict):
    """Fields of every network mapping (B, C_in, *S) to (B, C_out, *S)."""

    spatial_dims: Literal[2, 3] = 3
    in_channels: int = Field(1, ge=1)
    out_channels: int = Field(1, ge=1)

    @property
    def input_dims(self) -> int:
        return self.spatial_dims

    @property
    def output_dims(self) -> int:
        return self.spatial_dims

    def _check_residual(self, residual_output: bool) -> None:
        if residual_output and self.in_channels != self.out_channels:
            raise ValueError("residual_output needs in_channels == out_channels")


class GVTNetConfig(_SameSizeNetwork):
    """A GVTNet: residual encoder/decoder with global voxel transformer operators."""

    architecture: Literal["gvtnet"] = "gvtnet"
    depth: int = Field(4, ge=1, description="resolution levels; inputs must be multiples of 2^(depth-1)")
    base_channels: int = Field(32, ge=1, description="feature maps at level 1, doubled per level")
    batch_norm: bool = True
    bn_momentum: float = Field(0.003, gt=0, le=1, description="PyTorch batch-norm momentum; the paper's 0.003 "
                               "(0.997 in TF terms) settles only over thousands of steps")
    heads: int = Field(1, ge=1, description="attention heads of every GVTO")
    encoder_blocks: list[Annotated[int, Field(ge=0)]] = Field(
        [1, 0, 0, 0], description="residual blocks per level, after that level's down-sampling"
    )
    down_sampling: Literal["residual_block", "conv", "gvto_v1", "gvto_v2"] = "residual_block"
    bottom: list[Literal["gvto", "residual_block"]] = ["gvto"]
    up_sampling: Literal["transposed_conv", "gvto_v1", "gvto_v2"] = "transposed_conv"
    skip: Literal["add", "concat"] = "add"
    decoder_blocks: int = Field(1, ge=0, description="residual blocks per decoder level, after the skip merge")
    head_kernel_size: Literal[1, 3] = 3
    head_bias: bool = True
    residual_output: bool = Field(False, description="output = input + head (CARE's offset)")
    sigma_head: bool = Field(False, description="a Laplace scale head for the probabilistic loss")
    softmax_attention: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> "GVTNetConfig":
        if len(self.encoder_blocks) != self.depth:
            raise ValueError(f"encoder_blocks needs one entry per level (depth {self.depth}), got {self.encoder_blocks}")
        if self.skip == "concat" and self.decoder_blocks == 0:
            raise ValueError("skip 'concat' needs decoder_blocks >= 1 to bring the channels back down")
        self._check_residual(self.residual_output)
        if self.base_channels % self.heads:
            raise ValueError(f"base_channels {self.base_channels} cannot be split into {self.heads} heads")
        return self

    def size_step(self) -> list[int]:
        """Each input axis must be a multiple of this."""
        return [2 ** (self.depth - 1)] * self.spatial_dims


class UNetFnetConfig(_SameSizeNetwork):
    """The pytorch_fnet U-Net of the label-free baseline."""

    architecture: Literal["unet_fnet"]
    depth: int = Field(4, ge=1, description="number of down-samplings")
    base_channels: int = Field(32, ge=1)

    def size_step(self) -> list[int]:
        return [2**self.depth] * self.spatial_dims


class UNetCareConfig(_SameSizeNetwork):
    """The CSBDeep CARE U-Net (residual, optionally probabilistic)."""

    architecture: Literal["unet_care"]
    depth: int = Field(2, ge=1, description="number of max-poolings")
    base_channels: int = Field(32, ge=1)
    convs_per_level: int = Field(2, ge=1)
    residual_output: bool = True
    sigma_head: bool = Field(False, description="CARE's probabilistic scale head")

    @model_validator(mode="after")
    def _consistent(self) -> "UNetCareConfig":
        self._check_residual(self.residual_output)
        return self

    def size_step(self) -> list[int]:
        return [2**self.depth] * self.spatial_dims


class ProjectionGVTNetConfig(_Strict):
    """3D->2D: the projection net (z-weighted mean) followed by a 2D GVTNet; output = projection + net."""

    architecture: Literal["gvtnet_projection"]
    projection_channels: int = Field(8, ge=1)
    projection_heads: int = Field(2, ge=1)
    projection_stages: int = Field(2, ge=1, description="(1,4,4) max-pools before the bottom GVTO")
    network: GVTNetConfig = GVTNetConfig(
        spatial_dims=2, depth=3, batch_norm=False, heads=2, encoder_blocks=[1, 1, 0], down_sampling="conv",
        up_sampling="gvto_v2", skip="concat", head_kernel_size=1, head_bias=False, residual_output=True,
    )

    @model_validator(mode="after")
    def _consistent(self) -> "ProjectionGVTNetConfig":
        if self.network.spatial_dims != 2 or self.network.in_channels != 1 or self.network.out_channels != 1:
            raise ValueError("the network after the projection must be a 2D GVTNet with 1 input and 1 output channel")
        if self.projection_channels % self.projection_heads:
            raise ValueError("projection_channels must be divisible by projection_heads")
        return self

    @property
    def input_dims(self) -> int:
        return 3

    @property
    def output_dims(self) -> int:
        return 2

    def size_step(self) -> list[int]:
        yx = math.lcm(4**self.projection_stages, self.network.size_step()[0])
        return [1, yx, yx]


ARCHITECTURES = ("gvtnet", "unet_fnet", "unet_care", "gvtnet_projection")

ModelConfig = Annotated[
    Union[GVTNetConfig, UNetFnetConfig, UNetCareConfig, ProjectionGVTNetConfig],
    Field(discriminator="architecture"),
]


Percentiles = tuple[Annotated[float, Field(ge=0, le=100)], Annotated[float, Field(ge=0, le=100)]]
# what CARE's prediction normalizes whole images with: CSBDeep's PercentileNormalizer() defaults, which the
# original GVTNets' prediction (--CARE_normalize) uses too
CARE_PREDICTION_PERCENTILES = (2.0, 99.8)


class DataConfig(_Strict):
    patch_size: list[Annotated[int, Field(ge=1)]] = Field([32, 64, 64], description="training patch, z y x (or y x)")
    batch_size: int = Field(16, ge=1, description="patches per step, over all processes together")
    max_images: Optional[int] = Field(None, ge=1, description="use only the first N training images (by name)")
    normalization: Literal["percentile", "zscore", "as_stored"] = Field(
        "percentile", description="per image: percentile range to [0, 1] (CARE), or zero mean unit variance (fnet); "
        "as_stored: CSBDeep .npz patches, normalized by create_patches, trained on as they are (set by train), "
        "and packaged with input_percentiles of the whole image (CARE's prediction: 2 / 99.8)"
    )
    input_percentiles: Percentiles = (0.1, 99.8)
    target_percentiles: Percentiles = (0.1, 99.8)
    val_fraction: float = Field(0.1, ge=0, lt=1, description="held-out share of the images when no --val is given")
    val_patches: int = Field(16, ge=1, description="fixed held-out patches for the validation loss")
    foreground_bias: float = Field(0.0, ge=0, le=1, description="chance a patch is the brightest of 8 candidates")
    resample_yx: float = Field(1.0, gt=0, le=16, description="training images are resized by this factor in y and x "
                               "when read (cubic spline, as pytorch_fnet's and the original GVTNets' Resizer)")
    pixel_size_yx: Optional[float] = Field(None, gt=0, description="micrometres per pixel in y and x that the network "
                                           "expects, declared by the package (the space axes' scale)")
    flips: bool = Field(False, description="random flips of each patch (the paper's GVTNets trained without)")
    rotations: bool = Field(False, description="random 90-degree rotations in the y-x plane (square patches only)")
    workers: int = Field(2, ge=0, description="DataLoader worker processes")

    @model_validator(mode="after")
    def _ordered(self) -> "DataConfig":
        for key in ("input_percentiles", "target_percentiles"):
            low, high = getattr(self, key)
            if not low < high:
                raise ValueError(f"{key} must be (low, high) with low < high, got {[low, high]}")
        return self


class TrainConfig(_Strict):
    steps: int = Field(100_000, ge=1)
    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    loss: Literal["mse", "mae", "laplace_nll"] = "mse"
    lr_decay_factor: float = Field(1.0, gt=0, le=1, description="staircase decay: lr *= factor every lr_decay_every")
    lr_decay_every: Optional[int] = Field(None, ge=1)
    grad_clip: Optional[float] = Field(None, gt=0, description="clip the gradient norm to this")
    amp: Literal["off", "bf16", "fp16"] = Field(
        "off", description="mixed precision: bf16 on CUDA or on CPUs with bfloat16 instructions, fp16 on CUDA only")
    channels_last: Union[Literal["auto"], bool] = Field(
        "auto", description="channels-last memory; auto: on for the CPU (faster with oneDNN), off on CUDA")
    seed: int = 0
    val_every: int = Field(1000, ge=1)
    checkpoint_every: int = Field(1000, ge=1)
    log_every: int = Field(50, ge=1, description="steps between rows of metrics.csv")
    val_max_images: int = Field(4, ge=1, description="whole held-out images scored (NRMSE, Pearson r) per validation")
    best_by: Literal["loss", "nrmse", "pearson_r"] = Field(
        "loss", description="which validation makes checkpoints/best.pt: the lowest loss (CARE's rule), the lowest "
                            "NRMSE or the highest Pearson r of the whole held-out images")

    @field_validator("amp", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        return "off" if value is False else value  # YAML 1.1 reads a bare `off` as false


class ExportConfig(_Strict):
    weight_formats: list[Literal["torchscript", "onnx", "pytorch_state_dict"]] = [
        "torchscript", "onnx", "pytorch_state_dict",
    ]
    onnx_opset: int = Field(17, ge=11, le=17, description="deepImageJ's ONNX runtime reads opset <= 17")
    authors: list[str] = Field([], description='"Name;affiliation;orcid" (affiliation and ORCID optional)')
    license: str = Field("MIT", description="SPDX license id of the packaged model")
    tags: list[str] = Field([], description="extra bioimage.io tags, e.g. the imaged structure ('nuclei')")


class Provenance(_Strict):
    """What ``train`` records about a run; ignored when a spec is trained."""

    data: str = ""
    train_images: int = 0
    val_images: int = 0
    versions: dict[str, str] = {}
    command: str = ""
    imported_from: str = Field("", description="for `import-tf` runs: the original TF checkpoint, its files' sha256")


class Spec(_Strict):
    """A whole spec file."""

    name: str = Field(..., min_length=1)
    description: str = ""
    model: ModelConfig = GVTNetConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    export: ExportConfig = ExportConfig()
    provenance: Optional[Provenance] = None

    @model_validator(mode="before")
    @classmethod
    def _default_architecture(cls, raw: object) -> object:
        # The model section may leave out its architecture; the default is the GVTNet.
        if isinstance(raw, dict) and isinstance(raw.get("model"), dict) and "architecture" not in raw["model"]:
            raw = {**raw, "model": {"architecture": "gvtnet", **raw["model"]}}
        return raw

    @model_validator(mode="after")
    def _patch_fits_model(self) -> "Spec":
        patch, step = self.data.patch_size, self.model.size_step()
        if len(patch) != self.model.input_dims:
            raise ValueError(
                f"data.patch_size {patch} has {len(patch)} axes but the model takes {self.model.input_dims}D input"
            )
        if any(p % s for p, s in zip(patch, step)):
            raise ValueError(f"data.patch_size {patch} must be a multiple of the network's step {step} on every axis")
        if self.data.rotations and patch[-1] != patch[-2]:
            raise ValueError(f"data.rotations needs square y-x patches, got {patch}; set data.rotations: false")
        if self.train.loss == "laplace_nll" and not getattr(self.model, "sigma_head", False):
            raise ValueError("train.loss 'laplace_nll' needs a model with sigma_head: true")
        return self
