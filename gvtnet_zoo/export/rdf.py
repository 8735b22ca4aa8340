"""The package's description (bioimage.io model format 0.5), built with bioimageio.spec's public classes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from bioimageio.spec.model import v0_5 as bio

from ..config import Spec
from ..errors import UserError

SPACE_AXES = ("z", "y", "x")
INPUT_ID, OUTPUT_ID = bio.TensorId("input"), bio.TensorId("output")


@dataclass
class PackageFiles:
    """Everything the description points at, as paths in a working folder."""

    test_input: Path
    test_output: Path
    sample_input: Path
    sample_output: Path
    readme: Path
    cover: Path
    weights: dict[str, Path]  # weight format -> file
    architecture: Path
    attachments: list[Path]


def _axes_ids(dims: int) -> list[bio.AxisId]:
    return [bio.AxisId(a) for a in SPACE_AXES[3 - dims:]]


def preprocessing(spec: Spec) -> list[Any]:
    """The run's input normalization as zoo operators, per sample over the space axes."""
    axes = _axes_ids(spec.model.input_dims)
    if spec.data.normalization == "zscore":
        return [bio.ZeroMeanUnitVarianceDescr(kwargs=bio.ZeroMeanUnitVarianceKwargs(axes=axes, eps=1e-6))]
    low, high = spec.data.input_percentiles
    return [bio.ScaleRangeDescr(kwargs=bio.ScaleRangeKwargs(axes=axes, min_percentile=low, max_percentile=high,
                                                            eps=1e-6))]


def _pixel_size(spec: Spec, axis: object, halo: dict[str, int]) -> dict[str, Any]:
    """The y and x axes' pixel size when the spec declares one (the label-free models expect 0.29 um), as a float
    that bioimageio.spec's halo arithmetic keeps exact (``halo_exact_scale``)."""
    if spec.data.pixel_size_yx is None or str(axis) not in ("y", "x"):
        return {}
    halos = [halo.get(a, 0) for a in ("y", "x")]
    return {"scale": halo_exact_scale(spec.data.pixel_size_yx, halos), "unit": "micrometer"}


def halo_exact_scale(scale: float, halos: Sequence[int]) -> float:
    """``scale`` or the nearest float to it (a few ulps away) for which ``halo * it / it`` is exactly ``halo`` for
    every halo: bioimageio.spec infers an input halo as the output's halo * scale / the input's scale and refuses a
    non-integer (24 * 0.4 / 0.4 is 24.000000000000004). Input and output declare this one value."""
    above = below = scale
    for _ in range(4096):
        for candidate in (above, below):
            if all(h * candidate / candidate == h for h in halos):
                return candidate
        above, below = math.nextafter(above, math.inf), math.nextafter(below, 0.0)
    raise UserError(f"data.pixel_size_yx {scale}: no float near it gives bioimageio.spec integer halos "
                    f"({', '.join(map(str, halos))}); round the pixel size to a few digits")


def _input(spec: Spec, files: PackageFiles, halo: dict[str, int]) -> bio.InputTensorDescr:
    """Space axes take any multiple of the step that leaves at least one voxel inside the output halo."""
    step = spec.model.size_step()
    space = [bio.SpaceInputAxis(id=a, size=bio.ParameterizedSize(min=s + 2 * halo.get(str(a), 0), step=s),
                                **_pixel_size(spec, a, halo))
             for a, s in zip(_axes_ids(spec.model.input_dims), step)]
    return bio.InputTensorDescr(
        id=INPUT_ID,
        description="raw image; normalized per image by the preprocessing",
        axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=[bio.Identifier("raw")]), *space],
        test_tensor=bio.FileDescr(source=files.test_input),
        sample_tensor=bio.FileDescr(source=files.sample_input),
        data=bio.IntervalOrRatioDataDescr(type="float32"),
        preprocessing=preprocessing(spec),
    )


def _output(spec: Spec, files: PackageFiles, halo: dict[str, int]) -> bio.OutputTensorDescr:
    space = []
    for a in _axes_ids(spec.model.output_dims):
        size = bio.SizeReference(tensor_id=INPUT_ID, axis_id=a)
        h = halo.get(str(a), 0)
        scale = _pixel_size(spec, a, halo)
        space.append(bio.SpaceOutputAxisWithHalo(id=a, halo=h, size=size, **scale) if h
                     else bio.SpaceOutputAxis(id=a, size=size, **scale))
    return bio.OutputTensorDescr(
        id=OUTPUT_ID,
        description="prediction on the scale of the normalized training targets",
        axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=[bio.Identifier("prediction")]),
              *space],
        test_tensor=bio.FileDescr(source=files.test_output),
        sample_tensor=bio.FileDescr(source=files.sample_output),
        data=bio.IntervalOrRatioDataDescr(type="float32"),
    )


