"""The Predict widget: Cancel part-way adds nothing, bad layers are one notification, lazy layers are streamed."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from gvtnet_zoo.errors import Cancelled
from gvtnet_zoo.napari import predict_widget
from gvtnet_zoo.napari.predict_widget import PredictWidget
from gvtnet_zoo.progress import CancellableProgress

from .conftest import finish


@pytest.fixture
def paused(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The widget's progress holds at the second tile until the test has pressed Cancel (no race with the worker)."""
    state: dict[str, Any] = {"reached": threading.Event(), "release": threading.Event(), "calls": [], "raised": []}

    class Paused(CancellableProgress):
        def __call__(self, done: int, total: int) -> None:
            state["calls"].append((done, total))
            if done == 1:
                state["reached"].set()
                state["release"].wait(60)
            try:
                super().__call__(done, total)
            except Cancelled:
                state["raised"].append(done)
                raise

    monkeypatch.setattr(predict_widget, "CancellableProgress", Paused)
    return state


def test_cancel_part_way_adds_no_layer_and_ends_the_worker(make_napari_viewer: Any, qtbot: Any, packages: dict[str, Path],
                                                           paused: dict[str, Any], notifications: list) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((256, 256), np.float32), name="big")
    widget = PredictWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.model.value, widget.mode.value, widget.tile.value = packages["2d"], "tiles", "96,96"
    widget.device.value = "cpu"
    worker = widget.start()
    qtbot.waitUntil(paused["reached"].is_set, timeout=60_000)
    widget.cancel_button.changed.emit(True)  # what a click does
    paused["release"].set()
    finish(qtbot, widget, worker)
    total = paused["calls"][0][1]
    assert total > 2 and paused["raised"] == [1]  # stopped at the next tile: one of `total` was predicted
    assert [layer.name for layer in viewer.layers] == ["big"]
    assert widget.status.value == "cancelled" and widget.run_button.enabled and not worker.is_running
    assert any(str(n.message) == "cancelled" for n in notifications)


def test_a_wrong_dimensional_layer_is_one_notification(make_napari_viewer: Any, qtbot: Any, packages: dict[str, Path],
                                                       notifications: list, capsys: Any) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((64, 64), np.float32), name="plane")
    widget = PredictWidget(viewer)
    widget.model.value, widget.device.value = packages["3d"], "cpu"
    finish(qtbot, widget, widget.start())
    errors = [str(n.message) for n in notifications if n.severity == "error"]
    assert len(errors) == 1 and "plane has axes yx but the model needs a z axis" in errors[0] and "\n" not in errors[0]
    assert [layer.name for layer in viewer.layers] == ["plane"]
    assert "Traceback" not in capsys.readouterr().err


def test_no_package_chosen_is_refused_before_any_work(make_napari_viewer: Any, notifications: list) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((64, 64), np.float32))
    widget = PredictWidget(viewer)
    assert widget.start() is None
    assert any("choose a bioimage.io package" in str(n.message) for n in notifications)


def test_a_lazy_zarr_layer_is_streamed_and_comes_back_lazy(make_napari_viewer: Any, qtbot: Any, packages: dict[str, Path],
                                                           tmp_path: Path, images: Callable[..., np.ndarray]) -> None:
    import dask.array as da
    import zarr
    from napari.layers._source import layer_source

    from gvtnet_zoo.predict.run import predict_image

    image = np.tile(images("train", "source"), (2, 2))  # 128 x 128
    store = tmp_path / "image.zarr"
    zarr.create_array(str(store), shape=image.shape, chunks=(64, 64), dtype="float32")[:] = image
    viewer = make_napari_viewer()
    with layer_source(path=str(store)):
        layer = viewer.add_image(da.from_zarr(str(store)), name="lazy", scale=(0.5, 0.25))
    widget = PredictWidget(viewer)
    widget.model.value, widget.device.value, widget.weights.value = packages["2d"], "cpu", "onnx"
    # global context: streamed tiles then give the whole image's result (a GVTNet's plain tiles see only themselves)
    widget.mode.value, widget.tile.value, widget.out_dir.value = "global context", "96,96", tmp_path / "out"
    finish(qtbot, widget, widget.start())
    result = viewer.layers[-1]
    assert result.name.endswith("(lazy)") and (tmp_path / "out" / "image.pred.ome.zarr").is_dir()
    level0 = result.data[0] if result.multiscale else result.data
    assert not isinstance(level0, np.ndarray)  # read from the OME-Zarr on demand
    assert tuple(result.scale[-2:]) == (0.5, 0.25) and layer.data.shape == image.shape
    [(expected, _)] = predict_image(packages["2d"], {"lazy": image}, weight_format="onnx", device="cpu", mode="whole",
                                    echo=lambda _: None).values()
    produced = np.asarray(level0).reshape(expected.shape)
    assert np.abs(produced - expected).max() <= 1e-5 * float(expected.max() - expected.min())


