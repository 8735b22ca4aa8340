"""Progress of long work reported to a caller (the napari widgets): done / total, and a way to stop between units."""

from __future__ import annotations

import threading
from typing import Callable

from .errors import Cancelled

Progress = Callable[[int, int], None]  # (done, total) after each tile; may raise Cancelled to stop before the next


def no_progress(done: int, total: int) -> None:
    """The default: nobody is watching (the CLI shows tqdm bars instead)."""


class CancellableProgress:
    """Forwards (done, total) to ``report`` and raises Cancelled at the next tile once ``cancel()`` was called."""

    def __init__(self, report: Progress = no_progress) -> None:
        self.report = report
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def __call__(self, done: int, total: int) -> None:
        if self._cancelled.is_set():
            raise Cancelled("cancelled")
        self.report(done, total)
