"""What every widget shares: one-line notifications for errors, background workers, and a hop to the GUI thread."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Optional

from magicgui.widgets import Container
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, Signal

from ..errors import Cancelled, PackageFailed, TrainingInterrupted, UserError, os_error_line

log = logging.getLogger(__name__)


def one_line(err: BaseException) -> str:
    """The one line a user sees for ``err``: the CLI's wording for bad input, the type and first line otherwise."""
    if isinstance(err, (UserError, PackageFailed, TrainingInterrupted, Cancelled)):
        return str(err)
    if isinstance(err, OSError):
        return os_error_line(err)
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first[:300]}"


def report(err: BaseException) -> None:
    """An error as a one-line notification (an expected stop as information), never a traceback."""
    if isinstance(err, (Cancelled, TrainingInterrupted)):
        show_info(one_line(err))
        return
    if not isinstance(err, (UserError, PackageFailed, OSError)):
        log.debug("unexpected error in a gvtnet-zoo widget", exc_info=err)  # for developers: logging at DEBUG
    show_error(f"gvtnet-zoo: {one_line(err)}")


class Relay(QObject):
    """Carries values from a worker thread to the GUI thread (Qt queues a signal emitted in another thread)."""

    event = Signal(object)


def chosen_path(field: Any) -> Optional[Path]:
    """A FileEdit's path, or None while nothing is chosen (magicgui reports an empty field as '.')."""
    text = str(field.value or "")
    return None if text in ("", ".") else Path(text)


class WorkerWidget(Container):
    """A widget that checks its fields in the GUI thread, then runs one job at a time in a background worker.

    ``relay.event`` carries what the job reports (progress, losses, test results) to ``on_event``.
    """

    def __init__(self, viewer: Any) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        self.worker: Any = None
        self.busy = False  # a worker runs; False again once it has ended, whatever the outcome
        self.relay = Relay()
        self.relay.event.connect(self.on_event)

    def launch(self, prepare: Callable[[], Any], func: Callable[..., Any], *args: Any) -> Any:
        """``func(prepare(), *args)`` in a worker; a UserError from ``prepare`` is one notification and no worker."""
        try:
            job = prepare()
        except UserError as err:
            report(err)
            return None
        self.busy = True  # the callbacks run in the GUI thread; "finished" comes after "returned" or "errored"
        self.worker = create_worker(func, job, *args, _connect={"returned": self.on_return, "errored": self.on_error,
                                                                "finished": self._finished})
        return self.worker

    def _finished(self) -> None:
        self.busy = False
        self.on_finish()

    def on_event(self, value: Any) -> None:
        """What the job reported, in the GUI thread."""

    def on_return(self, result: Any) -> None:
        """The job's result, in the GUI thread."""

    def on_error(self, err: BaseException) -> None:
        report(err)

    def on_finish(self) -> None:
        """After the result or the error: buttons back to idle."""
