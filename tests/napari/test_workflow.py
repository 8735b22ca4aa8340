"""Train from two layers, stop and resume, package, predict into a layer: the same numbers as the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import tifffile
import torch

from gvtnet_zoo.cli import main
from gvtnet_zoo.napari.package_widget import PackageWidget
from gvtnet_zoo.napari.train_widget import TrainWidget, data_folders

from .conftest import finish

TINY = ("model.base_channels=4; data.workers=0; data.val_patches=2; train.val_every=2; train.checkpoint_every=2; "
        "train.log_every=1")


def _step(run: Path) -> int:
    return int(torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["step"])


def test_train_stop_resume_package_predict(make_napari_viewer: Any, qtbot: Any, tmp_path: Path, notifications: list,
                                           images: Callable[..., np.ndarray], capsys: Any) -> None:
    viewer = make_napari_viewer()
    source = viewer.add_image(images("train", "source"), name="noisy")
    viewer.add_image(images("train", "target"), name="clean")
    viewer.add_image(images("test", "source"), name="noisy held out")
    viewer.add_image(images("test", "target"), name="clean held out")
    trainer = TrainWidget(viewer)
    viewer.window.add_dock_widget(trainer)
    trainer.spec.value = "demo-gvtnet-label-free-2d"
    trainer.source.value, trainer.target.value = viewer.layers["noisy"], viewer.layers["clean"]
    trainer.val_source.value, trainer.val_target.value = viewer.layers["noisy held out"], viewer.layers["clean held out"]
    run = tmp_path / "run"
    trainer.run_dir.value = run
    trainer.steps.value, trainer.batch.value, trainer.patch.value, trainer.more.value = 6, 2, "32,32", TINY

    # Stop as soon as the first loss arrives: the trainer finishes that step, writes the checkpoint and ends
    stop_at_first_loss = lambda event: trainer.stop() if event.train_loss is not None else None  # noqa: E731
    trainer.relay.event.connect(stop_at_first_loss)
    finish(qtbot, trainer, trainer.start(resume=False))
    stopped_at = _step(run)
    assert 1 <= stopped_at < 6
    assert any("interrupted after step" in str(n.message) for n in notifications)
    assert (data_folders(run)[0] / "source" / "noisy.tif").is_file()
    trainer.relay.event.disconnect(stop_at_first_loss)

    finish(qtbot, trainer, trainer.start(resume=True))
    assert _step(run) == 6
    steps, losses = trainer.plot.series["training"]
    assert steps == [1, 2, 3, 4, 5, 6] and all(np.isfinite(losses))  # the stopped part, read back, and the rest
    assert trainer.plot.series["validation"][0][-1] == 6
    assert viewer.layers["run sample prediction"].data.shape == (64, 64)
    assert viewer.layers["run sample prediction"].axis_labels == ("y", "x")
    # the run folder is the CLI's: the command line continues what the widget trained
    train_dir, val_dir = data_folders(run)
    assert main(["train", str(run / "spec.yaml"), "--data", str(train_dir), "--val", str(val_dir), "--out", str(run),
                 "--resume", "--set", "train.steps=7", "--device", "cpu"]) == 0
    assert _step(run) == 7

    packager = PackageWidget(viewer)
    viewer.window.add_dock_widget(packager)
    packager.run_dir.value, packager.out.value = run, tmp_path / "model.zip"
    packager.authors.value = "A. Microscopist;Some Institute"
    finish(qtbot, packager, packager.start())
    assert packager.package == tmp_path / "model.zip" and packager.package.is_file()
    for weight_format in ("pytorch_state_dict", "torchscript", "onnx"):
        assert f"{weight_format}: passed" in packager.results.value

    predictor = packager.open_predict()
    assert predictor is not None and Path(predictor.model.value) == packager.package
    predictor.image.value = source
    predictor.weights.value, predictor.device.value = "onnx", "cpu"
    before = len(viewer.layers)
    finish(qtbot, predictor, predictor.start())
    assert len(viewer.layers) == before + 1
    layer = viewer.layers[-1]
    assert layer.name.endswith("(noisy)") and layer.data.shape == source.data.shape

    tifffile.imwrite(tmp_path / "noisy.tif", source.data)
    assert main(["predict", str(packager.package), str(tmp_path / "noisy.tif"), "--out", str(tmp_path / "cli"),
                 "--weight-format", "onnx", "--device", "cpu"]) == 0
    expected = tifffile.imread(tmp_path / "cli" / "noisy.tif")
    value_range = float(expected.max() - expected.min())
    assert np.abs(layer.data - expected).max() <= 1e-5 * value_range
    assert "Traceback" not in capsys.readouterr().err
