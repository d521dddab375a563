"""A stream that is removed leaves nothing behind on the broker: no retained state, no HA entities."""

from __future__ import annotations

import json
from pathlib import Path

from birdstream.publish.discovery import documents
from birdstream.publish.publisher import STREAMS_FILE
from tests.publish.conftest import wait_until
from tests.support.mosquitto import Mosquitto, Subscriber, retained_messages
from tests.support.sightings import gradient_image, make_status, sighting

P = "birdstream/garden"
HA = {"discovery": True, "publish_snapshots": True}


def stream_topics(retained: dict[str, bytes], stream: str) -> set[str]:
    """Retained topics that belong to one stream: its own and its Home Assistant config documents."""
    return {t for t in retained if t.startswith(f"{P}/{stream}/") or f"/{stream}_" in t}


def delivered(pub, *streams: str) -> dict[str, bytes]:
    """Wait until the outbox is empty and the streams' HA documents (sent outside it) are retained."""
    wait_until(lambda: pub.flush() and pub.connected and pub.backlog == 0, what="the outbox delivered")
    docs = {t for s in streams for t in documents(pub.topics, s)}
    wait_until(lambda: docs <= set(retained_messages(pub.mqtt_options.port)), what="discovery documents")
    return retained_messages(pub.mqtt_options.port)


def publish_some(pub, stream: str) -> None:
    pub.publish_status(make_status(stream))
    for event in sighting(2, stream=stream, image=gradient_image()):
        pub.publish(event)


def test_forget_stream_clears_its_retained_topics_and_entities_only(broker: Mosquitto, make_publisher) -> None:
    pub = make_publisher(broker.port, mqtt=HA, streams=["feeder", "pond"])
    for stream in ("feeder", "pond"):
        publish_some(pub, stream)
    before = delivered(pub, "feeder", "pond")
    assert stream_topics(before, "pond") == {f"{P}/pond/{t}" for t in ("last", "status", "snapshot")} | set(
        documents(pub.topics, "pond"))

    pub.forget_stream("pond")
    wait_until(lambda: pub.flush() and pub.backlog == 0, what="the clearing delivered")
    after = retained_messages(broker.port)
    assert stream_topics(after, "pond") == set()
    assert stream_topics(after, "feeder") == stream_topics(before, "feeder")  # untouched
    assert after[f"{P}/status"] == b"online"

    # Home Assistant restarts: only the streams still there are announced again.
    with Subscriber(broker.port, ["homeassistant/sensor/#", f"{P}/feeder/status", "test/barrier"]) as sub:
        sub.client.publish("test/barrier", b"", qos=1)
        sub.wait_for(lambda m: m.topic == "test/barrier")  # the retained ones came before it
        sub.clear()
        sub.client.publish("homeassistant/status", b"online", qos=1).wait_for_publish(5)
        sub.wait_for(lambda m: m.topic.endswith("/config"), count=2)
        # Documents of one announcement go out together, before anything the publisher sends later.
        pub.publish_status(make_status("feeder", "reconnecting"))
        sub.wait_for(lambda m: m.topic == f"{P}/feeder/status")
        assert {m.topic for m in sub.messages if m.topic.endswith("/config")} == set(documents(pub.topics, "feeder"))
    assert stream_topics(retained_messages(broker.port), "pond") == set()


def test_a_stream_removed_while_stopped_is_cleared_at_the_next_start(tmp_path: Path, broker: Mosquitto,
                                                                     make_publisher) -> None:
    state = tmp_path / "state"
    first = make_publisher(broker.port, state_dir=state, mqtt=HA, streams=["feeder", "pond"])
    for stream in ("feeder", "pond"):
        publish_some(first, stream)
    wait_until(lambda: first.flush() and first.backlog == 0, what="everything delivered")
    first.close(2.0)
    assert json.loads((state / STREAMS_FILE).read_text())["streams"] == ["feeder", "pond"]

    second = make_publisher(broker.port, state_dir=state, mqtt=HA, streams=["feeder"], forget_unlisted=True)
    retained = delivered(second, "feeder")
    assert stream_topics(retained, "pond") == set()
    assert json.loads(retained[f"{P}/feeder/status"])["state"] == "running"
    assert set(documents(second.topics, "feeder")) <= set(retained)
    assert json.loads((state / STREAMS_FILE).read_text())["streams"] == ["feeder"]


