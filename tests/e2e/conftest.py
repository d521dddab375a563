"""End-to-end fixtures: the planted checkpoint, generated media, a real mosquitto."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest

from birdstream.messages import SightingEvent, StreamStatus
from tests.support.mosquitto import Mosquitto
from tests.support.planted import PLANTED_COLOURS, make_planted_checkpoint

RED, BLUE = PLANTED_COLOURS["Scarlet Tanager"], PLANTED_COLOURS["Indian Roller"]


@pytest.fixture(scope="session")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_planted_checkpoint(tmp_path_factory.mktemp("model") / "planted.pt")


@pytest.fixture()
def broker(tmp_path: Path):
    with Mosquitto(tmp_path / "broker") as server:
        yield server


def birdstream_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "birdstream", *args]


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class Collect:
    """A sink that keeps what the pipeline publishes."""

    def __init__(self) -> None:
        self.events: list[SightingEvent] = []
        self.statuses: list[StreamStatus] = []
        self.lock = threading.Lock()

    def publish(self, event: SightingEvent) -> None:
        with self.lock:
            self.events.append(event)

    def publish_status(self, status: StreamStatus) -> None:
        with self.lock:
            self.statuses.append(status)
