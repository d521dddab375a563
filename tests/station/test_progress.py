"""Progress of classify: a redrawn line on a terminal, one line a minute into a file or pipe."""

from __future__ import annotations

import io

import numpy as np

from birdstream.messages import Frame
from birdstream.station.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def frames(source: str, n: int) -> list[Frame]:
    return [Frame("s", i, np.zeros((2, 2, 3), np.uint8), 0.0, media_time=i / 2, source=source) for i in range(n)]


def test_into_a_file_one_line_a_minute_with_rate_and_time_left() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress(out, 2, files=4, clock=clock)
    for k in range(3):  # three files of 10 frames, 20 s each
        clock.now += 20
        progress.frames(frames(f"f{k}", 10))
    assert out.getvalue().splitlines() == [
        "birdstream: inputs 0/2, files 3/4, 30 images, 0.5 images/s, 0:00:20 left"]
    progress.input_done()
    progress.close()
    assert len(out.getvalue().splitlines()) == 1  # nothing more within the minute, no closing line


def test_on_a_terminal_the_line_is_redrawn_and_ended() -> None:
    clock, out = Clock(), Terminal()
    progress = Progress(out, 1, clock=clock)
    clock.now += 1
    progress.frames(frames("a", 4))
    clock.now += 1
    progress.input_done()
    progress.close()
    text = out.getvalue()
    assert text.count("\r\x1b[K") == 3 and text.endswith("inputs 1/1, files 1, 4 images, 2.0 images/s, 0:00:00 left\n")
