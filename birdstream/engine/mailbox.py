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
    """A small bounded queue of frames for one stream."""

    def __init__(
        self,
        stream_id: str,
        capacity: int = 2,
        *,
        blocking: bool = False,
        lock: threading.Lock | None = None,
        on_put: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"mailbox capacity must be >= 1, got {capacity}")
        self.stream_id = stream_id
        self.capacity = capacity
        self.blocking = blocking
        # The engine passes its own lock so one condition can watch every mailbox.
        self._lock = lock if lock is not None else threading.Lock()
        self._room = threading.Condition(self._lock)
        self._on_put = on_put
        self._clock = clock
        self._items: deque[tuple[float, Frame]] = deque()
        self._closed = False
        self.drops: Counter[str] = Counter()
        self.put_count = 0
        self.classified = 0
        self.max_depth = 0
        self._depth = metrics.QUEUE_DEPTH.labels(stream=stream_id)
        self._depth.set(0)

    @property
    def dropped(self) -> int:
        """Frames of this stream dropped for any reason."""
        with self._lock:
            return sum(self.drops.values())

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

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
                self._count_drop_locked(OVERFLOW)
            self._items.append((self._clock(), frame))
            self.put_count += 1
            depth = len(self._items)
            self.max_depth = max(self.max_depth, depth)
            self._depth.set(depth)
            if self._on_put is not None:
                self._on_put()
        return True

    def close(self) -> None:
        """Refuse further frames and release any blocked ``put``."""
        with self._lock:
            self._closed = True
            self._room.notify_all()

    # The methods below are called with the shared lock held (by the engine).

    def _pop_locked(self) -> tuple[float, Frame] | None:
        if not self._items:
            return None
        item = self._items.popleft()
        self._depth.set(len(self._items))
        self._room.notify()
        return item

    def _has_items_locked(self) -> bool:
        return bool(self._items)

    def _count_drop_locked(self, reason: str, n: int = 1) -> None:
        if n <= 0:
            return
        self.drops[reason] += n
        metrics.DROPPED_FRAMES.labels(stream=self.stream_id, reason=reason).inc(n)

    def _discard_all_locked(self, reason: str) -> int:
        n = len(self._items)
        self._items.clear()
        self._depth.set(0)
        self._count_drop_locked(reason, n)
        self._room.notify_all()
        return n
