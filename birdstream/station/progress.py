"""Progress of a `classify` run on stderr: inputs, files, images/s and the time left.

On a terminal one status line is redrawn in place (at most twice a second); into a file or a pipe
(a log, systemd, nohup) a line is written once a minute, so a week-long run leaves ~10k lines, not
millions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import IO

from birdstream.messages import Frame

TTY_EVERY_S = 0.5
LOG_EVERY_S = 60.0


class Progress:
    """Counts a run's inputs, files and images and reports them with an estimate of the time left."""

    def __init__(self, out: IO[str], inputs: int, *, files: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`files`: how many media files the run holds when known (listed up front), for a finer ETA."""
        self.out = out
        self.tty = out.isatty()
        self.inputs, self.files = inputs, files
        self.inputs_done = self.files_done = self.images = 0
        self._clock = clock
        self._start = clock()
        self._last_source: str | None = None
        self._shown = self._start
        self._every = TTY_EVERY_S if self.tty else LOG_EVERY_S

    def frames(self, batch: Sequence[Frame]) -> None:
        """A batch was classified."""
        self.images += len(batch)
        for frame in batch:
            if frame.source is not None and frame.source != self._last_source:
                self._last_source = frame.source
                self.files_done += 1
        self._maybe_show()

    def input_done(self) -> None:
        self.inputs_done += 1
        self._maybe_show()

    def line(self) -> str:
        """The status: inputs, files, images/s, time left."""
        elapsed = max(self._clock() - self._start, 1e-9)
        files = f"{self.files_done}/{self.files}" if self.files is not None else str(self.files_done)
        rate = self.images / elapsed
        return (f"inputs {self.inputs_done}/{self.inputs}, files {files}, {self.images} images, "
                f"{rate:.1f} images/s, {_left(self._fraction(), elapsed)} left")

    def _fraction(self) -> float:
        if self.files:
            return min(self.files_done / self.files, 1.0)
        return self.inputs_done / self.inputs if self.inputs else 1.0

    def _maybe_show(self) -> None:
        now = self._clock()
        if now - self._shown < self._every:
            return
        self._shown = now
        if self.tty:
            self.out.write("\r\x1b[K" + self.line())
        else:
            self.out.write(f"birdstream: {self.line()}\n")
        self.out.flush()

    def clear(self) -> None:
        """Wipe the in-place line before another message (an error) is written to the terminal."""
        if self.tty:
            self.out.write("\r\x1b[K")

    def close(self) -> None:
        """End the in-place line on a terminal (the next message starts on a line of its own)."""
        if self.tty:
            self.out.write("\r\x1b[K" + self.line() + "\n")
            self.out.flush()


def _left(fraction: float, elapsed: float) -> str:
    if fraction <= 0:
        return "?"
    seconds = int(elapsed * (1 - fraction) / fraction)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
