"""Loading a zoo package for prediction: which weights run, on which device, and what is safe to run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..devices import onnx_cuda_loads, torch_cuda_available
from ..errors import UserError
from ..trust import architecture_origin, read_description, refuse_downloads
from .tensors import tensor_id

PREFERENCE = ("onnx", "torchscript", "pytorch_state_dict")  # state dicts run package code: last, and only if asked


@dataclass
class ZooModel:
    descr: Any  # bioimageio.spec ModelDescr (format 0.4 or 0.5)
    weight_format: str
    devices: list[str]
    device_label: str

    @property
    def input_ids(self) -> list[str]:
        return [tensor_id(t) for t in self.descr.inputs]

    @property
    def output_ids(self) -> list[str]:
        return [tensor_id(t) for t in self.descr.outputs]


def _available(descr: Any) -> list[str]:
    return [f for f in PREFERENCE if getattr(descr.weights, f, None) is not None]


def choose_weights(available: list[str], request: str, source: str | Path = "the model",
                   code_origin: Optional[str] = None, one_thread: bool = False) -> str:
    """The weights to run when none were asked for: ONNX, else TorchScript; state dicts never by default.

    On a GPU request (auto or cuda) TorchScript on the GPU beats ONNX on the CPU, so it is taken when
    onnxruntime's CUDA provider does not load here but torch's CUDA works. ``one_thread`` (a process among
    several on one machine, e.g. a Dask worker): TorchScript on the CPU, which keeps to OMP_NUM_THREADS;
    onnxruntime sessions as bioimageio.core creates them take every core.
    """
    runnable = [f for f in available if f != "pytorch_state_dict"]
    if not runnable:
        raise UserError(f"{source} only has pytorch_state_dict weights, whose network is Python code from "
                        f"{code_origin or 'the package'}; if you trust it, run it with --weight-format pytorch_state_dict")
    wants_gpu = request == "auto" or request.startswith("cuda")
    if runnable[0] == "onnx" and "torchscript" in runnable:
        if wants_gpu and not onnx_cuda_loads() and torch_cuda_available():
            return "torchscript"
        if one_thread and not (wants_gpu and (onnx_cuda_loads() or torch_cuda_available())):
            return "torchscript"
    return runnable[0]


def _devices(weight_format: str, request: str, local_rank: int) -> tuple[list[str], str]:
    if weight_format == "onnx":
        if request == "cpu":
            return ["CPUExecutionProvider"], "CPU (onnxruntime)"
        if onnx_cuda_loads():
            return ["CUDAExecutionProvider"], "CUDA (onnxruntime)"
        if request.startswith("cuda"):
            raise UserError("--device cuda: onnxruntime's CUDA provider does not load here; use --device cpu "
                            "or --weight-format torchscript")
        return ["CPUExecutionProvider"], "CPU (onnxruntime)"
    from ..devices import choose_device  # torch: only for the torch weight formats

    device = str(choose_device(request, local_rank))
    return [device], device


def load_zoo_model(source: str | Path, weight_format: Optional[str] = None, device: str = "auto",
                   echo: Any = print, local_rank: int = 0, allow_download: bool = False, one_thread: bool = False) -> ZooModel:
    """Read and validate a package (zip, folder or rdf.yaml) and choose its weights and devices.

    A package naming remote files is refused unless ``allow_download`` (trust.py).
    """
    descr = read_description(source)
    refuse_downloads(descr, source, allow_download)
    available = _available(descr)
    if weight_format is not None:
        if weight_format not in available:
            raise UserError(f"{source} has no {weight_format} weights; it has {', '.join(available) or 'none we can run'}")
        chosen = weight_format
    else:
        chosen = choose_weights(available, device, source, architecture_origin(descr), one_thread)
        if one_thread and chosen == "torchscript" and available[0] == "onnx":
            echo("note: TorchScript weights, one thread per worker (onnxruntime would take every core in each); "
                 "--weight-format chooses")
    if chosen == "pytorch_state_dict":
        echo(f"note: running the network code from {architecture_origin(descr)} "
             "because --weight-format pytorch_state_dict was asked for")
    _check_weights_file(descr, chosen, source)
    devices, label = _devices(chosen, device, local_rank)
    return ZooModel(descr, chosen, devices, label)


def _check_weights_file(descr: Any, weight_format: str, source: str | Path) -> None:
    """The chosen weights file is in the package and has the sha256 its description states, checked before any
    output is made (bioimageio.core finds out only when it loads them, deep in a run)."""
    from bioimageio.spec.utils import get_reader

    entry = getattr(descr.weights, weight_format)
    if str(entry.source).startswith(("http://", "https://")):  # remote: checked when downloaded (--allow-download)
        return
    name = getattr(entry.source, "name", None) or str(entry.source)
    try:
        get_reader(entry)  # opens it and compares its sha256 with the description's (closed when dropped)
    except (OSError, ValueError) as err:
        problem = "fails its sha256 check" if "SHA256" in str(err) else "is missing"
        raise UserError(f"{source}: its {weight_format} weights file {name} {problem}; the package is damaged or was "
                        "altered: get it anew, or choose other weights with --weight-format") from None


def _missing_module(err: BaseException) -> Optional[str]:
    """The name of the module a ModuleNotFoundError in ``err``'s chain of causes could not find."""
    while err is not None:
        if isinstance(err, ModuleNotFoundError):
            return err.name
        err = err.__cause__ or err.__context__
    return None


def create_pipeline(model: ZooModel) -> Any:
    """bioimageio.core's prediction pipeline; a state dict whose code needs a missing library is one UserError."""
    from bioimageio.core import create_prediction_pipeline

    try:
        return create_prediction_pipeline(bioimageio_model=model.descr, weight_format=model.weight_format,
                                          devices=model.devices)
    except ImportError as err:  # bioimageio.core wraps the ModuleNotFoundError of the package's file
        missing = _missing_module(err)
        if missing is None:
            raise
        weights = getattr(model.descr.weights, model.weight_format, None)
        environment = getattr(getattr(weights, "dependencies", None), "source", None) or getattr(weights, "dependencies", None)
        where = f"the package's environment file {environment}" if environment else "the package's documentation"
        raise UserError(f"the {model.weight_format} network needs the Python module {missing!r}, which is not installed "
                        f"here; install what {where} lists, or use other weights (--weight-format)") from None
