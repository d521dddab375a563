"""A stream removed by a reload leaves no series behind in /metrics."""

from __future__ import annotations

import signal
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.support.daemon import Daemon, stream_entry, wait_until
from tests.support.mosquitto import Mosquitto, free_port

pytestmark = pytest.mark.slow  # real daemon processes


def _series(port: int, stream: str) -> list[str]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return [line for line in text.splitlines() if f'stream="{stream}"' in line]


def test_metrics_of_a_removed_stream_are_cleared(daemons: Callable[..., Daemon], broker: Mosquitto,
                                                 visits: Path) -> None:
    port = free_port()
    daemon = daemons([stream_entry("one", visits, realtime=True, loop=True),
                      stream_entry("two", visits, realtime=True, loop=True)], mqtt_port=broker.port,
                     extra={"http": {"enabled": True, "port": port}})
    with daemon.start():
        daemon.wait_events(lambda evs: {"one", "two"} <= {e["stream"] for e in evs if e["event"] == "end"},
                           timeout=90)
        assert len(_series(port, "two")) >= 5  # ingest, engine, track and publish series
        config = yaml.safe_load(daemon.config_path.read_text())
        config["streams"] = [s for s in config["streams"] if s["id"] != "two"]
        daemon.config_path.write_text(yaml.safe_dump(config))
        daemon.send(signal.SIGHUP)
        daemon.wait_log("stream two: removed", 30)
        wait_until(lambda: not _series(port, "two"), 30, "stream two's series gone")
        assert _series(port, "one")
        assert daemon.terminate() == 0
