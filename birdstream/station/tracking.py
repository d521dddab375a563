"""The tracker thread: every stream's tracker is updated here, off the inference thread.

The engine hands each batch's predictions over (``submit``) and goes back to feeding the device.
Every other call into the trackers (a stream added or removed, a stream that ended, the
once-a-second tick, shutdown) is queued behind the predictions already handed over and runs on
this same thread, so the trackers need no lock and one sighting's events leave in order.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Protocol

from birdstream.messages import Prediction, SightingEvent

log = logging.getLogger(__name__)


class StreamTracker(Protocol):
    def update(self, pred: Prediction) -> list[SightingEvent]: ...

    def tick(self, now: float | None = None) -> list[SightingEvent]: ...

    def close(self) -> list[SightingEvent]: ...


class TrackerThread:
    """One thread that owns the per-stream trackers; ``emit`` receives their events in order.

    ``max_batches`` bounds the prediction batches waiting here: a tracker that falls behind makes
    the engine wait (its heartbeat then shows it) instead of memory growing.
    """

    def __init__(self, emit: Callable[[list[SightingEvent]], None], *, max_batches: int = 8,
                 name: str = "track") -> None:
        self._emit = emit
        self._max = max(1, max_batches)
        self._trackers: dict[str, StreamTracker] = {}
        self._queue: deque[tuple[str, object]] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._tick_queued = False
        self.error: BaseException | None = None
        self.updates = 0  # predictions fed to a tracker
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # ---- called from other threads ---------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def submit(self, predictions: list[Prediction]) -> None:
        """Queue one batch's predictions (the engine's on_predictions); waits while the queue is full."""
        with self._cond:
            while (len(self._queue) >= self._max and not self._stopping and self._thread.is_alive()):
                self._cond.wait(0.5)
            if self._stopping or not self._thread.is_alive():
                if self.error is not None:
                    raise RuntimeError(f"the tracker thread failed: {self.error}")
                return
            self._queue.append(("predictions", predictions))
            self._cond.notify_all()

    def call(self, fn: Callable[[], list[SightingEvent]], timeout: float | None = 30.0) -> bool:
        """Run ``fn`` on the tracker thread after everything queued before it, emit its events, wait for it.

        Returns False if the thread is not running or did not get to it within ``timeout``.
        """
        done = threading.Event()
        if not self._enqueue("call", (fn, done)):
            return False
        return done.wait(timeout)

    def add(self, stream_id: str, tracker: StreamTracker) -> None:
        self.call(lambda: self._trackers.__setitem__(stream_id, tracker) or [])

    def close_stream(self, stream_id: str, *, forget: bool = False) -> None:
        """End the stream's open sightings (after its queued predictions); ``forget`` drops its tracker too."""

        def close() -> list[SightingEvent]:
            tracker = self._trackers.pop(stream_id, None) if forget else self._trackers.get(stream_id)
            return tracker.close() if tracker is not None else []

        self.call(close)

    def tick(self) -> None:
        """Queue a tick of every tracker (at most one waits at a time: a slow thread is not buried in ticks)."""
        with self._cond:
            if self._tick_queued:
                return
            self._tick_queued = True
        if not self._enqueue("tick", None):
            with self._cond:
                self._tick_queued = False

    def stop(self, timeout: float = 30.0) -> bool:
        """Finish every queued batch, end every open sighting, and exit; True if the thread has ended."""
        if self._thread.ident is None:
            return True

        def close_all() -> list[SightingEvent]:
            return [e for tracker in self._trackers.values() for e in tracker.close()]

        self._enqueue("call", (close_all, threading.Event()))
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    # ---- the thread --------------------------------------------------------------------------

    def _enqueue(self, kind: str, item: object) -> bool:
        with self._cond:
            if self._stopping or not self._thread.is_alive():
                return False
            self._queue.append((kind, item))
            self._cond.notify_all()
            return True

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._stopping:
                        self._cond.wait()
                    if not self._queue:
                        return  # stopping, and everything queued is done
                    kind, item = self._queue.popleft()
                    self._cond.notify_all()  # room for a waiting submit
                self._handle(kind, item)
        except BaseException as exc:  # noqa: BLE001 - surfaced to the supervisor via .error
            self.error = exc
            log.exception("track: the tracker thread failed; it has stopped")
        finally:
            with self._cond:
                self._stopping = True
                for kind, item in self._queue:
                    if kind == "call":
                        item[1].set()  # type: ignore[index]
                self._queue.clear()
                self._cond.notify_all()

    def _handle(self, kind: str, item: object) -> None:
        if kind == "predictions":
            self._update(item)  # type: ignore[arg-type]
        elif kind == "tick":
            with self._cond:
                self._tick_queued = False
            self._emit([e for tracker in self._trackers.values() for e in tracker.tick()])
        else:
            fn, done = item  # type: ignore[misc]
            try:
                self._emit(fn())
            finally:
                done.set()

    def _update(self, predictions: list[Prediction]) -> None:
        trackers = self._trackers
        events: list[SightingEvent] = []
        for prediction in predictions:
            tracker = trackers.get(prediction.frame.stream_id)
            if tracker is not None:
                events += tracker.update(prediction)
        self.updates += len(predictions)
        if events:
            self._emit(events)
