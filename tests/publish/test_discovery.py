"""Home Assistant MQTT discovery: documents shaped as HA's MQTT sensor expects, re-sent on HA's birth."""

from __future__ import annotations

import json
import re

from birdstream.publish import Topics
from birdstream.publish.discovery import documents
from tests.support.mosquitto import Mosquitto, Subscriber
from tests.support.sightings import make_status, sighting

# Configuration variables of HA's MQTT sensor (home-assistant.io/integrations/sensor.mqtt) with the
# JSON types HA's schema accepts, and the device / origin maps of MQTT discovery.
SENSOR_FIELDS = {
    "availability": list, "availability_mode": str, "availability_template": str, "availability_topic": str,
    "device": dict, "device_class": str, "default_entity_id": str, "enabled_by_default": bool, "encoding": str,
    "entity_category": str, "entity_picture": str, "expire_after": int, "force_update": bool, "icon": str,
    "json_attributes_template": str, "json_attributes_topic": str, "last_reset_value_template": str,
    "name": str, "object_id": str, "options": list, "origin": dict, "payload_available": str,
    "payload_not_available": str, "platform": str, "qos": int, "state_class": str, "state_topic": str,
    "suggested_display_precision": int, "unique_id": str, "unit_of_measurement": str, "value_template": str,
}
DEVICE_FIELDS = {"configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model",
                 "model_id", "name", "serial_number", "suggested_area", "sw_version", "via_device"}
ORIGIN_FIELDS = {"name", "sw_version", "support_url"}
TOPIC = re.compile(r"^homeassistant/sensor/[a-zA-Z0-9_-]+/[a-zA-Z0-9_-]+/config$")


def test_documents_match_ha_sensor_fields() -> None:
    topics = Topics("birdstream", "garden")
    docs = documents(topics, "feeder")
    assert len(docs) == 2
    for topic, doc in docs.items():
        assert TOPIC.match(topic), topic
        assert set(doc) <= set(SENSOR_FIELDS), set(doc) - set(SENSOR_FIELDS)
        for key, value in doc.items():
            assert isinstance(value, SENSOR_FIELDS[key]), key
        assert "state_topic" in doc and "unique_id" in doc  # required / needed for discovery
        assert set(doc["device"]) <= DEVICE_FIELDS and doc["device"]["identifiers"]
        assert set(doc["origin"]) <= ORIGIN_FIELDS and "name" in doc["origin"]
        assert "availability" not in doc  # HA: not together with availability_topic
        assert doc["availability_topic"] == "birdstream/garden/status"
        assert (doc["payload_available"], doc["payload_not_available"]) == ("online", "offline")
        assert doc["value_template"].startswith("{{ value_json.")
    last = docs["homeassistant/sensor/birdstream_garden/feeder_last_species/config"]
    assert last["state_topic"] == last["json_attributes_topic"] == "birdstream/garden/feeder/last"
    status = docs["homeassistant/sensor/birdstream_garden/feeder_status/config"]
    assert status["state_topic"] == "birdstream/garden/feeder/status"
    assert status["device_class"] == "enum" and "running" in status["options"]
    ids = {d["unique_id"] for s in ("feeder", "pond") for d in documents(topics, s).values()}
    assert len(ids) == 4


def test_discovery_retained_and_resent_on_ha_birth(broker: Mosquitto, make_publisher) -> None:
    with Subscriber(broker.port, ["homeassistant/sensor/#"]) as sub:
        pub = make_publisher(broker.port, mqtt={"discovery": True}, streams=["feeder"])
        docs = sub.wait_for(lambda m: m.topic.endswith("/config"), count=2)
        assert all(m.retain and m.qos == 1 for m in docs)
        assert {m.topic for m in docs} == set(documents(pub.topics, "feeder"))
        pub.publish_status(make_status("pond"))  # a new stream is announced when first seen
        sub.wait_for(lambda m: "pond" in m.topic, count=2)
        sub.clear()
        sub.client.publish("homeassistant/status", b"online", qos=1).wait_for_publish(5)
        again = sub.wait_for(lambda m: m.topic.endswith("/config"), count=4)
        assert {json.loads(m.payload)["unique_id"] for m in again} == {
            d["unique_id"] for s in ("feeder", "pond") for d in documents(pub.topics, s).values()}


def test_snapshot_binary_message(broker: Mosquitto, make_publisher) -> None:
    from tests.support.sightings import gradient_image

    with Subscriber(broker.port, ["birdstream/garden/feeder/snapshot"]) as sub:
        pub = make_publisher(broker.port, mqtt={"publish_snapshots": True})
        start = next(sighting(2, image=gradient_image()))
        pub.publish(start)
        (msg,) = sub.wait_for(lambda m: True)
        assert msg.retain and msg.payload[:3] == b"\xff\xd8\xff"  # a JPEG
