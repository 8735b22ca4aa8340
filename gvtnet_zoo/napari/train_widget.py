"""Train widget: a spec, pairs from layers or a folder, in the background, with a live loss plot, the checkpoint's
sample prediction as a layer, Stop (writes the checkpoint, like Ctrl-C) and Resume.

The run folder is the CLI's: layers are written to RUN/data/{train,val}/{source,target}/ first, so a run
started here continues with ``gvtnet-zoo train RUN/spec.yaml --data RUN/data/train --val RUN/data/val
--out RUN --resume`` and a CLI run continues here.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from magicgui.widgets import ComboBox, FileEdit, Label, LineEdit, ProgressBar, PushButton, SpinBox, create_widget

from ..errors import UserError
from ..train.interrupt import StopRequest
from ..train.observe import TrainingEvent
from ..train.run_dir import RunDir
from .common import WorkerWidget, chosen_path, report
from .loss_plot import LossPlot
from .predict_widget import device_choices

if TYPE_CHECKING:
    import napari

FROM_FILE = "(spec file below)"
# words that name a split rather than a modality: a target is looked for in the source's own split
SPLIT_WORDS = frozenset({"held", "out", "val", "validation", "test", "train", "training"})
# words that name an input (the shipped samples' "transmitted light", "noisy nuclei"): unlikely targets
SOURCE_WORDS = frozenset({"transmitted", "light", "brightfield", "bright", "phase", "dic", "noisy", "raw", "input",
                          "source"})


def _layer_file(name: str) -> str:
    """A layer name as a TIFF file name (source and target of a pair share it)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "image"


def _words(name: str) -> set[str]:
    """A layer name's lower-case words."""
    return set(re.findall(r"[a-z0-9]+", name.lower()))


def _shape(layer: Any) -> tuple[int, ...]:
    """A layer's (first level's) shape."""
    return tuple((layer.data[0] if layer.multiscale else layer.data).shape)


def partner_layer(source: Any, layers: list[Any]) -> Any:
    """The layer ``source`` is most likely paired with, or None when no other layer has as many axes: the same
    shape first, then the same split (held out, validation, ...), then a name unlike an input's, then the
    nearest after it in the layer list (the shipped samples: transmitted light -> Hoechst, noisy nuclei -> nuclei)."""
    if source is None:
        return None
    others = [layer for layer in layers if layer is not source and len(_shape(layer)) == len(_shape(source))]
    if not others:
        return None
    split, index = _words(source.name) & SPLIT_WORDS, layers.index(source) if source in layers else 0
    return min(others, key=lambda layer: (_shape(layer) != _shape(source), _words(layer.name) & SPLIT_WORDS != split,
                                          bool(_words(layer.name) & SOURCE_WORDS),
                                          (layers.index(layer) - index) % len(layers)))


def data_folders(run: Path) -> tuple[Path, Path]:
    """Where the widget writes layer pairs in a run folder: (training, validation)."""
    return run / "data" / "train", run / "data" / "val"


