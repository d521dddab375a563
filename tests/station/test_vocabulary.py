"""One event vocabulary: the same sighting event is the same bytes through every writer.

MQTT (a real mosquitto), sightings.jsonl, `birdstream classify`'s output and the end a restart
publishes for a sighting a killed run left open all encode an event the same way, and a logged
line reads back (SightingEvent.from_payload) as the event that was written.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

from birdstream.messages import STREAM_STATES, SightingEvent
from birdstream.publish import Publisher, load_schema
from birdstream.publish.discovery import documents
from birdstream.publish.payload import Topics, event_bytes
from birdstream.publish.recovery import closing_events
from birdstream.station.offline import json_line
from tests.support.mosquitto import Mosquitto, Subscriber
from tests.support.options import jsonl_options, mqtt_options, outbox_options, snapshot_options
from tests.support.sightings import T0, make_event

P = "birdstream/garden"


def odd_event(**changes: object) -> SightingEvent:
    """An event whose payload exercises the encoder: non-ASCII, a path, media times, an exact round trip."""
    event = make_event(species="Ptérocles d’Arabie 鳥", score=0.8125, started_at=T0 + 0.25, seq=1, event="update")
    return dataclasses.replace(event, snapshot="snapshots/feeder/2026-05-28/x.jpg", media_start_s=2.5,
                               media_end_s=None, **changes)


def test_the_same_event_is_the_same_bytes_through_every_writer(tmp_path: Path) -> None:
    event = odd_event()
    with Mosquitto(tmp_path / "broker") as broker, Subscriber(broker.port, [f"{P}/#"]) as sub:
        pub = Publisher(station="garden", state_dir=tmp_path / "state",
                        mqtt=mqtt_options(host="127.0.0.1", port=broker.port),
                        jsonl=jsonl_options(), snapshots=snapshot_options(enabled=False), outbox=outbox_options())
        pub.start()
        try:
            pub.publish(event)
            (mqtt_msg,) = sub.wait_for(lambda m: m.topic == f"{P}/feeder/sighting")
            assert pub.flush(10)
        finally:
            pub.close(1)
    logged = (tmp_path / "state" / "sightings.jsonl").read_bytes()
    out = io.StringIO()
    out.write(json_line(event))  # what `birdstream classify` writes for it
    classified = out.getvalue().encode("utf-8")
    assert logged == classified == mqtt_msg.payload + b"\n"
    assert "鳥".encode() in logged  # kept as UTF-8, not \u-escaped

    (recovered,) = closing_events(tmp_path / "state" / "sightings.jsonl", "garden")
    expected_end = dataclasses.replace(event, seq=2, event="end", ended_at=event.updated_at)
    assert event_bytes(recovered) == event_bytes(expected_end)


def test_a_logged_line_reads_back_as_the_event() -> None:
    event = odd_event()
    payload = json.loads(event_bytes(event))
    assert SightingEvent.from_payload(payload) == event
    assert event_bytes(SightingEvent.from_payload(payload)) == event_bytes(event)
    ended = dataclasses.replace(event, event="end", ended_at=event.updated_at + 1, media_end_s=4.0)
    assert SightingEvent.from_payload(json.loads(event_bytes(ended))) == ended


def test_one_list_of_stream_states() -> None:
    assert load_schema("stream-status")["properties"]["state"]["enum"] == list(STREAM_STATES)
    docs = documents(Topics("birdstream", "garden"), "feeder", "homeassistant").values()
    assert [doc["options"] for doc in docs if "options" in doc] == [list(STREAM_STATES)]
