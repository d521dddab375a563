"""Prometheus metrics of the publish stage (defined once, module level)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS = Counter("birdstream_publish_events_total", "Sighting events handed to the publisher", ["stream"])
SINK_DROPPED = Counter(
    "birdstream_publish_sink_dropped_total", "Items dropped because a sink queue was full", ["sink"]
)
SINK_ERRORS = Counter("birdstream_publish_sink_errors_total", "Failed writes of a sink", ["sink"])
MQTT_SENT = Counter("birdstream_mqtt_messages_sent_total", "MQTT messages acknowledged by the broker (PUBACK)")
MQTT_CONNECTS = Counter("birdstream_mqtt_connects_total", "Successful connections to the broker")
MQTT_CONNECT_FAILURES = Counter(
    "birdstream_mqtt_connect_failures_total", "Failed connection attempts (unreachable, refused, TLS)"
)
MQTT_DISCONNECTS = Counter("birdstream_mqtt_disconnects_total", "Unexpected losses of the broker connection")
MQTT_CONNECTED = Gauge("birdstream_mqtt_connected", "1 while connected to the broker")
OUTBOX_BACKLOG = Gauge("birdstream_outbox_backlog", "Messages waiting in the durable outbox")
OUTBOX_DROPPED = Counter(
    "birdstream_outbox_dropped_total", "Undelivered messages dropped from the outbox", ["reason"]
)
OUTBOX_SET_ASIDE = Counter(
    "birdstream_outbox_set_aside_total",
    "Messages the broker cannot take (over its packet limit, or refused at every try), moved out of the queue",
    ["reason"],
)
OUTBOX_CORRUPT = Counter(
    "birdstream_outbox_corrupt_total", "Corrupt outbox files moved aside and replaced by a fresh outbox"
)
JSONL_LINES = Counter("birdstream_jsonl_lines_total", "Lines written to sightings.jsonl")
JSONL_ROTATIONS = Counter("birdstream_jsonl_rotations_total", "Rotations of sightings.jsonl")
SNAPSHOTS_WRITTEN = Counter("birdstream_snapshots_written_total", "Snapshot JPEGs written", ["stream"])
SNAPSHOTS_PRUNED = Counter("birdstream_snapshots_pruned_total", "Snapshot JPEGs removed by retention", ["reason"])
NOTIFY_QUEUED = Counter("birdstream_notify_queued_total", "Notifications queued for sending (notify:, digest)")
NOTIFY_SENT = Counter("birdstream_notify_sent_total", "Notifications a target accepted")
NOTIFY_RETRIES = Counter("birdstream_notify_retries_total", "Failed attempts that were retried")
NOTIFY_FAILED = Counter("birdstream_notify_failed_total", "Notifications given up after every retry failed")
NOTIFY_DROPPED = Counter("birdstream_notify_dropped_total", "Notifications dropped unsent", ["reason"])
NOTIFY_SKIPPED = Counter(
    "birdstream_notify_skipped_total", "Sighting starts a target wanted but did not get", ["reason"]
)
