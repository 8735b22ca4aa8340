"""The plugin as napari sees it: the manifest, sample data, and one-line refusals of bad training input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gvtnet_zoo.napari.train_widget import TrainWidget


def test_manifest_names_the_widgets_and_sample_data() -> None:
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("gvtnet-zoo")
    assert {w.display_name for w in manifest.contributions.widgets} == {"Predict", "Train", "Package"}
    assert {s.key for s in manifest.contributions.sample_data} == {"label-free", "nuclei-3d"}
    for command in manifest.contributions.commands:  # every python_name resolves
        module, _, name = command.python_name.partition(":")
        assert callable(getattr(__import__(module, fromlist=[name]), name)), command.python_name


def test_sample_data_are_the_demo_images(make_napari_viewer: Any) -> None:
    viewer = make_napari_viewer()
    viewer.open_sample("gvtnet-zoo", "label-free")
    viewer.open_sample("gvtnet-zoo", "nuclei-3d")
    shapes = {layer.name: layer.data.shape for layer in viewer.layers}
    assert shapes == {"transmitted light": (8, 210, 576), "Hoechst": (8, 210, 576),
                      "transmitted light (held out)": (2, 210, 576), "Hoechst (held out)": (2, 210, 576),
                      "noisy nuclei (simulated)": (60, 256, 256), "nuclei": (60, 256, 256)}
    noisy, clean = viewer.layers["noisy nuclei (simulated)"].data, viewer.layers["nuclei"].data
    assert np.corrcoef(noisy.ravel(), clean.ravel())[0, 1] > 0.3 and not np.array_equal(noisy, clean)


def _errors(notifications: list) -> list[str]:
    return [str(n.message) for n in notifications if n.severity == "error"]


def test_sample_layers_name_their_axes(make_napari_viewer: Any) -> None:
    volume = make_napari_viewer()
    volume.open_sample("gvtnet-zoo", "nuclei-3d")
    assert volume.dims.axis_labels == ("z", "y", "x")  # not napari's "-3", "-2", "-1"
    assert all(layer.axis_labels == ("z", "y", "x") for layer in volume.layers)
    time_lapse = make_napari_viewer()
    time_lapse.open_sample("gvtnet-zoo", "label-free")
    assert time_lapse.dims.axis_labels == ("t", "y", "x")


def test_the_target_defaults_to_the_sources_partner_never_the_source(make_napari_viewer: Any) -> None:
    viewer = make_napari_viewer()
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)  # napari renews the layer lists as layers arrive
    viewer.open_sample("gvtnet-zoo", "label-free")
    viewer.open_sample("gvtnet-zoo", "nuclei-3d")
    assert widget.source.value.name == "transmitted light" and widget.target.value.name == "Hoechst"
    widget.source.value = viewer.layers["transmitted light (held out)"]
    assert widget.target.value.name == "Hoechst (held out)"
    widget.source.value = viewer.layers["noisy nuclei (simulated)"]
    assert widget.target.value.name == "nuclei"
    widget.target.value = viewer.layers["noisy nuclei (simulated)"]  # the user may still choose it; Train refuses
    assert TrainWidget(viewer).target.value.name == "Hoechst"  # a widget opened on the layers already there
    alone = make_napari_viewer()
    alone.add_image(np.zeros((64, 64), np.float32), name="only")
    assert TrainWidget(alone).target.value is None  # nothing to pair with: no target rather than the source


def test_source_equal_to_target_is_one_line_and_starts_no_worker(make_napari_viewer: Any, tmp_path: Path,
                                                                 notifications: list, monkeypatch: Any) -> None:
    from gvtnet_zoo.napari import train_widget

    started: list[Any] = []
    monkeypatch.setattr(train_widget, "_train", lambda *args: started.append(args))
    viewer = make_napari_viewer()
    viewer.open_sample("gvtnet-zoo", "label-free")
    widget = TrainWidget(viewer)
    widget.run_dir.value = tmp_path / "run"
    widget.target.value = widget.source.value = viewer.layers["transmitted light"]
    widget.train_button.native.click()
    errors = _errors(notifications)
    assert len(errors) == 1 and "\n" not in errors[0] and "same layer 'transmitted light'" in errors[0]
    assert widget.worker is None and not widget.busy and not started and widget.train_button.enabled
    assert not (tmp_path / "run").exists()


def test_bad_training_input_is_one_notification_and_writes_nothing(make_napari_viewer: Any, tmp_path: Path,
                                                                    notifications: list, capsys: Any) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((2, 8, 64, 64), np.float32), name="stack")
    viewer.add_image(np.zeros((64, 64), np.float32), name="plane")
    widget = TrainWidget(viewer)
    widget.spec.value = "demo-gvtnet-label-free-2d"
    widget.run_dir.value = tmp_path / "run"
    widget.source.value, widget.target.value = viewer.layers["stack"], viewer.layers["plane"]
    assert widget.start(resume=False) is None
    widget.source.value = viewer.layers["plane"]
    widget.more.value = "model.no_such_key=3"
    assert widget.start(resume=False) is None
    widget.more.value = ""
    assert widget.start(resume=True) is None
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    widget.spec.value, widget.spec_file.value = "(spec file below)", bad
    errors = _errors(notifications)
    assert len(errors) == 4 and all("\n" not in e for e in errors)
    assert "layer 'stack' has 4 dimensions" in errors[0] and "no_such_key" in errors[1]
    assert "nothing to resume" in errors[2] and "bad.yaml" in errors[3]
    assert not (tmp_path / "run").exists()
    assert "Traceback" not in capsys.readouterr().err


def test_a_stack_layer_is_one_training_pair_per_image(make_napari_viewer: Any, tmp_path: Path) -> None:
    import tifffile

    from gvtnet_zoo.napari.train_widget import _write_pairs, data_folders

    viewer = make_napari_viewer()
    viewer.open_sample("gvtnet-zoo", "label-free")
    widget = TrainWidget(viewer)
    widget.spec.value = "demo-gvtnet-label-free-2d"
    widget.source.value, widget.target.value = viewer.layers["transmitted light"], viewer.layers["Hoechst"]
    widget.val_source.value = viewer.layers["transmitted light (held out)"]
    widget.val_target.value = viewer.layers["Hoechst (held out)"]
    widget.run_dir.value = tmp_path
    job = widget._job(resume=False)
    _write_pairs(job["layers"], data_folders(tmp_path))
    train, val = data_folders(tmp_path)
    assert len(list((train / "source").glob("*.tif"))) == 8 and len(list((val / "target").glob("*.tif"))) == 2
    np.testing.assert_array_equal(tifffile.imread(train / "target" / "transmitted_light_t003.tif"),
                                  viewer.layers["Hoechst"].data[3])


def test_a_run_started_on_the_command_line_is_continued_in_the_widget(make_napari_viewer: Any, qtbot: Any, tmp_path: Path,
                                                                      denoise_2d: Path) -> None:
    import torch

    from gvtnet_zoo.cli import main

    from .conftest import finish

    run = tmp_path / "run"
    tiny = ["model.base_channels=4", "data.patch_size=[32,32]", "data.batch_size=2", "data.workers=0",
            "data.val_patches=2", "train.steps=3", "train.val_every=3", "train.checkpoint_every=3", "train.log_every=1"]
    assert main(["train", "demo-gvtnet-label-free-2d", "--data", str(denoise_2d / "train"), "--val",
                 str(denoise_2d / "test"), "--out", str(run), "--device", "cpu", *[a for s in tiny for a in ("--set", s)]]) == 0
    widget = TrainWidget(make_napari_viewer())
    widget.run_dir.value, widget.data.value, widget.val_data.value = run, denoise_2d / "train", denoise_2d / "test"
    widget.steps.value, widget.device.value = 5, "cpu"
    finish(qtbot, widget, widget.start(resume=True))
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == 5
    assert widget.plot.series["training"][0] == [1, 2, 3, 4, 5]  # the CLI's steps read back, then the widget's


def test_a_package_that_fails_its_tests_is_shown_and_one_notification(make_napari_viewer: Any, qtbot: Any,
                                                                      packages: dict[str, Path], tmp_path: Path,
                                                                      notifications: list,
                                                                      monkeypatch: Any) -> None:
    from gvtnet_zoo.export import package
    from gvtnet_zoo.export.zoo_test import FormatResult
    from gvtnet_zoo.napari.package_widget import PackageWidget

    from .conftest import finish

    monkeypatch.setattr(package, "run_zoo_tests", lambda built, formats: [
        FormatResult(f, f != "onnx", [] if f != "onnx" else ["Reproduce test outputs: output differs"]) for f in formats])
    widget = PackageWidget(make_napari_viewer())
    widget.run_dir.value, widget.out.value = packages["2d"].parent / "run", tmp_path / "model.zip"
    finish(qtbot, widget, widget.start())
    assert "onnx: FAILED" in widget.results.value and "torchscript: passed" in widget.results.value
    errors = [str(n.message) for n in notifications if n.severity == "error"]
    assert len(errors) == 1 and "model.failed.zip" in errors[0] and "\n" not in errors[0]
    assert widget.package is None and not widget.predict_button.enabled
    assert not (tmp_path / "model.zip").exists() and (tmp_path / "model.failed.zip").exists()
