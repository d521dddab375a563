"""A bounded queue drained by one thread: the shape of every publish sink."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from birdstream.publish import metrics

log = logging.getLogger(__name__)

T = TypeVar("T")
_STOP = object()


def wait_queue_done(q: queue.Queue[Any], deadline: float) -> bool:
    with q.all_tasks_done:
        while q.unfinished_tasks:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            q.all_tasks_done.wait(left)
    return True


class SinkThread(Generic[T]):
    """A bounded queue drained by one thread; full queue -> item dropped, counted, logged."""

    def __init__(self, name: str, handle: Callable[[T], None], maxsize: int = 10_000) -> None:
        self.name = name
        self._handle = handle
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._thread = threading.Thread(target=self._run, name=f"publish:{name}", daemon=True)
        self._failing = False

    def start(self) -> None:
        self._thread.start()

    def submit(self, item: T) -> bool:
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            metrics.SINK_DROPPED.labels(sink=self.name).inc()
            log.error("%s sink queue full (%d items): an item was dropped", self.name, self._queue.maxsize)
            return False

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                self._queue.task_done()
                return
            try:
                self._handle(item)
                if self._failing:
                    log.info("%s sink works again", self.name)
                self._failing = False
            except OSError as err:
                metrics.SINK_ERRORS.labels(sink=self.name).inc()
                if not self._failing:
                    log.error("%s sink: write failed (%s); later items are still tried", self.name, err)
                self._failing = True
            except Exception:  # noqa: BLE001 - one bad item must not end the sink
                metrics.SINK_ERRORS.labels(sink=self.name).inc()
                log.exception("%s sink failed on an item", self.name)
            finally:
                self._queue.task_done()

    def wait_idle(self, deadline: float) -> bool:
        """Wait (until the monotonic deadline) for every queued item to be handled."""
        return wait_queue_done(self._queue, deadline)

    def close(self, timeout: float) -> bool:
        """Finish what is queued (up to timeout); True when the thread ended."""
        if not self._thread.is_alive():
            return True
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return False
        self._thread.join(timeout)
        return not self._thread.is_alive()
