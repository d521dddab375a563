"""Broken cameras next to a healthy stream: each gets a clear error state, the healthy one keeps delivering."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.daemon import Daemon, event_keys, stream_entry
from tests.support.garbage import GarbageServer
from tests.support.mosquitto import Message, Mosquitto, Subscriber

pytestmark = pytest.mark.slow  # real daemon processes


def _status(m: Message) -> dict:
    return json.loads(m.payload)


def _ends(sub: Subscriber, stream: str) -> int:
    return sum(1 for m in sub.on_topic(f"birdstream/test/{stream}/sighting") if _status(m)["event"] == "end")


def test_garbage_camera_and_unresolvable_host_are_named_errors_while_a_healthy_stream_delivers(
        daemons: Callable[..., Daemon], broker: Mosquitto, visits: Path) -> None:
    with GarbageServer() as garbage, Subscriber(broker.port, ["birdstream/test/#"]) as sub:
        daemon = daemons([
            stream_entry("good", visits, realtime=True, loop=True, sample_fps=4),
            stream_entry("garbage", garbage.url, open_timeout_s=3, stall_s=3),
            stream_entry("nowhere", "rtsp://nonexistent.invalid/x", open_timeout_s=3, stall_s=3),
        ], mqtt_port=broker.port)
        with daemon.start():
            bad = {}
            for stream in ("garbage", "nowhere"):
                bad[stream] = _status(sub.wait_for(
                    lambda m, s=stream: m.topic == f"birdstream/test/{s}/status"
                    and _status(m)["state"] in ("reconnecting", "failed") and _status(m)["error"], timeout=60)[0])
            assert garbage.connections >= 1
            # The healthy stream keeps delivering whole sightings after the others failed.
            before = _ends(sub, "good")
            sub.wait_for(lambda m: m.topic == "birdstream/test/good/sighting" and _status(m)["event"] == "end",
                         timeout=60, count=before + 2)
            assert garbage.connections >= 2  # it keeps retrying the broken camera
            assert daemon.terminate() == 0
    for stream, status in bad.items():
        error = status["error"]
        assert "\n" not in error and f"stream {stream}" in error, error
    assert "rtsp://127.0.0.1" in bad["garbage"]["error"]
    assert "unreachable" in bad["nowhere"]["error"] and "nonexistent.invalid" in bad["nowhere"]["error"]
    log = daemon.log_text()
    assert "Traceback" not in log
    assert {e["stream"] for e in daemon.events()} == {"good"}
    received = [json.loads(m.payload) for m in sub.messages if m.topic.endswith("/sighting")]
    assert event_keys(received) == event_keys(daemon.events())