class TrainWidget(WorkerWidget):
    """Spec, pairs, the settings people change, run folder; Train, Stop, Resume; loss plot and progress."""

    def __init__(self, napari_viewer: "napari.viewer.Viewer") -> None:
        from ..spec_loading import bundled_spec_names

        super().__init__(napari_viewer)
        self.spec = ComboBox(label="spec", choices=[FROM_FILE, *bundled_spec_names()], value="demo-gvtnet-label-free-2d")
        self.spec_file = FileEdit(label="spec file", mode="r", filter="*.yaml")
        self.source = create_widget(annotation="napari.layers.Image", label="source")
        self.target = create_widget(annotation=Optional["napari.layers.Image"], label="target")
        self.val_source = create_widget(annotation=Optional["napari.layers.Image"], label="validation source")
        self.val_target = create_widget(annotation=Optional["napari.layers.Image"], label="validation target")
        self.data = FileEdit(label="or data folder", mode="d", tooltip="source/ and target/ (then the layers are not used)")
        self.val_data = FileEdit(label="validation folder", mode="d",
                                 tooltip="with a data folder: held-out pairs (default: data.val_fraction of the data)")
        self.run_dir = FileEdit(label="run folder", mode="d")
        self.steps = SpinBox(label="steps", min=1, max=10_000_000)
        self.patch = LineEdit(label="patch (Z,Y,X)")
        self.batch = SpinBox(label="batch size", min=1, max=4096)
        self.lr = LineEdit(label="learning rate")
        self.device = ComboBox(label="device", choices=device_choices(), value="auto")
        self.more = LineEdit(label="more settings", tooltip="section.key=value; ... as the CLI's --set")
        self.train_button = PushButton(text="Train")
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.resume_button = PushButton(text="Resume")
        self.progress = ProgressBar(label="steps", value=0, max=1)
        self.status = Label(value="")
        self.plot = LossPlot()
        self.extend([self.spec, self.spec_file, self.source, self.target, self.val_source, self.val_target, self.data,
                     self.val_data, self.run_dir, self.steps, self.patch, self.batch, self.lr, self.device, self.more,
                     self.train_button, self.stop_button, self.resume_button, self.progress, self.status])
        self.native.layout().addWidget(self.plot.canvas)
        self._stop: Optional[StopRequest] = None
        self._space = 2  # the running spec's spatial axes (2 or 3), to name a sample prediction's axes
        self.source.changed.connect(self._pick_target)
        self.spec.changed.connect(self._fill_from_spec)
        self.spec_file.changed.connect(self._fill_from_spec)
        self.train_button.changed.connect(lambda: self.start(resume=False))
        self.resume_button.changed.connect(lambda: self.start(resume=True))
        self.stop_button.changed.connect(self.stop)
        self._fill_from_spec()
        self._pick_target()

    def reset_choices(self, *args: Any) -> None:
        """The layer lists anew (napari calls this when layers come and go), then a target if none fits."""
        super().reset_choices(*args)
        if hasattr(self, "_stop"):  # not while __init__ is still adding the fields
            self._pick_target()

    def _pick_target(self) -> None:
        """Keep a target of the source's shape; otherwise the source's likely partner, never the source itself
        (training a layer on itself only learns to copy it)."""
        source, target = self.source.value, self.target.value
        if target is not None and target is not source and _shape(target) == _shape(source):
            return
        self.target.value = partner_layer(source, [layer for layer in self.target.choices if layer is not None])

    def _spec_source(self) -> str:
        if self.spec.value != FROM_FILE:
            return self.spec.value
        if chosen_path(self.spec_file) is None:
            raise UserError("choose a shipped spec or a spec file")
        return str(self.spec_file.value)

    def _fill_from_spec(self) -> None:
        """The spec's own steps, patch, batch size and learning rate as the starting values."""
        from ..spec_loading import load_spec

        if self.spec.value == FROM_FILE and chosen_path(self.spec_file) is None:
            return  # the file is chosen next
        try:
            spec = load_spec(self._spec_source())
        except UserError as err:
            report(err)
            return
        self.steps.value, self.batch.value = spec.train.steps, spec.data.batch_size
        self.patch.value, self.lr.value = ",".join(map(str, spec.data.patch_size)), f"{spec.train.lr:g}"

    def settings(self) -> list[str]:
        """The widget's fields as the CLI's --set overrides."""
        sets = [f"train.steps={self.steps.value}", f"data.batch_size={self.batch.value}", f"train.lr={self.lr.value.strip()}",
                f"data.patch_size=[{self.patch.value.strip()}]"]
        return sets + [item.strip() for item in self.more.value.split(";") if item.strip()]

    def start(self, resume: bool) -> Any:
        """Check everything here (one notification if wrong), then train in a worker; returns the worker."""
        self._stop = StopRequest()
        worker = self.launch(lambda: self._job(resume), _train, self._stop, self.relay.event.emit)
        if worker is not None:
            # a resumed run's plot starts with what the run logged so far (a CLI run's too)
            self.plot.load(RunDir(Path(self.run_dir.value)).metrics if resume else None)
            self.progress.value, self.status.value = 0, "reading the data"
            self.train_button.enabled = self.resume_button.enabled = False
            self.stop_button.enabled = True
        return worker

    def stop(self) -> None:
        """Finish the step in flight, write the checkpoint and stop (Resume continues)."""
        if self._stop is not None:
            self._stop.request()
            self.status.value = "stopping after this step"

    def _job(self, resume: bool) -> dict[str, Any]:
        from ..spec_loading import load_spec
        from ..train.run_dir import check_run_dir

        run = chosen_path(self.run_dir)
        if run is None:
            raise UserError("choose a run folder (checkpoints, metrics and samples go there)")
        check_run_dir(RunDir(run), resume, overwrite=False)
        if resume:  # the run's own spec; only its length may change
            spec = load_spec(RunDir(run).spec, [f"train.steps={self.steps.value}"])
        else:
            spec = load_spec(self._spec_source(), self.settings())
        self._space = spec.model.input_dims
        job: dict[str, Any] = {"spec": spec, "run": run, "resume": resume, "device": self.device.value}
        train_dir, val_dir = data_folders(run)
        if chosen_path(self.data) is not None:
            job["data"], job["val"] = chosen_path(self.data), chosen_path(self.val_data)
        elif resume:
            if not train_dir.is_dir():
                raise UserError(f"{run} was not started from layers here; give its data folder")
            job["data"], job["val"] = train_dir, val_dir if val_dir.is_dir() else None
        else:
            job["layers"] = self._layer_pairs(spec.model.input_dims + (getattr(spec.model, "in_channels", 1) > 1))
            job["data"], job["val"] = train_dir, val_dir if len(job["layers"]) > 1 else None
        return job

    def _layer_pairs(self, dims: int) -> list[tuple[Any, Any, bool]]:
        """The chosen (source, target, is a stack) layers, training pair first. A source has ``dims`` axes
        (channels included), or one more: a stack of images along its first axis (a time-lapse), each a pair."""
        pairs = [(self.source.value, self.target.value)]
        if self.val_source.value is not None or self.val_target.value is not None:
            pairs.append((self.val_source.value, self.val_target.value))
        checked = []
        for source, target in pairs:
            if source is None or target is None:
                raise UserError("choose a source and a target layer (and both or neither of the validation pair)")
            if source is target:
                raise UserError(f"source and target are the same layer {source.name!r}: training would only learn to "
                                "copy it; choose the layer to predict (e.g. the fluorescence) as the target")
            if source.data.ndim not in (dims, dims + 1):
                raise UserError(f"layer {source.name!r} has {source.data.ndim} dimensions; the spec's model takes "
                                f"{dims}-dimensional images (or a stack of them); choose a matching layer or spec")
            stack = source.data.ndim == dims + 1
            if stack and target.data.shape[0] != source.data.shape[0]:
                raise UserError(f"layer {source.name!r} stacks {source.data.shape[0]} images but {target.name!r} "
                                f"{target.data.shape[0]}; choose layers of the same length")
            checked.append((source, target, stack))
        return checked

    def on_event(self, event: TrainingEvent) -> None:
        self.progress.max, self.progress.value = event.total_steps, event.step
        if event.train_loss is not None:
            self.plot.add("training", event.step, event.train_loss)
            self.status.value = f"step {event.step} / {event.total_steps}: loss {event.train_loss:.4g}"
        if event.validation is not None:
            self.plot.add("validation", event.step, event.validation["loss"])
        if event.sample is not None:
            name = f"{Path(self.run_dir.value).name} sample prediction"
            prediction = event.sample[1]
            if name in self.viewer.layers:
                self.viewer.layers[name].data = prediction
            else:
                # named axes, not napari's "-3", "-2", "-1": the model's space, channels before it
                extra = prediction.ndim - self._space
                labels = ("c",) * extra + ("z", "y", "x")[-self._space:] if extra in (0, 1) else None
                self.viewer.add_image(prediction, name=name, colormap="magma", axis_labels=labels)
        self.plot.draw()

    def on_return(self, run: Any) -> None:
        self.status.value = f"done: {run.root}; package it in the Package widget"

    def on_error(self, err: BaseException) -> None:
        report(err)
        if self._stop is not None and self._stop.requested:
            self.status.value = "stopped; Resume continues the run"

    def on_finish(self) -> None:
        self.train_button.enabled = self.resume_button.enabled = True
        self.stop_button.enabled = False


