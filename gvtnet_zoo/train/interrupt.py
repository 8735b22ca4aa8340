"""Ctrl-C during training stops at the end of the current step, so the checkpoint is a finished step."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator, Optional


class StopRequest:
    """Set by the first SIGINT (a second one interrupts at once: KeyboardInterrupt), or by ``request()`` from
    another thread (the napari widget's Stop button)."""

    def __init__(self) -> None:
        self.requested = False

    def request(self) -> None:
        self.requested = True


@contextlib.contextmanager
def stop_on_interrupt(stop: Optional[StopRequest] = None) -> Iterator[StopRequest]:
    """``stop`` (or a new request) set by Ctrl-C while the block runs in the main thread."""
    stop = stop or StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers can only be set from the main thread
        return

    def handle(signum: int, frame: object) -> None:
        stop.requested = True
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