def test_a_stream_back_before_its_clearing_went_out_keeps_its_entities(tmp_path: Path, broker: Mosquitto,
                                                                      make_publisher) -> None:
    pub = make_publisher(broker.port, mqtt=HA, streams=["feeder", "pond"])
    publish_some(pub, "pond")
    wait_until(lambda: pub.flush() and pub.backlog == 0, what="everything delivered")
    broker.stop()
    pub.forget_stream("pond")  # removed by a reload while the broker is away ...
    publish_some(pub, "pond")  # ... and configured again by the next one
    wait_until(lambda: pub.flush(), what="stored")
    broker.start()
    wait_until(lambda: pub.connected and pub.backlog == 0, timeout=20, what="the backlog delivered")
    retained = retained_messages(broker.port)
    assert set(documents(pub.topics, "pond")) <= set(retained)
    assert json.loads(retained[f"{P}/pond/status"])["state"] == "running"
    assert json.loads(retained[f"{P}/pond/last"])["event"] == "end"


def test_the_end_a_killed_run_owes_a_removed_stream_goes_out_then_its_topics_are_cleared(
        tmp_path: Path, broker: Mosquitto, make_publisher) -> None:
    from birdstream.config import config_from_dict
    from birdstream.service.daemon import _end_unfinished

    state = tmp_path / "state"
    killed = make_publisher(broker.port, state_dir=state, mqtt=HA, streams=["feeder", "pond"])
    start, update, _ = sighting(3, stream="pond")
    killed.publish(start)
    killed.publish(update)
    delivered(killed, "pond")
    killed.close(2.0)  # no end: as if killed mid-sighting

    config = config_from_dict({"station": "garden", "state_dir": str(state),
                               "streams": [{"id": "feeder", "url": str(tmp_path / "feeder.mp4")}]},
                              base_dir=tmp_path)
    with Subscriber(broker.port, [f"{P}/pond/sighting"]) as sub:
        restarted = make_publisher(broker.port, state_dir=state, mqtt=HA, streams=["feeder"], forget_unlisted=True)
        _end_unfinished(config, restarted)
        (end,) = sub.wait_for(lambda m: json.loads(m.payload)["event"] == "end")
        assert json.loads(end.payload)["id"] == start.id
    assert stream_topics(delivered(restarted, "feeder"), "pond") == set()


def test_a_publisher_not_given_the_whole_configuration_clears_nothing(tmp_path: Path, broker: Mosquitto,
                                                                       make_publisher) -> None:
    state = tmp_path / "state"
    first = make_publisher(broker.port, state_dir=state, streams=["feeder", "pond"])
    publish_some(first, "pond")
    delivered(first)
    first.close(2.0)
    partial = make_publisher(broker.port, state_dir=state, streams=["feeder"])  # forget_unlisted=False
    delivered(partial)
    assert f"{P}/pond/last" in retained_messages(broker.port)
    assert json.loads((state / STREAMS_FILE).read_text())["streams"] == ["feeder", "pond"]  # still on record


def test_a_damaged_streams_file_is_one_warning_and_is_rewritten(tmp_path: Path, broker: Mosquitto, make_publisher,
                                                                caplog) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / STREAMS_FILE).write_text('{"topics": "birdstream/garden", "streams": ["po', encoding="utf-8")
    pub = make_publisher(broker.port, state_dir=state, streams=["feeder"], forget_unlisted=True)
    delivered(pub)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and STREAMS_FILE in warnings[0] and "unreadable" in warnings[0], warnings
    assert json.loads((state / STREAMS_FILE).read_text())["streams"] == ["feeder"]
