"""Home Assistant MQTT discovery documents (retained ``<prefix>/sensor/<node>/<object>/config``)."""

from __future__ import annotations

import re
from typing import Any

from birdstream import __version__
from birdstream.messages import STREAM_STATES
from birdstream.publish.payload import Topics

HA_STATUS_TOPIC_SUFFIX = "status"  # HA's birth/last-will topic: <discovery_prefix>/status
_SAFE = re.compile(r"[^a-zA-Z0-9_-]")


def _safe(text: str) -> str:
    return _SAFE.sub("_", text)


def ha_status_topic(discovery_prefix: str) -> str:
    return f"{discovery_prefix}/{HA_STATUS_TOPIC_SUFFIX}"


def device(station: str) -> dict[str, Any]:
    return {
        "identifiers": [f"birdstream_{_safe(station)}"],
        "name": f"birdstream {station}",
        "manufacturer": "birdstream",
        "model": "bird sighting station",
        "sw_version": __version__,
    }


def documents(topics: Topics, stream: str, discovery_prefix: str = "homeassistant") -> dict[str, dict[str, Any]]:
    """Config topic -> document for one stream: its last species and its status."""
    node = f"birdstream_{_safe(topics.station)}"
    obj = _safe(stream)
    common: dict[str, Any] = {
        "availability_topic": topics.status,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": device(topics.station),
        "origin": {"name": "birdstream", "sw_version": __version__},
        "qos": 1,
    }
    last = {
        **common,
        "name": f"{stream} last species",
        "unique_id": f"{node}_{obj}_last_species",
        "state_topic": topics.last(stream),
        "value_template": "{{ value_json.species }}",
        "json_attributes_topic": topics.last(stream),
        "icon": "mdi:bird",
    }
    status = {
        **common,
        "name": f"{stream} stream status",
        "unique_id": f"{node}_{obj}_status",
        "state_topic": topics.stream_status(stream),
        "value_template": "{{ value_json.state }}",
        "json_attributes_topic": topics.stream_status(stream),
        "device_class": "enum",
        "options": list(STREAM_STATES),
        "entity_category": "diagnostic",
        "icon": "mdi:cctv",
    }
    return {
        f"{discovery_prefix}/sensor/{node}/{obj}_last_species/config": last,
        f"{discovery_prefix}/sensor/{node}/{obj}_status/config": status,
    }
