"""Topics and payload encoding: the one JSON encoder of every writer (MQTT, sightings.jsonl, classify)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from birdstream.messages import SightingEvent, StreamStatus

ONLINE = b"online"
OFFLINE = b"offline"


@dataclass(frozen=True)
class Topics:
    """``P/S/...`` topic names for one station."""

    prefix: str
    station: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.station}" if self.prefix else self.station

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    def sighting(self, stream: str) -> str:
        return f"{self.base}/{stream}/sighting"

    def last(self, stream: str) -> str:
        return f"{self.base}/{stream}/last"

    def stream_status(self, stream: str) -> str:
        return f"{self.base}/{stream}/status"

    def snapshot(self, stream: str) -> str:
        return f"{self.base}/{stream}/snapshot"

    def retained(self, stream: str) -> dict[str, tuple[str, str]]:
        """A stream's retained topics, by name: (topic, outbox key). A message queued under a key
        replaces an older one of the same key, and removing the stream clears exactly these."""
        return {
            "last": (self.last(stream), f"last/{stream}"),
            "status": (self.stream_status(stream), f"status/{stream}"),
            "snapshot": (self.snapshot(stream), f"snapshot/{stream}"),
        }


def encode(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON (non-ASCII species names kept as they are)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def event_bytes(event: SightingEvent) -> bytes:
    """The bytes of an event, the same on MQTT, in sightings.jsonl and in classify's output."""
    return encode(event.to_payload())


def status_bytes(status: StreamStatus) -> bytes:
    return encode(status.to_payload())


def load_schema(name: str = "sighting") -> dict[str, Any]:
    """The packaged JSON Schema ``birdstream/schemas/<name>.schema.json``."""
    text = resources.files("birdstream").joinpath("schemas", f"{name}.schema.json").read_text(encoding="utf-8")
    return json.loads(text)
