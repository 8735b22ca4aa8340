"""Predict widget: any zoo package on image layers, in the background, with tile progress and Cancel.

In-memory layers go through ``predict_image`` (what ``gvtnet-zoo predict`` does for a file; a stack of 2D
images for a 2D model, a time-lapse say, image by image); a lazy layer
read from a Zarr store or TIFF on disk goes through ``predict_volumes`` tile by tile to an OME-Zarr,
which comes back as a lazy layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
from magicgui.widgets import ComboBox, FileEdit, Label, LineEdit, ProgressBar, PushButton, create_widget

from ..errors import UserError
from ..progress import CancellableProgress
from .common import WorkerWidget

if TYPE_CHECKING:
    import napari

MODES = {"auto": "auto", "whole": "whole", "tiles": "tile", "global context": "global"}
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


def layer_output(array: np.ndarray, letters: str, layer: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """An output (axes ``letters`` of bczyx) as layer data without singleton batch/channel axes, placed on the
    input layer."""
    keep = [i for i, letter in enumerate(letters) if not (letter in "bc" and array.shape[i] == 1)]
    data = array.reshape([array.shape[i] for i in keep])
    return data, placement(layer, data.shape, sum(1 for i in keep if letters[i] in "zyx"))


def _lazy_source(layer: Any) -> Optional[Path]:
    """The Zarr store or TIFF a lazy (dask/zarr) layer was read from, or None for data held in memory."""
    data = layer.data[0] if layer.multiscale else layer.data
    if isinstance(data, np.ndarray):
        return None
    path = getattr(layer.source, "path", None)
    return Path(path) if path and Path(path).exists() else None


class PredictWidget(WorkerWidget):
    """Package, input layer, mode, tile, weights, device; Predict runs in the background, Cancel stops it."""

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
        self.run_button = PushButton(text="Predict")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="tiles", value=0, max=1)
        self.status = Label(value="")
        self.extend([self.model, self.image, self.mode, self.tile, self.weights, self.device, self.out_dir,
                     self.run_button, self.cancel_button, self.progress, self.status])
        self._cancel: Optional[CancellableProgress] = None
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

    def cancel(self) -> None:
        """Stop before the next tile; nothing is added to the viewer."""
        if self._cancel is not None:
            self._cancel.cancel()
            self.status.value = "cancelling"

    def _job(self) -> dict[str, Any]:
        layer = self.image.value
        model = self.model.value
        if layer is None:
            raise UserError("choose an image layer to predict")
        if not model or str(model) in ("", ".") or not Path(model).exists():
            raise UserError("choose a bioimage.io package (.zip, folder or rdf.yaml) to predict with")
        source = _lazy_source(layer)
        out_dir = Path(self.out_dir.value) if source and str(self.out_dir.value) not in ("", ".") else (
            source.parent if source else None)
        return {"model": str(model), "layer": layer, "source": source, "out_dir": out_dir,
                "mode": MODES[self.mode.value], "tile": self.tile.value.strip() or None,
                "weight_format": None if self.weights.value == "auto" else self.weights.value,
                "device": self.device.value}

    def on_event(self, done_total: tuple[int, int]) -> None:
        done, total = done_total
        self.progress.max, self.progress.value = max(total, 1), done
        self.status.value = f"{done} / {total} tiles"

    def on_return(self, result: tuple[str, Any, list[tuple[np.ndarray | list, dict[str, Any]]]]) -> None:
        name, layer, outputs = result
        for data, kwargs in outputs:
            self.viewer.add_image(data, name=f"{name} ({layer.name})", **kwargs)
        self.status.value = f"done: {name} on {layer.name}"

    def on_finish(self) -> None:
        self.run_button.enabled, self.cancel_button.enabled = True, False
        if self._cancel is not None and self._cancel.cancelled:
            self.status.value = "cancelled"


def _predict(job: dict[str, Any], progress: CancellableProgress) -> tuple[str, Any, list]:
    """In the worker: (model name, input layer, [(layer data, layer kwargs) per output])."""
    from ..trust import read_description

    name = read_description(job["model"]).name
    layer = job["layer"]
    if job["source"] is not None:
        return name, layer, _predict_streamed(job, progress)
    data = layer.data[0] if layer.multiscale else layer.data
    if not isinstance(data, np.ndarray):
        from ..predict.run import free_memory_bytes
        from ..predict.stream import IN_MEMORY_COPIES

        if int(np.prod(data.shape)) * 4 * IN_MEMORY_COPIES > free_memory_bytes(["cpu"]) // 2:
            raise UserError(f"layer {layer.name!r} is lazy, too large for memory, and napari knows no file it was "
                            "read from; save it as OME-Zarr and open that, so that it is predicted tile by tile")
    outputs = _predict_in_memory(job, np.asarray(data), progress)
    return name, layer, outputs


def _predict_in_memory(job: dict[str, Any], image: np.ndarray, progress: CancellableProgress) -> list:
    from ..predict.run import predict_image

    layer = job["layer"]
    results = predict_image(job["model"], {layer.name: image}, stacks=True, weight_format=job["weight_format"],
                            device=job["device"], mode=job["mode"], tile=job["tile"], echo=lambda _: None,
                            progress=progress)
    return [layer_output(array, letters, layer) for array, letters in results.values()]


def _predict_streamed(job: dict[str, Any], progress: CancellableProgress) -> list:
    """A lazy layer's store, tile by tile to OUT/NAME.ome.zarr, opened again lazily (all levels)."""
    import dask.array as da
    import zarr

    from ..predict.run import parse_tile
    from ..predict.stream import output_name, predict_volumes

    predict_volumes(job["model"], [job["source"]], job["out_dir"], weight_format=job["weight_format"],
                    device=job["device"], global_context=job["mode"] == "global", tile=parse_tile(job["tile"], 3), halo={},
                    axes=None, level=None, overwrite=False, resume=False, allow_download=False, dask=None,
                    echo=lambda _: None, progress=progress)
    path = job["out_dir"] / output_name(job["source"])
    group = zarr.open_group(str(path), mode="r")
    multiscales = group.attrs.asdict().get("ome", group.attrs.asdict()).get("multiscales")[0]
    levels = [da.from_zarr(group[d["path"]]) for d in multiscales["datasets"]]
    space = sum(1 for axis in multiscales["axes"] if axis.get("type") == "space")
    where = placement(job["layer"], levels[0].shape, space)
    return [(levels if len(levels) > 1 else levels[0], {**where, "multiscale": len(levels) > 1})]