def _write_pairs(layers: list[tuple[Any, Any, bool]], folders: tuple[Path, Path]) -> None:
    """Each pair as source/NAME.tif and target/NAME.tif; a stack as NAME_tNNN.tif, one pair per image."""
    import numpy as np

    from ..image_io.images import write_tiff

    for (source, target, stack), folder in zip(layers, folders):
        name = _layer_file(source.name)
        planes = range(source.data.shape[0]) if stack else [None]
        for index in planes:
            file = f"{name}_t{index:03d}.tif" if stack else f"{name}.tif"
            write_tiff(folder / "source" / file, np.asarray(source.data if index is None else source.data[index]))
            write_tiff(folder / "target" / file, np.asarray(target.data if index is None else target.data[index]))


def _train(job: dict[str, Any], stop: StopRequest, observer: Any) -> Any:
    """In the worker: write layer pairs into the run folder, then the CLI's ``train``; a run refused before it
    started leaves nothing it wrote behind."""
    from ..train.trainer import train

    run: Path = job["run"]
    fresh = not run.exists()
    if "layers" in job:
        _write_pairs(job["layers"], data_folders(run))
    try:
        return train(job["spec"], job["data"], run, val=job["val"], resume=job["resume"], device=job["device"],
                     command=f"napari train widget: {run}", stop=stop, observer=observer)
    except UserError:
        if "layers" in job:
            shutil.rmtree(run if fresh else run / "data", ignore_errors=True)
        raise
