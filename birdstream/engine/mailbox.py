"""Per-stream mailbox between a reader thread and the inference thread.

Live mode keeps only the newest ``capacity`` frames (latest wins: a camera that outruns the
classifier loses its oldest frames, counted, instead of growing memory). Blocking mode, for
offline use, makes ``put`` wait for room so nothing is lost; closing the mailbox releases it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable

from birdstream.engine import metrics
from birdstream.messages import Frame

# Drop reasons, the `reason` label of birdstream_engine_dropped_frames_total.
OVERFLOW = "overflow"
STALE = "stale"
INVALID = "invalid"
REMOVED = "removed"
SHUTDOWN = "shutdown"
OOM = "oom"


class Mailbox:
    """A small bounded queue of frames for one stream.

    Every method takes the mailbox's lock itself. The engine passes one re-entrant lock to all
    its mailboxes, so it can hold it across a gather over every stream and still call them.
    """

    def __init__(
        self,
        stream_id: str,
        capacity: int = 2,
        *,
        blocking: bool = False,
        lock: threading.RLock | None = None,
        on_put: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"mailbox capacity must be >= 1, got {capacity}")
        self.stream_id = stream_id
        self.capacity = capacity
        self.blocking = blocking
        self._lock = lock if lock is not None else threading.RLock()
        self._room = threading.Condition(self._lock)
        self._on_put = on_put
        self._clock = clock
        self._items: deque[tuple[float, Frame]] = deque()
        self._closed = False
        self.drops: Counter[str] = Counter()
        self.put_count = 0
        self.classified = 0
        self.max_depth = 0
        # Read when scraped, not written per frame: the hot path stays free of metric locks.
        metrics.QUEUE_DEPTH.labels(stream=stream_id).set_function(self._items.__len__)
        self._classified_total = metrics.FRAMES_CLASSIFIED.labels(stream=stream_id)  # looked up once

    @property
    def dropped(self) -> int:
        """Frames of this stream dropped for any reason."""
        with self._lock:
            return sum(self.drops.values())

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def has_frames(self) -> bool:
        """True while a frame waits to be taken."""
        return bool(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    # ---- producer side ---------------------------------------------------------------------

    def put(self, frame: Frame) -> bool:
        """Queue a frame; False if the mailbox is closed (the frame was not taken)."""
        with self._lock:
            if self.blocking:
                while len(self._items) >= self.capacity and not self._closed:
                    self._room.wait()
            if self._closed:
                return False
            if len(self._items) >= self.capacity:
                self._items.popleft()
                self._count(OVERFLOW, 1)
            self._items.append((self._clock(), frame))
            self.put_count += 1
            depth = len(self._items)
            if depth > self.max_depth:
                self.max_depth = depth
            if self._on_put is not None:
                self._on_put()
        return True

    # ---- consumer side ---------------------------------------------------------------------

    def take(self, max_images: int | None = None) -> tuple[float, Frame] | None:
        """The oldest frame with the clock() time it was queued, or None if empty (or, with
        ``max_images``, if that frame's images, its picture and region crops, would not fit); makes
        room for a put."""
        with self._lock:
            if not self._items:
                return None
            if max_images is not None and 1 + len(self._items[0][1].regions) > max_images:
                return None
            item = self._items.popleft()
            # Only a blocking put ever waits for room. It is woken once half the mailbox is free,
            # not for every frame taken: it then refills in one go, one thread switch instead of many.
            if self.blocking and len(self._items) <= self.capacity // 2:
                self._room.notify()
            return item

    def drop(self, reason: str, n: int = 1) -> None:
        """Count ``n`` frames taken from this mailbox that will not be classified (stale, invalid, oom)."""
        if n <= 0:
            return
        with self._lock:
            self._count(reason, n)

    def mark_classified(self, n: int = 1) -> None:
        """Count ``n`` frames of this stream delivered with a prediction."""
        with self._lock:
            self.classified += n
        self._classified_total.inc(n)

    def discard(self, reason: str) -> int:
        """Drop every queued frame, counted under ``reason``; returns how many."""
        with self._lock:
            n = len(self._items)
            self._items.clear()
            self._count(reason, n)
            self._room.notify_all()
            return n

    def close(self, discard: str | None = None) -> int:
        """Refuse further frames and release any blocked ``put``; with ``discard``, drop what is queued too."""
        with self._lock:
            self._closed = True
            self._room.notify_all()
            return self.discard(discard) if discard is not None else 0

    def _count(self, reason: str, n: int) -> None:
        if n <= 0:
            return
        self.drops[reason] += n
        metrics.DROPPED_FRAMES.labels(stream=self.stream_id, reason=reason).inc(n)
