"""Fixtures of the ingest tests: small generated media with known content and times."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest

from birdstream.messages import Frame, StreamStatus
from tests.support.video import Box, make_video

RED = (255, 0, 0)
CREATED = datetime(2024, 5, 1, 6, 0, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip(media: Path) -> Path:
    """2 s, 10 fps, 160x120; a red box appears at 1.0 s; creation_time 2024-05-01T06:00:00Z."""
    return make_video(media / "clip.mp4", duration_s=2.0, fps=10, size=(160, 120), gop=10,
                      objects=[Box(RED, (100, 40, 40, 40), start_s=1.0)], creation_time=CREATED)


@pytest.fixture(scope="session")
def rtsp_video(media: Path) -> Path:
    """Long enough to outlive a test; key frame every 0.5 s so a (re)connect starts quickly."""
    return make_video(media / "rtsp.mp4", duration_s=60.0, fps=10, size=(160, 120), gop=5, noise=False)


class Collector:
    """Collects frames and statuses from a reader; waits on conditions with a deadline."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.arrivals: list[float] = []  # monotonic time each frame reached emit()
        self.statuses: list[StreamStatus] = []
        self._cond = threading.Condition()

    def emit(self, frame: Frame) -> None:
        with self._cond:
            self.frames.append(frame)
            self.arrivals.append(time.monotonic())
            self._cond.notify_all()

    def on_status(self, status: StreamStatus) -> None:
        with self._cond:
            self.statuses.append(status)
            self._cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}; statuses: {self.states}")
                self._cond.wait(min(left, 0.1))

    @property
    def states(self) -> list[str]:
        return [s.state for s in self.statuses]


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
def readers():
    """StreamReaders started by a test are stopped and joined at teardown."""
    started = []
    yield started
    for r in started:
        r.stop()
    for r in started:
        assert r.join(5.0), f"reader {r.spec.id} did not stop"
