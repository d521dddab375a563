"""Publish stage: sighting events to MQTT (durable outbox), sightings.jsonl and snapshots."""

from birdstream.publish.options import (
    JsonlOptions,
    MqttOptions,
    OutboxOptions,
    SnapshotOptions,
    TlsOptions,
)
from birdstream.publish.payload import Topics, load_schema
from birdstream.publish.publisher import Publisher

__all__ = [
    "JsonlOptions",
    "MqttOptions",
    "OutboxOptions",
    "Publisher",
    "SnapshotOptions",
    "TlsOptions",
    "Topics",
    "load_schema",
]
