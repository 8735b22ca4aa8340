"""``gvtnet-zoo package``: a trained run as a bioimage.io package that passes the zoo's own tests.

Weights are checked against the eager network before they are written; the zip is built in a
working folder, tested with bioimageio.core for every weight format, and only then renamed to
the requested path. A package that fails is kept as NAME.failed.zip and the failures are listed.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..atomic import refuse_to_replace
from ..config import DataConfig, Spec
from ..data.normalization import normalize_input
from ..errors import PackageFailed, UserError
from ..image_io.images import read_image, write_tiff
from ..models import build_model, count_parameters
from ..models.halo import spec_halo, tiling_halo
from ..predict.context_report import context_record
from ..spec_loading import load_spec
from ..train.checkpoint import check_network_revision, load_checkpoint
from ..train.run_dir import RunDir
from .architecture import network_kwargs, write_architecture
from .compat import plain_file_references
from .cover import write_cover
from .model_card import TASKS, citations, origin_texts, refuse_small_sample, render_model_card, task_of
from .publish import placeholder_authors
from .rdf import PackageFiles, build_description
from .weights import export_onnx, script_model
from .zoo_test import WEIGHT_FORMATS, FormatResult, format_results, run_zoo_tests

MAX_TEST_SIZE = {2: (512, 512), 3: (64, 256, 256)}  # test tensors stay small enough to ship and to run in Fiji
CHECK_TOLERANCE = 1e-4  # each weight file against the eager network, relative to the output's range
# relative, and times the output's maximum as the absolute part (the spec caps it at 1% of that maximum
# and skips a zero absolute tolerance, which is what an output without positive values gets)
REPRODUCIBILITY_TOLERANCE = 1e-3


def _load_run(run: RunDir, checkpoint: str) -> tuple[Spec, nn.Module, dict]:
    if not run.spec.is_file():
        raise UserError(f"{run.root} is not a training run (no spec.yaml); give the --out folder of gvtnet-zoo train")
    spec = load_spec(run.spec)
    path = run.best if checkpoint == "best" else run.last
    if not path.is_file():
        other = "last" if checkpoint == "best" else "best"
        raise UserError(f"{path} not found; train the run to a checkpoint, or use --checkpoint {other}")
    state = load_checkpoint(path)
    check_network_revision(state, spec, path)
    model = build_model(spec)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError, TypeError) as err:
        raise UserError(f"{path} does not hold weights of the run's network ({str(err).splitlines()[0][:200]}); "
                        "package the run that wrote it") from None
    return spec, model.eval(), state


def _centre_crop(image: np.ndarray, step: Sequence[int], dims: int) -> np.ndarray:
    """The largest centred crop whose axes are multiples of the step and within MAX_TEST_SIZE."""
    limits = MAX_TEST_SIZE[dims]
    sizes = [min(size, limit) // s * s for size, limit, s in zip(image.shape, limits, step)]
    if min(sizes) == 0:
        raise UserError(f"the sample image {image.shape} is smaller than the network's step {list(step)}; "
                        "give a larger --sample")
    window = tuple(slice((size - crop) // 2, (size - crop) // 2 + crop) for size, crop in zip(image.shape, sizes))
    return image[window]


def _test_image(run: RunDir, spec: Spec, sample: Optional[Path]) -> np.ndarray:
    path = sample if sample is not None else run.validation_sample[0]
    if sample is None and not path.is_file():
        raise UserError(f"{run.root} has no validation sample; give an input image with --sample")
    image = read_image(path)
    if image.ndim != spec.model.input_dims:
        raise UserError(f"the sample {path} has {image.ndim} axes; the network takes {spec.model.input_dims}D images")
    if not np.isfinite(image).all():
        raise UserError(f"the sample {path} contains NaN or Inf values; give another --sample")
    refuse_small_sample(path, image.shape, spec.model.size_step(), spec_halo(spec))
    return _centre_crop(image, spec.model.size_step(), spec.model.input_dims)


def _load_architecture(path: Path) -> Callable[..., nn.Module]:
    module_spec = importlib.util.spec_from_file_location("gvtnet_zoo_network_check", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.build_network


def _check(name: str, produced: np.ndarray, expected: np.ndarray) -> None:
    scale = max(1.0, float(np.abs(expected).max()))
    worst = float(np.abs(produced - expected).max()) if produced.shape == expected.shape else float("inf")
    if worst > CHECK_TOLERANCE * scale:
        raise PackageFailed(f"the {name} weights give outputs {produced.shape} differing from the network's "
                            f"{expected.shape} by up to {worst:.3g}; not packaged")


def _write_weights(model: nn.Module, spec: Spec, formats: Sequence[str], work: Path, x: torch.Tensor,
                   expected: np.ndarray) -> tuple[dict[str, Path], Path]:
    """Each format written and checked against ``expected`` (the eager output for ``x``)."""
    weights: dict[str, Path] = {}
    architecture = write_architecture(work / "gvtnet_zoo_network.py")
    if "pytorch_state_dict" in formats:
        weights["pytorch_state_dict"] = work / "weights.pt"
        torch.save(model.state_dict(), weights["pytorch_state_dict"])
        rebuilt = _load_architecture(architecture)(network_kwargs(spec.model)).eval()
        rebuilt.load_state_dict(torch.load(weights["pytorch_state_dict"], weights_only=True))
        with torch.no_grad():
            _check("pytorch_state_dict", rebuilt(x).numpy(), expected)
    if "torchscript" in formats:
        weights["torchscript"] = work / "weights_torchscript.pt"
        script_model(model).save(str(weights["torchscript"]))
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.jit.load.*deprecated.*")
            _check("torchscript", torch.jit.load(str(weights["torchscript"])).eval()(x).numpy(), expected)
    if "onnx" in formats:
        import onnxruntime

        weights["onnx"] = export_onnx(model, x, work / "weights.onnx", spec.export.onnx_opset)
        session = onnxruntime.InferenceSession(str(weights["onnx"]), providers=["CPUExecutionProvider"])
        _check("onnx", session.run(None, {"input": x.numpy()})[0], expected)
    return weights, architecture


def _card_values(spec: Spec, run: RunDir, parameters: int, step: Sequence[int], halo: dict[str, int],
                 formats: Sequence[str], name: str, description: str) -> dict[str, str]:
    task = task_of(spec)
    data = spec.data
    if data.normalization == "zscore":
        normalization = "zero mean, unit variance (`zero_mean_unit_variance`), input and target"
        target_scale = "zero mean, unit variance per training image"
    elif data.normalization == "as_stored":
        normalization = (f"trained on CSBDeep patches as stored (normalized by CSBDeep's create_patches with "
                         f"percentiles of each whole source and target image); here each whole input image is scaled "
                         f"from its {data.input_percentiles[0]} / {data.input_percentiles[1]} percentiles to 0 / 1 "
                         "(`scale_range`), as CARE's own prediction does")
        target_scale = "the CSBDeep training targets' normalized scale"
    else:
        normalization = (f"input percentiles {data.input_percentiles[0]} / {data.input_percentiles[1]} to 0 / 1 "
                         f"(`scale_range`); targets {data.target_percentiles[0]} / {data.target_percentiles[1]}")
        target_scale = f"the targets' {data.target_percentiles[0]} / {data.target_percentiles[1]} percentiles at 0 / 1"
    axes = "z, y, x" if spec.model.input_dims == 3 else "y, x"
    return {
        "name": name, "description": description, "task_text": TASKS[task], "spec_name": spec.name,
        "architecture_title": "GVTNet" if "gvtnet" in spec.model.architecture else "U-Net",
        "architecture_line": spec.model.architecture + (", projection net + 2D GVTNet"
                                                       if spec.model.architecture == "gvtnet_projection" else ""),
        "parameters": f"{parameters:,}", "step": " x ".join(map(str, step)), "halo": f"{halo['y']} (y) x {halo['x']} (x)",
        "min_yx": str(step[-1] + 2 * halo["x"]),
        "tiling_text": (f"tiling is allowed: tiles in y and x that are multiples of {' x '.join(map(str, step))} and at "
                        f"least {step[-1] + 2 * halo['x']}, with the whole z extent"
                        if "gvtnet" not in spec.model.architecture else
                        "give it the whole image (a tile as large as the image): a GVTNet's attention sees the whole "
                        "input, so plain tiles change every voxel of its output; `gvtnet-zoo predict` tiles it "
                        "exactly (global context)"),
        "input_text": f"one channel, {spec.model.input_dims}D ({axes}), float32",
        "output_text": f"one channel, {spec.model.output_dims}D" + (" (z projected away)" if task == "surface-projection" else ""),
        "weight_formats": ", ".join(formats), **origin_texts(spec, run.metrics),
        "loss": spec.train.loss, "lr": str(spec.train.lr), "betas": str(list(spec.train.betas)),
        "steps": f"{spec.train.steps:,}" + (" (gvtnet-zoo's spec of the paper's recipe, not a record of how this "
                                            "checkpoint was trained)" if spec.provenance and spec.provenance.imported_from
                                            else ""), "batch_size": str(data.batch_size), "patch": "x".join(map(str, data.patch_size)),
        "normalization_text": normalization, "pixel_size_text": _pixel_size_text(data), "target_scale": target_scale,
        "citations": "\n".join(f"- {c['text']} doi:{c['doi']}" for c in citations()),
    }


def _pixel_size_text(data: DataConfig) -> str:
    resized = f"training images were resized by {data.resample_yx:g} in y and x" if data.resample_yx != 1 else ""
    if data.pixel_size_yx is None:
        return resized or "that of the training images (not resampled)"
    return (f"{data.pixel_size_yx:g} um in y and x (declared as the axes' scale; {resized or 'not resampled'}); resample "
            f"your images to {data.pixel_size_yx:g} um per pixel before prediction, e.g. images at 0.108 um by "
            f"{0.108 / data.pixel_size_yx:.5f} (bioimage.io has no resampling step; `gvtnet-zoo predict --pixel-size 0.108` "
            "resizes around the package)")


def package_run(run_path: str | Path, out: str | Path, checkpoint: str = "best",
                weight_formats: Optional[Sequence[str]] = None, name: Optional[str] = None,
                description: Optional[str] = None, authors: Sequence[str] = (), license_id: Optional[str] = None,
                sample: Optional[str | Path] = None, overwrite: bool = False,
                echo: Callable[[str], None] = print,
                tested: Callable[[list[FormatResult]], None] = lambda results: None) -> Path:
    """Write ``out`` (a .zip) from the run folder ``run_path``; raises UserError or PackageFailed.

    An existing ``out`` (or the NAME.failed.zip a failing package is kept as) is replaced only with ``overwrite``.
    ``tested`` hears the zoo's test result per weight format, pass or fail.
    """
    run, out = RunDir(Path(run_path)), Path(out)
    if out.suffix != ".zip":
        raise UserError(f"--out {out} must end in .zip")
    if not out.parent.is_dir():
        raise UserError(f"the folder {out.parent} for --out does not exist; create it first")
    refuse_to_replace([out, _failed_path(out)], overwrite)
    formats = list(weight_formats or run_formats(run))
    unknown = sorted(set(formats) - set(WEIGHT_FORMATS))
    if unknown or not formats:
        raise UserError(f"unknown weight format(s) {unknown or formats}; use any of {', '.join(WEIGHT_FORMATS)}")
    spec, model, _ = _load_run(run, checkpoint)
    raw = _test_image(run, spec, Path(sample) if sample else None)
    x = torch.from_numpy(normalize_input(raw, spec.data))[None, None]
    with torch.no_grad():
        expected = model(x).numpy()
    step = spec.model.size_step()
    halo = tiling_halo(model, tuple(x.shape), step)
    smallest = {axis: step[-2 + i] + 2 * halo[axis] for i, axis in enumerate("yx")}
    if any(raw.shape[-2 + i] < smallest[axis] for i, axis in enumerate("yx")):
        raise UserError(f"the test image {raw.shape} is smaller than the package's smallest tile "
                        f"(y {smallest['y']}, x {smallest['x']}: one step plus twice the halo); give a larger --sample")
    parameters = count_parameters(model)
    held_out = run.validation_sample[0]  # the run's own held-out image, else the package's sample
    imported = bool(spec.provenance and spec.provenance.imported_from)  # import-tf: no training data of its own here
    context = None if imported else context_record(
        model, spec, read_image(held_out) if held_out.is_file() else raw,
        "the run's held-out sample image" if held_out.is_file() else "the package's sample image")
    name = name or spec.name
    description = description or spec.description or f"{spec.model.architecture} trained with gvtnet-zoo"

    with tempfile.TemporaryDirectory(prefix="gvtnet-zoo-package-") as tmp:
        work = Path(tmp)
        weights, architecture = _write_weights(model, spec, formats, work, x, expected)
        files = PackageFiles(
            test_input=work / "test_input.npy", test_output=work / "test_output.npy",
            sample_input=work / "sample_input.tif", sample_output=work / "sample_output.tif",
            readme=work / "README.md", cover=work / "cover.png", weights=weights, architecture=architecture,
            attachments=[work / "spec.yaml"] + ([work / "metrics.csv"] if run.metrics.exists() else []),
        )
        np.save(files.test_input, raw[None, None].astype(np.float32))
        np.save(files.test_output, expected.astype(np.float32))
        write_tiff(files.sample_input, raw[None, None].astype(np.float32))
        write_tiff(files.sample_output, expected.astype(np.float32))
        shutil.copy(run.spec, work / "spec.yaml")
        if run.metrics.exists():
            shutil.copy(run.metrics, work / "metrics.csv")
        write_cover(files.cover, raw, expected[0, 0], ("input", f"{name} output"))
        files.readme.write_text(render_model_card(_card_values(spec, run, parameters, step, halo, formats, name,
                                                               description)))
        descr = build_description(
            spec, files, name=name, description=description, authors=list(authors) or spec.export.authors,
            license_id=license_id or spec.export.license, citations=citations(), network_kwargs=network_kwargs(spec.model),
            halo=halo, parameters=parameters,
            tolerance=(REPRODUCIBILITY_TOLERANCE, REPRODUCIBILITY_TOLERANCE * max(0.0, float(expected.max()))),
            torch_version=torch.__version__.split("+")[0], task=task_of(spec),
            tags=_tags(spec) + list(spec.export.tags), context=context,
        )
        built = _save(descr, work / "package.zip")
        plain_file_references(built)
        results = run_zoo_tests(built, formats)
        tested(results)
        passed = all(r.passed for r in results)
        final = out if passed else _failed_path(out)
        shutil.move(str(built), str(final.with_name(f".{final.name}.tmp")))
        os.replace(final.with_name(f".{final.name}.tmp"), final)
    echo(f"bioimageio.core test_model on {final.name}:\n{format_results(results)}")
    placeholder = placeholder_authors(list(authors) or spec.export.authors)
    if passed and placeholder:  # package passes; upload would fail on it later
        echo(f"warning: the author {placeholder!r} is a placeholder, which `gvtnet-zoo upload` refuses; package again "
             f"with --author \"Name;affiliation;orcid\" --overwrite before uploading")
    if not passed:
        raise PackageFailed(f"the package failed the zoo's tests and was kept as {final} for inspection")
    echo(f"wrote {final} ({final.stat().st_size / 1e6:.1f} MB; {', '.join(formats)})")
    return final


def _failed_path(out: Path) -> Path:
    return out.with_name(out.name[: -len(".zip")] + ".failed.zip")


def run_formats(run: RunDir) -> list[str]:
    """The weight formats a run's spec asks for."""
    return list(load_spec(run.spec).export.weight_formats) if run.spec.is_file() else list(WEIGHT_FORMATS)


def _tags(spec: Spec) -> list[str]:
    task = task_of(spec)
    modality = {"label-free-prediction": "transmitted-light-microscopy"}.get(task, "fluorescence-light-microscopy")
    dims = "3d" if spec.model.input_dims == 3 else "2d"
    network = "gvtnet" if "gvtnet" in spec.model.architecture else "unet"
    return [modality, dims, task, "image-restoration", "pytorch", network, "gvtnet-zoo"]


def _save(descr: object, path: Path) -> Path:
    from bioimageio.spec import save_bioimageio_package

    return Path(save_bioimageio_package(descr, output_path=path))