def test_replacing_a_lazy_layers_output_beside_it_never_touches_the_layer(make_napari_viewer: Any, qtbot: Any,
                                                                          packages: dict[str, Path], tmp_path: Path,
                                                                          images: Callable[..., np.ndarray]) -> None:
    """Issue 26, item 1: the default output folder is the layer's own, and "replace it" there once wiped an
    OME-Zarr layer's store (the output had its name). The output is NAME.pred.ome.zarr beside it; the store's
    bytes stay as they were, twice over (the second run replaces the first output, not the input)."""
    import dask.array as da
    import zarr
    from napari.layers._source import layer_source
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_image

    store = tmp_path / "a.ome.zarr"
    write_image(np.tile(images("train", "source"), (2, 2)), zarr.open_group(str(store), mode="w", zarr_format=3),
                fmt=FormatV05(), axes="yx", scale_factors=[])
    before = {p.relative_to(store): p.read_bytes() for p in store.rglob("*") if p.is_file()}
    viewer = make_napari_viewer()
    with layer_source(path=str(store)):
        viewer.add_image(da.from_zarr(str(store / "s0")), name="a")
    widget = PredictWidget(viewer)
    widget.model.value, widget.device.value, widget.weights.value = packages["2d"], "cpu", "onnx"
    widget.tile.value, widget.existing.value = "96,96", "replace it"
    for _ in range(2):
        finish(qtbot, widget, widget.start())
        assert (tmp_path / "a.pred.ome.zarr").is_dir()
    assert {p.relative_to(store): p.read_bytes() for p in store.rglob("*") if p.is_file()} == before


def test_a_stack_of_planes_is_predicted_plane_by_plane(make_napari_viewer: Any, qtbot: Any, packages: dict[str, Path],
                                                      images: Callable[..., np.ndarray]) -> None:
    from gvtnet_zoo.predict.run import predict_image

    stack = np.stack([images("train", "source", 0), 3 * images("train", "source", 1)])
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="time-lapse", scale=(5.0, 0.5, 0.5))
    widget = PredictWidget(viewer)
    widget.model.value, widget.device.value, widget.weights.value = packages["2d"], "cpu", "onnx"
    finish(qtbot, widget, widget.start())
    result = viewer.layers[-1]
    assert result.data.shape == stack.shape and tuple(result.scale) == (1.0, 0.5, 0.5)
    for index, plane in enumerate(stack):  # each plane as its own image: its own normalization
        [(alone, _)] = predict_image(packages["2d"], {"plane": plane}, weight_format="onnx", device="cpu",
                                     echo=lambda _: None).values()
        np.testing.assert_allclose(result.data[index], alone[0, 0], atol=1e-5 * float(np.ptp(alone)), rtol=0)


def test_outputs_are_placed_on_the_input_layer_rescaled_where_the_model_resamples() -> None:
    from types import SimpleNamespace

    from gvtnet_zoo.napari.predict_widget import layer_output

    layer = SimpleNamespace(data=np.zeros((8, 64, 64)), multiscale=False, scale=(2.0, 0.5, 0.5), translate=(0, 10, 20))
    same, where = layer_output(np.zeros((1, 1, 8, 64, 64)), "bczyx", layer)
    assert same.shape == (8, 64, 64) and where == {"scale": [2.0, 0.5, 0.5], "translate": [0.0, 10.0, 20.0],
                                                   "axis_labels": ("z", "y", "x")}
    upsampled, where = layer_output(np.zeros((1, 2, 8, 128, 128)), "bczyx", layer)  # x2 in y, x; two channels
    assert upsampled.shape == (2, 8, 128, 128)
    assert where == {"scale": [1.0, 2.0, 0.25, 0.25], "translate": [0.0, 0.0, 10.0, 20.0],
                     "axis_labels": ("c", "z", "y", "x")}
    projected, where = layer_output(np.zeros((1, 1, 64, 64)), "bcyx", layer)  # 3D to 2D: the last two axes
    assert projected.shape == (64, 64) and where["scale"] == [0.5, 0.5] and where["axis_labels"] == ("y", "x")
    layer.axis_labels = ("t", "-2", "-1")  # the input's own names where it has some, letters for napari's defaults
    assert layer_output(np.zeros((8, 1, 64, 64)), "bcyx", layer)[1]["axis_labels"] == ("t", "y", "x")


