"""Make a reader thread blocked inside FFmpeg (connect, probe, read) return as soon as it is stopped.

PyAV's only interrupt hook is its timeout: FFmpeg polls an interrupt callback about every 100 ms
while waiting on the network, and the callback compares ``time.monotonic()`` (looked up in
``av.container.core``) against the start of the current call plus the timeout. Closing a container
from another thread is unsafe (use after free). So the callback's clock is wrapped once: in a
thread whose stop event is set it jumps far ahead on every call, the timeout elapses, and the
blocked call returns ``AVERROR_EXIT``. Other threads see the real clock. If a future PyAV moves
the clock, installation is skipped and shutdown falls back to the read timeout.
"""

from __future__ import annotations

import logging
import threading
import types
from typing import Any

log = logging.getLogger(__name__)

_JUMP_S = 1e7  # far beyond any timeout a source uses


class _InterruptibleClock:
    """Stands in for the `time` module inside av.container.core."""

    def __init__(self, real: types.ModuleType) -> None:
        self._real = real
        self._events: dict[int, threading.Event] = {}
        self._jumps: dict[int, float] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def monotonic(self) -> float:
        ident = threading.get_ident()
        event = self._events.get(ident)
        now = self._real.monotonic()
        if event is None or not event.is_set():
            return now
        # Strictly increasing jumps: PyAV also reads this clock to mark the start of a call.
        with self._lock:
            jump = self._jumps.get(ident, 0.0) + _JUMP_S
            self._jumps[ident] = jump
        return now + jump

    def register(self, event: threading.Event) -> None:
        with self._lock:
            self._events[threading.get_ident()] = event
            self._jumps.pop(threading.get_ident(), None)

    def unregister(self) -> None:
        with self._lock:
            self._events.pop(threading.get_ident(), None)
            self._jumps.pop(threading.get_ident(), None)


_install_lock = threading.Lock()


def _clock() -> _InterruptibleClock | None:
    import av.container.core as core

    with _install_lock:
        current = getattr(core, "time", None)
        if isinstance(current, _InterruptibleClock):
            return current
        if not isinstance(current, types.ModuleType) or not hasattr(current, "monotonic"):
            log.debug("PyAV interrupt clock not found; stop waits for the read timeout")
            return None
        clock = _InterruptibleClock(current)
        core.time = clock  # type: ignore[assignment]
        return clock


class interruptible:
    """Context manager: FFmpeg calls made by this thread return soon after `event` is set."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event
        self._clock: _InterruptibleClock | None = None

    def __enter__(self) -> interruptible:
        self._clock = _clock()
        if self._clock is not None:
            self._clock.register(self._event)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._clock is not None:
            self._clock.unregister()
