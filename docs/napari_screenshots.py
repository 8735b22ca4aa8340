"""Screenshots of the napari widgets for the README, from a real viewer doing real work.

    python docs/napari_screenshots.py [--out docs/napari] [--steps 300]

Opens the label-free sample data, trains the demo GVTNet from the layers in the Train widget, packages
the run in the Package widget (bioimageio.core tests every weight format), predicts the held-out time
points in the Predict widget, and saves the viewer window with each widget docked: train.png,
package.png, predict.png. On Linux without a screen it runs itself under xvfb-run (Qt's X11 platform on a
virtual screen with Mesa's OpenGL: `make screen` installs them).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SIZE = (1700, 1000)  # the window, in pixels


def _wait(app: Any, widget: Any, timeout_s: float = 1800) -> None:
    """Run Qt's event loop until the widget's worker has ended."""
    start = time.monotonic()
    while widget.busy:
        app.processEvents()
        time.sleep(0.02)
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"{type(widget).__name__} still busy after {timeout_s} s")
    app.processEvents()


def _narrow(viewer: Any, dock: Any) -> Any:
    """A dock a third of the window wide, leaving the canvas the rest."""
    from qtpy.QtCore import Qt

    viewer.window._qt_window.resizeDocks([dock], [SIZE[0] // 3], Qt.Orientation.Horizontal)
    return dock


def _dock(viewer: Any, widget: Any, name: str) -> Any:
    return _narrow(viewer, viewer.window.add_dock_widget(widget, name=name, area="right"))


def _save(viewer: Any, app: Any, path: Path) -> None:
    from imageio.v3 import imwrite

    viewer.dims.current_step = (0,) * viewer.dims.ndim  # the first time point of the stacks
    viewer.reset_view()
    for _ in range(5):
        app.processEvents()
    imwrite(path, viewer.screenshot(canvas_only=False, flash=False))
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "napari")
    parser.add_argument("--steps", type=int, default=300, help="training steps (the demo's 300 by default)")
    args = parser.parse_args()
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        screen = f"-screen 0 {SIZE[0] + 200}x{SIZE[1] + 200}x24"
        os.execvp("xvfb-run", ["xvfb-run", "-a", "-s", screen, sys.executable, *sys.argv])
    import napari
    from napari.qt import get_qapp

    from gvtnet_zoo.napari.package_widget import PackageWidget
    from gvtnet_zoo.napari.train_widget import TrainWidget

    args.out.mkdir(parents=True, exist_ok=True)
    app = get_qapp()
    viewer = napari.Viewer(show=False)
    viewer.window._qt_window.resize(*SIZE)
    viewer.open_sample("gvtnet-zoo", "label-free")
    with tempfile.TemporaryDirectory(prefix="gvtnet-zoo-screenshots-") as tmp:
        trainer = TrainWidget(viewer)
        dock = _dock(viewer, trainer, "Train (gvtnet-zoo)")
        trainer.spec.value = "demo-gvtnet-label-free-2d"
        trainer.source.value, trainer.target.value = viewer.layers["transmitted light"], viewer.layers["Hoechst"]
        trainer.val_source.value = viewer.layers["transmitted light (held out)"]
        trainer.val_target.value = viewer.layers["Hoechst (held out)"]
        trainer.run_dir.value = Path(tmp) / "label-free-run"
        trainer.steps.value = args.steps
        trainer.start(resume=False)
        _wait(app, trainer)
        if not (Path(tmp) / "label-free-run" / "checkpoints" / "best.pt").is_file():
            sys.exit(f"training failed: {trainer.status.value}")
        viewer.layers["Hoechst"].visible = False
        _save(viewer, app, args.out / "train.png")
        viewer.window.remove_dock_widget(dock)

        packager = PackageWidget(viewer)
        dock = _dock(viewer, packager, "Package (gvtnet-zoo)")
        packager.run_dir.value, packager.out.value = Path(tmp) / "label-free-run", Path(tmp) / "label-free.zip"
        packager.name.value = "gvtnet label-free demo"
        packager.authors.value = "A. Microscopist;Example Institute"
        packager.start()
        _wait(app, packager)
        if packager.package is None:
            sys.exit(f"packaging failed: {packager.results.value}")
        _save(viewer, app, args.out / "package.png")

        viewer.window.remove_dock_widget(dock)
        predictor = packager.open_predict()
        _narrow(viewer, viewer.window._dock_widgets["Predict (gvtnet-zoo)"])
        predictor.image.value = viewer.layers["transmitted light (held out)"]
        predictor.device.value = "cpu"
        predictor.start()
        _wait(app, predictor)
        for layer in viewer.layers:
            layer.visible = layer.name in ("transmitted light (held out)", viewer.layers[-1].name)
        viewer.layers[-1].colormap, viewer.layers[-1].blending = "magma", "additive"
        _save(viewer, app, args.out / "predict.png")
    viewer.close()


if __name__ == "__main__":
    main()