def test_a_lazy_layer_without_a_file_is_not_loaded_when_it_cannot_fit(make_napari_viewer: Any, qtbot: Any,
                                                                       packages: dict[str, Path], notifications: list,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import dask.array as da

    from gvtnet_zoo.predict import memory

    monkeypatch.setattr(memory, "free_memory_bytes", lambda devices: 1024**2)  # 1 MiB free: 256x256 floats don't fit
    viewer = make_napari_viewer()
    viewer.add_image(da.zeros((256, 256), dtype="float32", chunks=64), name="computed")
    widget = PredictWidget(viewer)
    widget.model.value, widget.device.value = packages["2d"], "cpu"
    finish(qtbot, widget, widget.start())
    errors = [str(n.message) for n in notifications if n.severity == "error"]
    assert len(errors) == 1 and "save it as OME-Zarr" in errors[0]
    assert [layer.name for layer in viewer.layers] == ["computed"]


def test_a_model_with_two_inputs_gets_a_layer_choice_for_each(make_napari_viewer: Any, qtbot: Any,
                                                              tmp_path: Path) -> None:
    from ..predict.zoo_builders import two_input_package

    package, raw, mask, expected = two_input_package(tmp_path)
    viewer = make_napari_viewer()
    viewer.add_image(raw[0, 0], name="cells")
    viewer.add_image(mask[0, 0], name="mask")
    widget = PredictWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.model.value = package
    assert [widget.image.label, *[choice.label for choice in widget.more_inputs]] == ["raw", "mask"]
    widget.image.value, widget.more_inputs[0].value, widget.device.value = viewer.layers["cells"], viewer.layers["mask"], "cpu"
    finish(qtbot, widget, widget.start())
    result = viewer.layers[-1]
    assert result.name == "two inputs (cells)"
    np.testing.assert_allclose(result.data, expected[0, 0], atol=1e-6, rtol=0)


def test_global_context_in_the_widget_equals_the_command_line(make_napari_viewer: Any, qtbot: Any,
                                                              packages: dict[str, Path], tmp_path: Path) -> None:
    import tifffile

    from gvtnet_zoo.cli import main

    image = np.random.default_rng(3).random((128, 128)).astype(np.float32)
    viewer = make_napari_viewer()
    viewer.add_image(image, name="field")
    widget = PredictWidget(viewer)
    widget.model.value, widget.device.value, widget.mode.value, widget.tile.value = packages["2d"], "cpu", \
        "global context", "96,96"
    finish(qtbot, widget, widget.start())
    assert widget.progress.value == widget.progress.max > 4  # collecting passes and the predicting pass
    tifffile.imwrite(tmp_path / "field.tif", image)
    assert main(["predict", str(packages["2d"]), str(tmp_path / "field.tif"), "--out", str(tmp_path / "cli"),
                 "--global-context", "--tile", "96,96", "--device", "cpu"]) == 0
    expected = tifffile.imread(tmp_path / "cli" / "field.tif")
    assert np.abs(viewer.layers[-1].data - expected).max() <= 1e-5 * float(np.ptp(expected))


def test_a_cancelled_large_image_is_kept_and_completed_on_request(make_napari_viewer: Any, qtbot: Any,
                                                                  packages: dict[str, Path], tmp_path: Path,
                                                                  paused: dict[str, Any], notifications: list,
                                                                  images: Callable[..., np.ndarray]) -> None:
    import dask.array as da
    import zarr
    from napari.layers._source import layer_source

    from gvtnet_zoo.predict.run import predict_image

    image = np.tile(images("train", "source"), (2, 2))
    store = tmp_path / "big.zarr"
    zarr.create_array(str(store), shape=image.shape, chunks=(64, 64), dtype="float32")[:] = image
    viewer = make_napari_viewer()
    with layer_source(path=str(store)):
        viewer.add_image(da.from_zarr(str(store)), name="big")
    widget = PredictWidget(viewer)
    widget.model.value, widget.device.value, widget.weights.value = packages["2d"], "cpu", "onnx"
    # global context: streamed tiles then give the whole image's result (a GVTNet's plain tiles see only themselves)
    widget.mode.value, widget.tile.value, widget.out_dir.value = "global context", "96,96", tmp_path / "out"
    worker = widget.start()
    qtbot.waitUntil(paused["reached"].is_set, timeout=60_000)
    widget.cancel()
    paused["release"].set()
    finish(qtbot, widget, worker)
    output = tmp_path / "out" / "big.pred.ome.zarr"
    assert len(viewer.layers) == 1 and output.is_dir() and paused["raised"] == [1]
    finish(qtbot, widget, widget.start())  # the default keeps what is there
    errors = [str(n.message) for n in notifications if n.severity == "error"]
    assert len(errors) == 1 and "exists" in errors[0] and len(viewer.layers) == 1
    widget.existing.value = "complete it (resume)"
    finish(qtbot, widget, widget.start())
    assert len(viewer.layers) == 2
    [(expected, _)] = predict_image(packages["2d"], {"big": image}, weight_format="onnx", device="cpu", mode="whole",
                                    echo=lambda _: None).values()
    produced = np.asarray(viewer.layers[-1].data[0] if viewer.layers[-1].multiscale else viewer.layers[-1].data)
    assert np.abs(produced.reshape(expected.shape) - expected).max() <= 1e-5 * float(np.ptp(expected))
