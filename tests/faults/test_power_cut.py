"""A power cut: the log lost its last lines, the outbox kept them; the next start still ends the sighting."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.daemon import Daemon, stream_entry
from tests.support.mosquitto import Mosquitto, Subscriber

pytestmark = pytest.mark.slow  # real daemon processes


def test_a_sighting_the_log_lost_is_ended_from_the_outbox(
        daemons: Callable[..., Daemon], broker: Mosquitto, long_stay: Path) -> None:
    # fsync off, as an operator may choose: the unsynced tail of the log is what a power cut takes.
    daemon = daemons([stream_entry("cam", long_stay, realtime=True)], mqtt_port=broker.port,
                     extra={"log": {"fsync": False}})
    broker.stop()  # the start event waits in the outbox
    with daemon.start():
        (start,) = [e for e in daemon.wait_events(lambda evs: any(e["event"] == "start" for e in evs), timeout=90)
                    if e["event"] == "start"]
        daemon.kill()
    assert daemon.outbox_count() > 0
    daemon.jsonl_path.write_bytes(b"")  # the power cut: the page cache never reached the card
    broker.start()
    with Subscriber(broker.port, ["birdstream/test/cam/sighting"]) as sub, daemon.start():
        ends = sub.wait_for(lambda m: json.loads(m.payload)["id"] == start["id"]
                            and json.loads(m.payload)["event"] == "end", timeout=60)
        end = json.loads(ends[0].payload)
        assert end["seq"] > start["seq"] and end["ended_at"] is not None
        assert daemon.terminate() == 0
    assert "ended 1 sighting(s)" in daemon.log_text()
