"""Publish stage: sighting events to MQTT (durable outbox), sightings.jsonl and snapshots."""

from birdstream.publish.options import (
    JsonlOptions,
    MqttOptions,
    OutboxOptions,
    SnapshotOptions,
    TlsOptions,
    credential_path,
    read_secret_file,
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
    "credential_path",
    "load_schema",
    "read_secret_file",
]
