"""The camera and the broker go away and come back: nothing is lost, every stream resumes."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.daemon import Daemon, event_keys, sightings_by_id, stream_entry, wait_until
from tests.support.mosquitto import Message, Mosquitto, Subscriber
from tests.support.rtsp import RtspServer, gi_available

pytestmark = pytest.mark.slow  # real daemon processes

needs_rtsp = pytest.mark.skipif(not gi_available(), reason="GStreamer RTSP server (python3-gi) not installed")


def payload(m: Message) -> dict:
    return json.loads(m.payload)


def received_events(sub: Subscriber) -> list[dict]:
    return [payload(m) for m in sub.messages if m.topic.endswith("/sighting")]


def assert_log_and_mqtt_agree(daemon: Daemon, sub: Subscriber) -> list[dict]:
    """Every (id, seq) of sightings.jsonl reached the subscriber and nothing else did; every start ended."""
    events = daemon.events()
    assert events, "no events at all"
    keys = event_keys(events)
    assert len(keys) == len(events), "sightings.jsonl holds a duplicate (id, seq)"
    sub.wait_until(lambda msgs: event_keys(json.loads(m.payload) for m in msgs
                                           if m.topic.endswith("/sighting")) >= keys, timeout=30)
    assert event_keys(received_events(sub)) == keys
    for sid, evs in sightings_by_id(events).items():
        assert [e["seq"] for e in evs] == list(range(len(evs))), sid
        assert evs[0]["event"] == "start" and evs[-1]["event"] == "end", (sid, [e["event"] for e in evs])
    return events


@needs_rtsp
def test_camera_killed_and_restarted_while_the_broker_restarts(
        daemons: Callable[..., Daemon], broker: Mosquitto, long_stay: Path, visits: Path) -> None:
    with RtspServer(long_stay) as camera, Subscriber(broker.port, ["birdstream/test/#"],
                                                     persistent_session=True) as sub:
        daemon = daemons([
            stream_entry("cam", camera.url, stall_s=3, open_timeout_s=3, sample_fps=4),
            stream_entry("file", visits, realtime=True, loop=True, sample_fps=4),
        ], mqtt_port=broker.port)
        with daemon.start():
            first = payload(sub.wait_for(lambda m: m.topic == "birdstream/test/cam/sighting"
                                         and payload(m)["event"] == "start", timeout=60)[0])
            sub.wait_for(lambda m: m.topic == "birdstream/test/file/sighting" and payload(m)["event"] == "end",
                         timeout=60)
            camera.kill()
            broker.stop()
            # With the broker gone the daemon still decides: the camera's sighting ends, the file's go on.
            logged = len(daemon.events())
            daemon.wait_events(lambda evs: any(e["id"] == first["id"] and e["event"] == "end" for e in evs)
                               and sum(e["stream"] == "file" and e["event"] == "end" for e in evs[logged:]) >= 1,
                               timeout=60, what="camera sighting ended and a file sighting logged while offline")
            camera.start()
            broker.start()
            status = sub.wait_for(lambda m: m.topic == "birdstream/test/cam/status"
                                  and payload(m)["state"] == "running" and payload(m)["reconnects"] >= 1,
                                  timeout=60)[0]
            assert payload(status)["error"] is None
            second = payload(sub.wait_for(lambda m: m.topic == "birdstream/test/cam/sighting"
                                          and payload(m)["event"] == "start" and payload(m)["id"] != first["id"],
                                          timeout=60)[0])
            assert second["species"] == "Scarlet Tanager"
            assert daemon.terminate() == 0
        assert "Traceback" not in daemon.log_text()
        events = assert_log_and_mqtt_agree(daemon, sub)
    assert {e["stream"] for e in events} == {"cam", "file"}


def test_broker_down_for_three_runs_then_everything_arrives(
        daemons: Callable[..., Daemon], broker: Mosquitto, visits: Path) -> None:
    # The subscriber's session (and what is queued for it) lives in the broker's persistence file.
    with Subscriber(broker.port, ["birdstream/test/+/sighting"], persistent_session=True) as sub:
        broker.stop()
        daemon = daemons([stream_entry("file", visits, sample_fps=4)], mqtt_port=broker.port)
        for run in range(1, 4):
            with daemon.start():
                daemon.wait_events(lambda evs, n=run: sum(e["event"] == "end" for e in evs) >= n, timeout=60,
                                   what=f"sighting of run {run} logged")
                if run < 3:
                    assert daemon.terminate() == 0
                    assert daemon.outbox_count() > 0
                    assert "cannot reach MQTT broker" in daemon.log_text()
                    continue
                broker.start()
                keys = event_keys(daemon.events())
                sub.wait_until(lambda msgs: event_keys(json.loads(m.payload) for m in msgs) >= keys, timeout=90)
                wait_until(lambda: daemon.outbox_count() == 0, 30, "outbox drained")
                assert daemon.terminate() == 0
        assert "Traceback" not in daemon.log_text(all_runs=True)
        events = assert_log_and_mqtt_agree(daemon, sub)
    assert len(sightings_by_id(events)) == 3
    # Within one sighting the subscriber saw the events in order (first arrival of each).
    seen: dict[str, int] = {}
    for e in received_events(sub):
        assert e["seq"] <= seen.get(e["id"], -1) + 1, e
        seen[e["id"]] = max(seen.get(e["id"], -1), e["seq"])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_at_a_random_moment_loses_nothing(
        daemons: Callable[..., Daemon], broker: Mosquitto, visits: Path, blue_visits: Path, seed: int) -> None:
    rng = random.Random(seed)
    with Subscriber(broker.port, ["birdstream/test/+/sighting"]) as sub:
        daemon = daemons([
            stream_entry("red", visits, realtime=True, loop=True, sample_fps=4),
            stream_entry("blue", blue_visits, realtime=True, loop=True, sample_fps=4),
        ], mqtt_port=broker.port)
        with daemon.start():
            daemon.wait_events(lambda evs: len(evs) >= 1, timeout=60)
            # A moment somewhere in the next two loops of the clips: mid-sighting, mid-write, or idle.
            deadline = len(daemon.events()) + rng.randint(1, 8)
            daemon.wait_events(lambda evs: len(evs) >= deadline, timeout=60)
            time.sleep(rng.uniform(0.0, 1.5))  # the random input of this test: where between two events it lands
            assert daemon.kill() == -9
        logged = event_keys(daemon.events())
        with daemon.start():
            sub.wait_until(lambda msgs: event_keys(json.loads(m.payload) for m in msgs) >= logged, timeout=60)
            assert daemon.terminate() == 0
        assert "Traceback" not in daemon.log_text(all_runs=True)
        events = daemon.events()
        keys = event_keys(events)
        sub.wait_until(lambda msgs: event_keys(json.loads(m.payload) for m in msgs) >= keys, timeout=30)
        assert event_keys(received_events(sub)) == keys
        assert len(keys) == len(events)
    for sid, evs in sightings_by_id(events).items():  # the one open at the kill was ended by the restart
        assert [e["seq"] for e in evs] == list(range(len(evs))), sid
        assert evs[0]["event"] == "start" and evs[-1]["event"] == "end", (sid, [e["event"] for e in evs])


def test_sightings_open_when_killed_are_ended_by_the_next_start(
        daemons: Callable[..., Daemon], broker: Mosquitto, long_stay: Path) -> None:
    with Subscriber(broker.port, ["birdstream/test/+/sighting"]) as sub:
        daemon = daemons([stream_entry("stay", long_stay, realtime=True, sample_fps=4)], mqtt_port=broker.port)
        with daemon.start():
            daemon.wait_events(lambda evs: any(e["event"] == "start" for e in evs), timeout=60)
            assert daemon.kill() == -9
        # A power cut in the middle of a line: the next start ends that line and goes on.
        with daemon.jsonl_path.open("ab") as fh:
            fh.write(b'{"schema": 1, "id": "cut-in-ha')
        (opened,) = [evs for evs in sightings_by_id(daemon.events()).values() if evs[-1]["event"] != "end"]
        with daemon.start():
            end = payload(sub.wait_for(lambda m: payload(m)["id"] == opened[0]["id"]
                                       and payload(m)["event"] == "end", timeout=60)[0])
            assert daemon.terminate() == 0
        assert "left open" in daemon.log_text()
    assert end["seq"] == opened[-1]["seq"] + 1 and end["ended_at"] == opened[-1]["updated_at"]
    assert end["species"] == "Scarlet Tanager" and end["started_at"] == opened[0]["started_at"]
    lines = daemon.jsonl_path.read_text().splitlines()
    assert sum(line.startswith('{"schema": 1, "id": "cut-in-ha') for line in lines) == 1
    logged = [json.loads(line) for line in lines if not line.startswith('{"schema": 1, "id": "cut-in-ha')]
    for sid, evs in sightings_by_id(logged).items():
        assert evs[0]["event"] == "start" and evs[-1]["event"] == "end", sid
    assert event_keys(received_events(sub)) == event_keys(logged)
