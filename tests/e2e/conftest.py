"""End-to-end fixtures: the planted checkpoint, generated media, a real mosquitto."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

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
