"""A corrupt outbox.sqlite3 (a power cut on an SD card): moved aside, a fresh one, MQTT goes on.

Before, a corrupt file halted MQTT for good and logged a traceback every half second while health
stayed green.
"""

from __future__ import annotations

import json
import os
import sqlite3
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.daemon import Daemon, stream_entry, wait_until
from tests.support.mosquitto import Mosquitto, Subscriber, free_port

pytestmark = pytest.mark.slow  # real daemon processes


def _damage_pages(path: Path) -> None:
    """Overwrite every page after the first (the header stays, so the file still opens)."""
    size = path.stat().st_size
    assert size > 4096, size
    with open(path, "r+b") as fh:
        fh.seek(4096)
        fh.write(bytes((i * 37 + 11) % 256 for i in range(size - 4096)))


def _health(daemon: Daemon) -> dict:
    return json.loads((daemon.state_dir / "health.json").read_text())


def _metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


def _check_reported(daemon: Daemon, http_port: int) -> str:
    line = daemon.wait_log("was corrupt", 60)
    outbox = daemon.state_dir / "outbox.sqlite3"
    aside = [p for p in daemon.state_dir.iterdir() if p.name.startswith("outbox.sqlite3.corrupt-")]
    assert aside and any(p.name in line for p in aside), line
    assert str(outbox) in line
    assert wait_until(lambda: any("was corrupt" in n for n in _health(daemon).get("notices", [])), 30,
                      "health notice")
    assert _metric(http_port, "birdstream_outbox_corrupt_total") == 1
    return line


def test_corrupt_at_start_is_moved_aside_and_mqtt_goes_on(
        daemons: Callable[..., Daemon], broker: Mosquitto, visits: Path) -> None:
    http_port = free_port()
    daemon = daemons([stream_entry("cam", visits)], mqtt_port=broker.port,
                     extra={"http": {"enabled": True, "port": http_port}})
    broker.stop()  # the first run's events stay in the outbox
    with daemon.start():
        daemon.wait_events(lambda evs: any(e["event"] == "end" for e in evs), timeout=90)
        assert daemon.terminate() == 0
    assert daemon.outbox_count() > 0
    _damage_pages(daemon.state_dir / "outbox.sqlite3")
    broker.start()
    with Subscriber(broker.port, ["birdstream/test/cam/sighting"]) as sub, daemon.start():
        _check_reported(daemon, http_port)
        first_run = {e["id"] for e in daemon.events()}
        sub.wait_for(lambda m: json.loads(m.payload)["id"] not in first_run
                     and json.loads(m.payload)["event"] == "end", timeout=90)
        assert _health(daemon)["healthy"]
        assert daemon.terminate() == 0
    log = daemon.log_text()
    assert log.count("was corrupt") == 1 and "Traceback" not in log, log[-3000:]


def test_corrupt_under_the_running_daemon_is_moved_aside_once(
        daemons: Callable[..., Daemon], broker: Mosquitto, visits: Path) -> None:
    http_port = free_port()
    daemon = daemons([stream_entry("cam", visits, realtime=True, loop=True)], mqtt_port=broker.port,
                     extra={"http": {"enabled": True, "port": http_port}})
    broker.stop()
    with daemon.start():
        daemon.wait_events(lambda evs: any(e["event"] == "end" for e in evs), timeout=90)
        outbox = daemon.state_dir / "outbox.sqlite3"
        other = sqlite3.connect(outbox, timeout=10, isolation_level=None)
        try:
            # Everything into the main file, damage it, then change the header through the WAL so
            # that the daemon's connection drops its page cache and reads the damaged pages.
            wait_until(lambda: other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0, 30,
                       "checkpoint")
            _damage_pages(outbox)
            other.execute("PRAGMA user_version = 7")
        finally:
            other.close()
        broker.start()
        with Subscriber(broker.port, ["birdstream/test/cam/sighting"]) as sub:
            _check_reported(daemon, http_port)
            before = {e["id"] for e in daemon.events()}
            sub.wait_for(lambda m: json.loads(m.payload)["id"] not in before, timeout=90)
        assert daemon.terminate() == 0
    log = daemon.log_text()
    assert log.count("was corrupt") == 1 and "Traceback" not in log, log[-3000:]
    assert os.path.exists(daemon.state_dir / "outbox.sqlite3")
