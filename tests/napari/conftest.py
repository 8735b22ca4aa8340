"""The napari widgets' tests: a real viewer, Qt offscreen, OpenGL on the virtual screen pytest-xvfb starts."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

LINUX = sys.platform.startswith("linux")
if LINUX:  # before pytest-qt creates the QApplication; the canvas still gets OpenGL (GLX) from Xvfb's DISPLAY
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _virtual_screen() -> None:
    if LINUX and not os.environ.get("DISPLAY"):
        pytest.fail("napari's canvas needs OpenGL on a screen: install Xvfb (`make test` does: apt-get install xvfb) "
                    "so that pytest-xvfb can start a virtual one")


@pytest.fixture
def notifications() -> list[Any]:
    """Every napari notification shown during the test."""
    from napari.utils.notifications import notification_manager

    seen: list[Any] = []
    notification_manager.notification_ready.connect(seen.append)
    yield seen
    notification_manager.notification_ready.disconnect(seen.append)


def finish(qtbot: Any, widget: Any, worker: Any, timeout_s: float = 300) -> None:
    """Wait until the widget's ``worker`` has ended (returned, failed or been cancelled) and the widget saw it."""
    assert worker is not None, "the widget refused to start (see its notification)"
    qtbot.waitUntil(lambda: not widget.busy, timeout=int(timeout_s * 1000))


@pytest.fixture
def images(denoise_2d: Path) -> Callable[[str, str], np.ndarray]:
    """A synthetic 2D denoising image: images('train', 'source') etc., 64x64 float32."""
    import tifffile

    def read(split: str, kind: str, index: int = 0) -> np.ndarray:
        return tifffile.imread(sorted((denoise_2d / split / kind).glob("*.tif"))[index]).astype(np.float32)

    return read
