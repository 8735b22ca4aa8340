"""File I/O overlapped with computation: the next input is read, and the last output written, in threads.

On a GPU a volume is predicted faster than its TIFF is read or written, so a folder run sequentially
spends most of its time waiting for files. Both helpers keep at most one file in flight, so memory
grows by at most one input and one output.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, Callable, Iterator, Optional, Sequence, TypeVar

Item = TypeVar("Item")
Loaded = TypeVar("Loaded")


def prefetched(items: Sequence[Item], read: Callable[[Item], Loaded]) -> Iterator[tuple[Item, Loaded]]:
    """``(item, read(item))`` in order; ``read`` of the next item runs in a thread while the caller works.

    An exception from ``read`` is raised when the caller reaches that item, not before.
    """
    if not items:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="gvtnet-zoo-read") as pool:
        pending = pool.submit(read, items[0])
        for index, item in enumerate(items):
            loaded = pending.result()
            if index + 1 < len(items):
                pending = pool.submit(read, items[index + 1])
            yield item, loaded


class BackgroundWriter:
    """Runs writes in one thread, at most one behind the caller.

    ``submit`` first waits for the previous write and re-raises its error, so a failed write stops the
    run at the next file. Leaving the block waits for the last write (and raises its error); when the
    block is left by an exception, the write in flight still finishes, so a file already predicted is
    never lost or left half-written.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="gvtnet-zoo-write")
        self._pending: Optional[Future[Any]] = None

    def __enter__(self) -> "BackgroundWriter":
        return self

    def submit(self, write: Callable[..., Any], *args: Any) -> None:
        """Start ``write(*args)`` once the previous write has finished."""
        self.wait()
        self._pending = self._pool.submit(write, *args)

    def wait(self) -> None:
        """Block until the write in flight (if any) is done; re-raise its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 traceback: Optional[TracebackType]) -> None:
        try:
            if exc_type is None:
                self.wait()
        finally:
            self._pool.shutdown(wait=True)
