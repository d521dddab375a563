"""Fault fixtures: the planted checkpoint, small generated clips, a real mosquitto, a daemon factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Daemon
from tests.support.mosquitto import Mosquitto
from tests.support.planted import PLANTED_COLOURS, make_planted_checkpoint
from tests.support.video import Box, make_video

RED, BLUE, GREEN = (PLANTED_COLOURS["Scarlet Tanager"], PLANTED_COLOURS["Indian Roller"],
                    PLANTED_COLOURS["Green Bee-eater"])
BIRD = (110, 70, 100, 90)  # on 320x240: ~12% of the frame, well above the planted model's threshold


@pytest.fixture(scope="session")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_planted_checkpoint(tmp_path_factory.mktemp("model") / "planted.pt")


@pytest.fixture(scope="session")
def visits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6 s clip where a red bird is in view from 1 s to 3.5 s: looped, one sighting per loop."""
    return make_video(tmp_path_factory.mktemp("media") / "visits.mp4", duration_s=6, fps=10,
                      objects=[Box(RED, BIRD, 1.0, 3.5)])


@pytest.fixture(scope="session")
def blue_visits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("media") / "blue.mp4", duration_s=6, fps=10, seed=3,
                      objects=[Box(BLUE, BIRD, 1.5, 4.0)])


@pytest.fixture(scope="session")
def long_stay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 s where a red bird arrives at 1 s and stays: a sighting that is open whenever a test looks."""
    return make_video(tmp_path_factory.mktemp("media") / "stay.mp4", duration_s=60, fps=5, gop=10,
                      objects=[Box(RED, BIRD, 1.0, None)])


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker", persistence=True) as server:
        yield server


@pytest.fixture()
def daemons(tmp_path: Path, planted: Path) -> Iterator[Callable[..., Daemon]]:
    """A factory of Daemon configs in tmp_path; every one is stopped at teardown."""
    made: list[Daemon] = []

    def make(streams: list[dict], *, name: str = "daemon", **kwargs: object) -> Daemon:
        daemon = Daemon(tmp_path / name, planted, streams, **kwargs)  # type: ignore[arg-type]
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.stop()
