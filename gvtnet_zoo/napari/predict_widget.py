"""Predict widget: any zoo package on image layers, in the background, with tile progress and Cancel.

In-memory layers go through ``predict_image`` (what ``gvtnet-zoo predict`` does for a file; a stack of 2D
images for a 2D model, a time-lapse say, image by image); a lazy layer
read from a Zarr store or TIFF on disk goes through ``predict_volumes`` tile by tile to an OME-Zarr,
which comes back as a lazy layer.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
from magicgui.widgets import ComboBox, FileEdit, Label, LineEdit, ProgressBar, PushButton, create_widget

from ..errors import UserError
from ..progress import CancellableProgress
from .common import WorkerWidget, chosen_path, report

if TYPE_CHECKING:
    import napari

# tiles of a gvtnet-zoo GVTNet run with global context (exact); plain tiles change a GVTNet's every voxel
MODES = {"auto": "auto", "whole": "whole", "tiles": "tile", "global context": "global", "plain tiles": "plain"}
# what to do when a large image's OME-Zarr output exists: the CLI's default, --overwrite, --resume
EXISTING = {"keep it (stop)": {}, "replace it": {"overwrite": True}, "complete it (resume)": {"resume": True}}
WEIGHTS = ("auto", "onnx", "torchscript", "pytorch_state_dict")


def device_choices() -> list[str]:
    """auto, cpu and each CUDA device torch sees."""
    import torch

    return ["auto", "cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def placement(layer: Any, shape: tuple[int, ...], space: int) -> dict[str, Any]:
    """Scale and translate for an output of ``shape`` whose last ``space`` axes are the input layer's last ones:
    the layer's own, rescaled where the model resamples (a projection's output keeps the last two axes)."""
    extent = np.asarray(layer.data[0].shape if layer.multiscale else layer.data.shape, float)[-space:]
    ratio = extent / np.asarray(shape[-space:], float)
    extra = len(shape) - space
    scale = [1.0] * extra + list(np.asarray(layer.scale, float)[-space:] * ratio)
    translate = [0.0] * extra + list(np.asarray(layer.translate, float)[-space:])
    return {"scale": scale, "translate": translate}


def axis_names(letters: str, layer: Any) -> tuple[str, ...]:
    """Names for an output's axes (``letters`` of bczyx): the input layer's own where the output has its layout
    and the input's are not napari's defaults ("-3", "-2", ...), the letters otherwise."""
    own = tuple(getattr(layer, "axis_labels", ()) or ())
    if len(own) != len(letters):
        return tuple(letters)
    return tuple(letter if re.fullmatch(r"-?\d+", name) else name for letter, name in zip(letters, own))


def layer_output(array: np.ndarray, letters: str, layer: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """An output (axes ``letters`` of bczyx) as layer data without singleton batch/channel axes, placed on the
    input layer, its axes named."""
    keep = [i for i, letter in enumerate(letters) if not (letter in "bc" and array.shape[i] == 1)]
    data = array.reshape([array.shape[i] for i in keep])
    kept = "".join(letters[i] for i in keep)
    return data, {**placement(layer, data.shape, sum(1 for i in keep if letters[i] in "zyx")),
                  "axis_labels": axis_names(kept, layer)}


def _lazy_source(layer: Any) -> Optional[Path]:
    """The Zarr store or TIFF a lazy (dask/zarr) layer was read from, or None for data held in memory."""
    data = layer.data[0] if layer.multiscale else layer.data
    if isinstance(data, np.ndarray):
        return None
    path = getattr(layer.source, "path", None)
    return Path(path) if path and Path(path).exists() else None


class PredictWidget(WorkerWidget):
    """Package, input layer(s), mode, tile, weights, device; Predict runs in the background, Cancel stops it."""

    def __init__(self, napari_viewer: "napari.viewer.Viewer") -> None:
        super().__init__(napari_viewer)
        self.model = FileEdit(label="package", mode="r", filter="*.zip *.yaml")
        self.image = create_widget(annotation="napari.layers.Image", label="image")
        self.mode = ComboBox(label="mode", choices=list(MODES), value="auto")
        self.tile = LineEdit(label="tile (Z,Y,X)", value="", tooltip="tiles and global context: e.g. 32,256,256")
        self.weights = ComboBox(label="weights", choices=list(WEIGHTS), value="auto")
        self.device = ComboBox(label="device", choices=device_choices(), value="auto")
        self.out_dir = FileEdit(label="large images to", mode="d",
                                tooltip="lazy (Zarr) layers are written here as OME-Zarr; default: beside the input")
        self.existing = ComboBox(label="if it exists", choices=list(EXISTING), value="keep it (stop)",
                                 tooltip="a large image's OME-Zarr output already there: keep it, replace it, or "
                                         "complete an interrupted one")
        self.run_button = PushButton(text="Predict")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="tiles", value=0, max=1)
        self.status = Label(value="")
        self.extend([self.model, self.image, self.mode, self.tile, self.weights, self.device, self.out_dir,
                     self.existing, self.run_button, self.cancel_button, self.progress, self.status])
        self._cancel: Optional[CancellableProgress] = None
        self._model_name: Optional[tuple[Path, str]] = None  # (package, its name) as last read
        self.more_inputs: list[Any] = []  # a layer choice for each model input after the first
        self.model.changed.connect(self._match_inputs)
        self.run_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)

    def start(self) -> Any:
        """Check the inputs here (one notification if wrong), then predict in a worker; returns the worker."""
        self._cancel = CancellableProgress(lambda done, total: self.relay.event.emit((done, total)))
        worker = self.launch(self._job, _predict, self._cancel)
        if worker is not None:
            self.progress.value, self.status.value = 0, "loading the model"
            self.run_button.enabled, self.cancel_button.enabled = False, True
        return worker

    def _match_inputs(self) -> None:
        """One layer choice per model input, labelled with the input ids when there are several; the package's
        description is read once here, in the GUI thread."""
        from ..predict.tensors import tensor_id
        from ..trust import read_description

        for choice in self.more_inputs:
            self.remove(choice)
        self.more_inputs, self.image.label, self._model_name = [], "image", None
        path = chosen_path(self.model)
        if path is None or not path.exists():
            return
        try:
            descr = read_description(path)
        except UserError as err:
            report(err)
            return
        self._model_name = (path, str(descr.name))
        ids = [tensor_id(t) for t in descr.inputs]
        if len(ids) < 2:
            return
        self.image.label = ids[0]
        for offset, input_id in enumerate(ids[1:], 1):
            choice = create_widget(annotation="napari.layers.Image", label=input_id)
            self.insert(self.index(self.image) + offset, choice)
            self.more_inputs.append(choice)
        self.reset_choices()

    def cancel(self) -> None:
        """Stop before the next tile; nothing is added to the viewer."""
        if self._cancel is not None:
            self._cancel.cancel()
            self.status.value = "cancelling"

    def _job(self) -> dict[str, Any]:
        layers = [self.image.value] + [choice.value for choice in self.more_inputs]
        model = chosen_path(self.model)
        if any(layer is None for layer in layers):
            raise UserError("choose an image layer for each input of the model")
        if model is None or not model.exists():
            raise UserError("choose a bioimage.io package (.zip, folder or rdf.yaml) to predict with")
        if self._model_name is None or self._model_name[0] != model:  # not read since it was chosen
            from ..trust import read_description

            self._model_name = (model, str(read_description(model).name))
        layer = layers[0]
        source = _lazy_source(layer) if len(layers) == 1 else None
        out_dir = (chosen_path(self.out_dir) or source.parent) if source is not None else None
        return {"model": str(model), "name": self._model_name[1], "layer": layer, "layers": layers, "source": source,
                "out_dir": out_dir, "mode": MODES[self.mode.value], "tile": self.tile.value.strip() or None,
                "weight_format": None if self.weights.value == "auto" else self.weights.value,
                "device": self.device.value, "existing": EXISTING[self.existing.value]}

    def on_event(self, done_total: tuple[int, int]) -> None:
        done, total = done_total
        self.progress.max, self.progress.value = max(total, 1), done
        self.status.value = f"{done} / {total} tiles"

    def on_return(self, result: tuple[str, Any, dict[str, tuple[np.ndarray | list, dict[str, Any]]]]) -> None:
        name, layer, outputs = result
        for output_id, (data, kwargs) in outputs.items():
            label = f"{name} {output_id}" if len(outputs) > 1 else name
            self.viewer.add_image(data, name=f"{label} ({layer.name})", **kwargs)
        self.status.value = f"done: {name} on {layer.name}"

    def on_finish(self) -> None:
        self.run_button.enabled, self.cancel_button.enabled = True, False
        if self._cancel is not None and self._cancel.cancelled:
            self.status.value = "cancelled"


def _predict(job: dict[str, Any], progress: CancellableProgress) -> tuple[str, Any, dict[str, tuple[Any, dict]]]:
    """In the worker: (model name, first input layer, {output id: (layer data, layer kwargs)})."""
    if job["source"] is not None:
        outputs = _predict_streamed(job, progress)
    else:
        outputs = _predict_in_memory(job, [_in_memory(chosen) for chosen in job["layers"]], progress)
    return job["name"], job["layer"], outputs


def _in_memory(layer: Any) -> np.ndarray:
    """A layer's (first level's) voxels; lazy data without a file only when it fits in memory."""
    data = layer.data[0] if layer.multiscale else layer.data
    if not isinstance(data, np.ndarray):
        from ..predict.memory import fits_in_memory, free_memory_bytes

        if not fits_in_memory(int(np.prod(data.shape)), free_memory_bytes(["cpu"])):
            raise UserError(f"layer {layer.name!r} is lazy, too large for memory, and napari knows no file it was "
                            "read from; save it as OME-Zarr and open that, so that it is predicted tile by tile")
    return np.asarray(data)


def _predict_in_memory(job: dict[str, Any], images: list[np.ndarray], progress: CancellableProgress) -> dict:
    from ..predict.run import predict_image

    given = [layer.name for layer in job["layers"]]
    names = [name if given.count(name) == 1 else f"{name} ({i + 1})" for i, name in enumerate(given)]  # one per input
    results = predict_image(job["model"], dict(zip(names, images)), stacks=True, weight_format=job["weight_format"],
                            device=job["device"], mode=job["mode"], tile=job["tile"], echo=lambda _: None,
                            progress=progress)
    return {output_id: layer_output(array, letters, job["layer"]) for output_id, (array, letters) in results.items()}


def _predict_streamed(job: dict[str, Any], progress: CancellableProgress) -> dict:
    """A lazy layer's store, tile by tile to OME-Zarr in the output folder, each output opened again lazily."""
    from ..predict.arguments import parse_tile
    from ..predict.stream import predict_volumes

    summary = predict_volumes(job["model"], [job["source"]], job["out_dir"], weight_format=job["weight_format"],
                              device=job["device"], global_context={"global": True, "plain": False}.get(job["mode"]),
                              tile=parse_tile(job["tile"], 3), halo={}, axes=None, level=None,
                              overwrite=job["existing"].get("overwrite", False),
                              resume=job["existing"].get("resume", False), allow_download=False, dask=None,
                              echo=lambda _: None, progress=progress)
    return {output_id: _lazy_layer(Path(path), job["layer"]) for output_id, path in summary.outputs}


def _lazy_layer(path: Path, layer: Any) -> tuple[Any, dict[str, Any]]:
    """An OME-Zarr image as lazy layer data (its levels) placed on the input layer."""
    import dask.array as da
    import zarr

    from ..image_io.volumes import multiscales

    group = zarr.open_group(str(path), mode="r")
    entry, _ = multiscales(group.attrs.asdict())
    levels = [da.from_zarr(group[d["path"]]) for d in entry["datasets"]]
    space = sum(1 for axis in entry["axes"] if axis.get("type") == "space")
    names = tuple(str(axis.get("name", "")) for axis in entry["axes"])  # OME-Zarr names its axes (t, c, z, y, x)
    labels = {"axis_labels": names} if len(names) == levels[0].ndim and all(names) else {}
    return levels if len(levels) > 1 else levels[0], {**placement(layer, levels[0].shape, space),
                                                      "multiscale": len(levels) > 1, **labels}
