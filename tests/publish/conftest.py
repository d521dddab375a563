"""Fixtures for the publish tests: a real mosquitto per test."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from birdstream.publish import Publisher
from tests.support.mosquitto import Mosquitto, TlsFiles, make_tls_files
from tests.support.options import jsonl_options, mqtt_options, outbox_options, snapshot_options


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path) as b:
        yield b


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def make_publisher(tmp_path: Path) -> Iterator[Callable[..., Publisher]]:
    """Build started Publishers with fast reconnects; every one is closed at teardown."""
    made: list[Publisher] = []

    def factory(port: int | None, *, state_dir: Path | None = None, start: bool = True, **kw: Any) -> Publisher:
        mqtt_kw = {"host": "127.0.0.1", "reconnect_min_s": 0.1, "reconnect_max_s": 0.5, "discovery": False}
        mqtt_kw.update(kw.pop("mqtt", {}))
        pub = Publisher(
            station=kw.pop("station", "garden"),
            state_dir=state_dir or tmp_path / "state",
            mqtt=mqtt_options(port=port, **mqtt_kw) if port is not None else None,
            jsonl=kw.pop("jsonl", jsonl_options()),
            snapshots=kw.pop("snapshots", snapshot_options()),
            outbox=kw.pop("outbox", outbox_options()),
            **kw,
        )
        made.append(pub)
        if start:
            pub.start()
        return pub

    yield factory
    for pub in made:
        pub.close(0.5)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met after {timeout}s")
        time.sleep(0.01)
