"""``gvtnet-zoo import-tf``: an original GVTNets TF1 checkpoint as a gvtnet-zoo run folder.

Every model variable of the checkpoint is mapped onto the network a spec builds (names.py); optimizer
slots and counters are ignored; a missing or unexpected variable, a shape that differs, or a weight that is
not floating point is refused in one line before any tensor is read or anything written, and so is an
--out that is, contains or lies inside the checkpoint's files or the sample (--overwrite would delete
them). The run folder holds the resolved spec (with the original's input normalization and where the
weights came from), checkpoints/best.pt and last.pt, and a sample image when one is given (refused when smaller
than the package takes; without one, a note says what ``package --sample`` needs), so ``gvtnet-zoo package RUN``
packages it like a trained run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from .. import __version__
from ..atomic import refuse_to_touch_inputs
from ..config import Provenance, Spec
from ..data.normalization import trained_on_csbdeep_patches
from ..errors import UserError
from ..export.model_card import refuse_small_sample, size_text, task_of
from ..image_io.images import read_image, write_tiff
from ..models import build_model
from ..models.halo import spec_halo
from ..spec_loading import dump_spec
from ..train.checkpoint import NETWORK_REVISION, save_checkpoint
from ..train.run_dir import RunDir
from .checkpoint import TFCheckpoint, shape_text
from .names import tf_variable_map

# TF1 optimizer state and counters: in the published checkpoints, Adam's slots and step powers
_SLOT_SUFFIXES = ("/Adam", "/Adam_1", "/Momentum", "/RMSProp", "/RMSProp_1", "/ExponentialMovingAverage")
_COUNTERS = {"global_step", "beta1_power", "beta2_power"}
ORIGINAL = ("the original GVTNets code and weights by Zhengyang Wang, Yaochen Xie and Shuiwang Ji "
            "(github.com/divelab/GVTNets, GPL-3.0)")


def is_model_variable(name: str) -> bool:
    """False for optimizer slots and training counters."""
    return name not in _COUNTERS and not name.endswith(_SLOT_SUFFIXES)


def _tf_shape(shape: torch.Size) -> tuple[int, ...]:
    """The TF shape of a PyTorch weight: kernels (b, a, *k) are stored (*k, a, b), the rest as is."""
    # conv (*k, in, out) -> (out, in, *k); transposed conv (*k, out, in) -> (in, out, *k)
    return (*shape[2:], shape[1], shape[0]) if len(shape) >= 3 else tuple(shape)


def _to_torch(value: np.ndarray) -> torch.Tensor:
    """A TF variable (of the shape ``_tf_shape`` gives) as its PyTorch tensor."""
    if value.ndim >= 3:
        value = np.transpose(value, (value.ndim - 1, value.ndim - 2, *range(value.ndim - 2)))
    return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))


def load_tf_weights(model: torch.nn.Module, checkpoint: TFCheckpoint) -> None:
    """Copy every model variable of ``checkpoint`` into ``model`` (a GVTNet or projection GVTNet), in place."""
    try:
        mapping = tf_variable_map(model)
    except ValueError as err:
        raise UserError(f"{err}") from None
    present = {name for name in checkpoint.entries if is_model_variable(name)}
    wanted = set(mapping.values())
    missing, unexpected = sorted(wanted - present), sorted(present - wanted)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UserError(f"{checkpoint.prefix} lacks variable {missing[0]}{more} of the spec's network; give the spec "
                        "of the checkpoint's task (gvtnet-label-free, gvtnet-care-*, gvtnet-flywing-projection)")
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise UserError(f"{checkpoint.prefix} holds variable {unexpected[0]}{more}, which the spec's network does not "
                        "have; give the spec of the checkpoint's task")
    state = model.state_dict()
    for key, name in mapping.items():  # every entry and shape before any tensor is read: nothing large is read in vain
        found, wanted_shape = checkpoint.check(name, floating=True).shape, _tf_shape(state[key].shape)
        if found != wanted_shape:
            raise UserError(f"variable {name} has shape {shape_text(found)} in the checkpoint, but the spec's network "
                            f"needs {list(wanted_shape)} there; is the spec the checkpoint's (width, depth, heads, 2D/3D)?")
    values = {key: _to_torch(checkpoint.read(name, floating=True)) for key, name in mapping.items()}
    model.load_state_dict(values, strict=False)  # num_batches_tracked keeps its zero: TF has no such counter


def _imported_spec(spec: Spec, checkpoint: TFCheckpoint) -> Spec:
    """The spec with the original's input normalization and the checkpoint's identity recorded."""
    if task_of(spec) != "label-free-prediction" and spec.data.normalization != "as_stored":
        spec = trained_on_csbdeep_patches(spec)  # CARE and Flywing were trained on CSBDeep's normalized patches
    sums = ", ".join(f"{name} sha256 {digest}" for name, digest in checkpoint.sha256s().items())
    export = spec.export.model_copy(update={
        "authors": spec.export.authors or ["Zhengyang Wang", "Yaochen Xie", "Shuiwang Ji"],
        "license": "GPL-3.0-only" if spec.export.license == "MIT" else spec.export.license,
    })
    provenance = Provenance(data=spec.description.strip(),
                            imported_from=f"{Path(*checkpoint.prefix.parts[-5:])} ({sums}); {ORIGINAL}",
                            versions={"gvtnet-zoo": __version__})
    return spec.model_copy(update={"export": export, "provenance": provenance})


def import_tf(checkpoint: str | Path, spec: Spec, out: str | Path, sample: Optional[str | Path] = None,
              overwrite: bool = False, echo: Callable[[str], None] = print) -> Path:
    """Write the run folder ``out`` from a TF1 checkpoint prefix; raises UserError, writing nothing, on bad input."""
    run = RunDir(Path(out))
    ckpt = TFCheckpoint(checkpoint)
    refuse_to_touch_inputs([run.root], [*ckpt.files(), *([sample] if sample is not None else [])])
    if run.root.exists() and not run.root.is_dir():
        raise UserError(f"{run.root} is a file; give a folder for --out")
    if run.root.exists() and any(run.root.iterdir()) and not overwrite:
        raise UserError(f"{run.root} exists and is not empty; add --overwrite to replace it, or choose another --out")
    if run.root.parent.exists() and not run.root.parent.is_dir():
        raise UserError(f"{run.root.parent} is a file; give --out inside a folder")
    model = build_model(spec)
    load_tf_weights(model, ckpt)
    image = None
    size_step, halo = spec.model.size_step(), spec_halo(spec)
    if sample is not None:
        image = read_image(Path(sample))
        if image.ndim != spec.model.input_dims:
            raise UserError(f"the sample {sample} has {image.ndim} axes; the network takes {spec.model.input_dims}D images")
        refuse_small_sample(sample, image.shape, size_step, halo)
    spec = _imported_spec(spec, ckpt)
    step = ckpt.global_step()
    run.root.parent.mkdir(parents=True, exist_ok=True)  # as train and predict do; only once the input is read
    with tempfile.TemporaryDirectory(prefix=f".{run.root.name}.", dir=run.root.parent) as tmp:
        staged = RunDir(Path(tmp) / "run")
        staged.checkpoints.mkdir(parents=True)
        staged.spec.write_text(dump_spec(spec))
        state = {"step": step, "model": model.state_dict(), "spec": spec.model_dump(mode="json"),
                 "gvtnet_zoo": __version__, "network_revision": NETWORK_REVISION}
        save_checkpoint(staged.last, state)
        shutil.copy(staged.last, staged.best)
        if image is not None:
            write_tiff(staged.validation_sample[0], image)
        if run.root.exists():
            shutil.rmtree(run.root)
        os.replace(staged.root, run.root)
    echo(f"imported {len(tf_variable_map(model))} tensors from {ckpt.prefix} (step {step}) into {run.root}; "
         f"package it with: gvtnet-zoo package {run.root} --out MODEL.zip" + ("" if image is not None else " --sample IMAGE"))
    if image is None:  # the run is complete without one, but `package` will refuse it
        echo(f"note: `package` needs --sample IMAGE, a {spec.model.input_dims}D input of the task "
             f"{size_text(size_step, halo)}, e.g. an image of the original's test data")
    return run.root