def _weights(files: PackageFiles, kwargs: dict[str, Any], torch_version: str, opset: int) -> bio.WeightsDescr:
    """One entry without parent: the state dict when packaged, else the first format given."""
    formats = list(files.weights)
    root = "pytorch_state_dict" if "pytorch_state_dict" in formats else formats[0]
    parent = lambda fmt: None if fmt == root else root  # noqa: E731
    entries: dict[str, Any] = {}
    version = bio.Version(torch_version)
    if "pytorch_state_dict" in files.weights:
        entries["pytorch_state_dict"] = bio.PytorchStateDictWeightsDescr(
            source=files.weights["pytorch_state_dict"], pytorch_version=version,
            architecture=bio.ArchitectureFromFileDescr(source=files.architecture,
                                                       callable=bio.Identifier("build_network"), kwargs=kwargs),
        )
    if "torchscript" in files.weights:
        entries["torchscript"] = bio.TorchscriptWeightsDescr(
            source=files.weights["torchscript"], pytorch_version=version, parent=parent("torchscript"))
    if "onnx" in files.weights:
        entries["onnx"] = bio.OnnxWeightsDescr(source=files.weights["onnx"], opset_version=opset,
                                               parent=parent("onnx"))
    return bio.WeightsDescr(**entries)


def _author(text: str) -> bio.Author:
    name, affiliation, orcid = (text.split(";") + ["", ""])[:3]
    return bio.Author(name=name.strip(), affiliation=affiliation.strip() or None,
                      orcid=bio.OrcidId(orcid.strip()) if orcid.strip() else None)


def build_description(
    spec: Spec,
    files: PackageFiles,
    *,
    name: str,
    description: str,
    authors: Sequence[str],
    license_id: str,
    tags: Sequence[str],
    citations: Sequence[dict[str, str]],
    network_kwargs: dict[str, Any],
    halo: dict[str, int],
    parameters: int,
    tolerance: tuple[float, float],
    torch_version: str,
    task: str,
    context: Optional[dict[str, Any]] = None,
) -> bio.ModelDescr:
    """The ModelDescr of a gvtnet-zoo package (not yet validated against its files' content).

    ``halo`` is the receptive field's per space axis; the outputs declare y's and x's only (a declared
    z halo would make every input thicker than twice it), and config.gvtnet_zoo.halo records all of
    them for gvtnet-zoo's own tiler.
    """
    declared = {axis: h for axis, h in halo.items() if axis in ("y", "x")}
    config = bio.Config(
        bioimageio=bio.BioimageioConfig(
            reproducibility_tolerance=[bio.ReproducibilityTolerance(relative_tolerance=tolerance[0],
                                                                    absolute_tolerance=tolerance[1])],
            model_parameter_count=parameters,
            architecture_type=spec.model.architecture,
            task=task,
        ),
        # deepImageJ: one model input, tiling allowed (tiles of valid size, halo cropped)
        deepimagej={"pyramidal_model": False, "allow_tiling": True, "model_keys": None},
        # context: each GVTO's K^T V / N at package time, for `predict --context-report` (predict/context_report.py)
        gvtnet_zoo={"spec": spec.model_dump(mode="json", exclude={"provenance"}), "halo": halo,
                    **({"context": context} if context else {})},
    )
    return bio.ModelDescr(
        name=name,
        description=description,
        authors=[_author(a) for a in authors],
        cite=[bio.CiteEntry(text=c["text"], doi=bio.Doi(c["doi"])) for c in citations],
        license=bio.LicenseId(license_id),
        tags=list(tags),
        documentation=bio.FileDescr(source=files.readme),
        covers=[bio.FileDescr(source=files.cover)],
        attachments=[bio.FileDescr(source=p) for p in files.attachments],
        inputs=[_input(spec, files, declared)],
        outputs=[_output(spec, files, declared)],
        weights=_weights(files, {"config": network_kwargs}, torch_version, spec.export.onnx_opset),
        config=config,
    )
