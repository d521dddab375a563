"""A broker with a small packet limit and snapshots on MQTT: nothing blocks the queue.

mosquitto's ``max_packet_size`` drops the connection of a client that sends a larger packet (as AWS
IoT and EMQX do at their limits); before, the same snapshot was resent after every reconnect and no
later event ever went out.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from tests.support.daemon import Daemon, event_keys, stream_entry
from tests.support.mosquitto import Mosquitto, Subscriber

pytestmark = pytest.mark.slow  # real daemon processes

LIMIT = 4096  # bytes: far below a 320x240 snapshot of a noisy scene, far above an event


def _run_two_visits(daemons: Callable[..., Daemon], broker: Mosquitto, visits: Path,
                    mqtt: dict) -> tuple[Daemon, Subscriber]:
    """A daemon with snapshots on MQTT and two file streams, each one sighting; waits for every event."""
    sub = Subscriber(broker.port, ["birdstream/test/#"])
    daemon = daemons([stream_entry("one", visits), stream_entry("two", visits)], mqtt_port=broker.port,
                     extra={"mqtt": {"publish_snapshots": True, **mqtt}})
    daemon.start()
    events = daemon.wait_events(lambda evs: sum(e["event"] == "end" for e in evs) >= 2, timeout=120)
    keys = event_keys(events)
    sub.wait_until(lambda msgs: event_keys(json.loads(m.payload) for m in msgs
                                           if m.topic.endswith("/sighting")) >= keys, timeout=60)
    return daemon, sub


@pytest.mark.parametrize("mqtt", [{"protocol": "5"}, {"protocol": "3.1.1", "max_packet_bytes": LIMIT}],
                         ids=["mqtt5-connack", "mqtt311-configured"])
def test_snapshots_are_shrunk_to_the_broker_limit(daemons: Callable[..., Daemon], tmp_path: Path,
                                                  visits: Path, mqtt: dict) -> None:
    with Mosquitto(tmp_path / "broker", settings=[f"max_packet_size {LIMIT}"]) as broker:
        daemon, sub = _run_two_visits(daemons, broker, visits, mqtt)
        with sub:
            snaps = sub.wait_until(lambda msgs: {m.topic for m in msgs if m.topic.endswith("/snapshot")
                                                 and m.payload} >= {"birdstream/test/one/snapshot",
                                                                    "birdstream/test/two/snapshot"}, timeout=30)
            for m in snaps:
                if m.topic.endswith("/snapshot") and m.payload:
                    assert len(m.payload) < LIMIT
                    with Image.open(io.BytesIO(m.payload)) as img:
                        assert img.format == "JPEG" and min(img.size) >= 32
            assert daemon.terminate() == 0
        log = daemon.log_text()
        assert "lost the connection" not in log, log[-2000:]
        assert "set aside" not in log


def test_a_message_the_broker_keeps_refusing_is_set_aside_and_later_events_go_out(
        daemons: Callable[..., Daemon], tmp_path: Path, visits: Path) -> None:
    # MQTT 3.1.1 and no configured limit: the daemon learns only from the dropped connections.
    with Mosquitto(tmp_path / "broker", settings=[f"max_packet_size {LIMIT}"]) as broker:
        daemon, sub = _run_two_visits(daemons, broker, visits, {"protocol": "3.1.1"})
        with sub:
            assert daemon.terminate() == 0
        aside = [line for line in daemon.log_text().splitlines() if "set aside" in line]
        assert aside and all("/snapshot" in line for line in aside), aside  # never an event
        assert len(aside) == len({line.split("outbox message ")[1].split()[0] for line in aside})  # one line each
        assert daemon.outbox_count() == 0


def test_an_event_alone_over_the_limit_is_set_aside_not_retried_forever(tmp_path: Path) -> None:
    """A sighting event longer than the configured limit cannot shrink: set aside, the next one goes."""
    from birdstream.publish import Publisher
    from tests.support.options import jsonl_options, mqtt_options, outbox_options, snapshot_options
    from tests.support.sightings import sighting

    with Mosquitto(tmp_path / "broker") as broker, Subscriber(broker.port, ["birdstream/#"]) as sub:
        pub = Publisher(station="garden", state_dir=tmp_path / "state",
                        mqtt=mqtt_options(host=broker.host, port=broker.port, protocol="3.1.1",
                                          max_packet_bytes=1024),
                        jsonl=jsonl_options(), snapshots=snapshot_options(), outbox=outbox_options())
        pub.start()
        try:
            events = list(sighting(3))
            big = dataclasses.replace(events[1], species="x" * 2000)
            for event in (events[0], big, events[2]):
                pub.publish(event)
            sub.wait_for(lambda m: m.topic.endswith("/sighting") and json.loads(m.payload)["seq"] == 2, timeout=20)
        finally:
            pub.close(2)
        seqs = [json.loads(m.payload)["seq"] for m in sub.messages if m.topic.endswith("/sighting")]
        assert 1 not in seqs and {0, 2} <= set(seqs)
