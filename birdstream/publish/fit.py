"""Messages that must fit the broker's packet limit: the size of a PUBLISH packet, smaller snapshots.

A broker drops the connection on a packet over its Maximum-Packet-Size (mosquitto's
``max_packet_size``, AWS IoT's 128 KB, EMQX's 1 MB default). MQTT 5 brokers announce the limit in
CONNACK; for 3.1.1 it can be configured. A snapshot JPEG over the limit is re-encoded smaller until it
fits: a smaller picture of the bird beats none, and far beats a queue blocked behind it.
"""

from __future__ import annotations

import io
import logging
from typing import Any

log = logging.getLogger(__name__)

_MIN_SIDE = 32  # below this a snapshot says nothing: better set aside than sent as a smudge


def _varint_len(n: int) -> int:
    size = 1
    while n >= 128:
        n //= 128
        size += 1
    return size


def publish_packet_size(topic: str, payload_len: int, v5: bool) -> int:
    """Bytes of a QoS-1 PUBLISH packet on the wire (no properties beyond their length byte)."""
    remaining = 2 + len(topic.encode("utf-8")) + 2 + payload_len + (1 if v5 else 0)
    return 1 + _varint_len(remaining) + remaining


def shrink_jpeg(jpeg: bytes, max_bytes: int) -> bytes | None:
    """The JPEG re-encoded at most ``max_bytes`` long (smaller sides, then lower quality); None if it cannot be."""
    if len(jpeg) <= max_bytes:
        return jpeg
    if max_bytes <= 0:
        return None
    from PIL import Image  # decoding JPEGs is only ever needed here

    try:
        with Image.open(io.BytesIO(jpeg)) as img:
            img.load()
            picture = img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        log.debug("snapshot not decodable for shrinking: %s", err)
        return None
    scale = min(1.0, (max_bytes / len(jpeg)) ** 0.5)  # bytes go roughly with the pixel count
    quality = 85
    while True:
        w, h = max(1, round(picture.width * scale)), max(1, round(picture.height * scale))
        if min(w, h) < _MIN_SIDE:
            return None
        out = io.BytesIO()
        picture.resize((w, h), Image.Resampling.LANCZOS).save(out, format="JPEG", quality=quality)
        data = out.getvalue()
        if len(data) <= max_bytes:
            return data
        if quality > 60:
            quality -= 15
        else:
            scale *= 0.8


class Refusals:
    """Finds the message a broker keeps refusing by dropping the connection (no PUBACK, no reason).

    After a lost connection with messages in flight, the sink sends one message at a time until it
    is past them, so a loss with a single message in flight points at that message. A message that
    was alone in flight at ``limit`` losses in a row is the one to set aside.
    """

    def __init__(self, limit: int = 3) -> None:
        self.limit = limit
        self.careful_until = 0  # send one row at a time while the cursor is below this row id
        self._strikes: dict[int, int] = {}

    def lost(self, inflight_rows: list[int]) -> int | None:
        """A connection loss with these rows in flight; returns a row id to set aside, or None."""
        if not inflight_rows:
            return None
        self.careful_until = max(self.careful_until, max(inflight_rows))
        if len(inflight_rows) != 1:
            return None
        row = inflight_rows[0]
        self._strikes[row] = self._strikes.get(row, 0) + 1
        if self._strikes[row] >= self.limit:
            del self._strikes[row]
            return row
        return None

    def window(self, cursor: int, max_inflight: int) -> int:
        return 1 if cursor < self.careful_until else max_inflight

    def delivered(self, row: int) -> None:
        self._strikes.pop(row, None)


def max_packet_size(props: Any) -> int | None:
    """Maximum-Packet-Size of an MQTT 5 CONNACK (None: not announced, or MQTT 3.1.1)."""
    value = getattr(props, "MaximumPacketSize", None) if props is not None else None
    return int(value) if isinstance(value, int) and value > 0 else None


class PacketFit:
    """What may go to this broker: its announced limit, the configured one, and what refusals taught."""

    def __init__(self, configured: int | None, *, v5: bool) -> None:
        self.configured = configured
        self.v5 = v5
        self.broker_max: int | None = None  # from the MQTT 5 CONNACK
        self.snapshot_max: int | None = None  # learned from refused snapshots when the broker says nothing

    @property
    def limit(self) -> int | None:
        limits = [n for n in (self.broker_max, self.configured) if n]
        return min(limits) if limits else None

    def fitted(self, topic: str, payload: bytes) -> bytes | None:
        """The payload as it can go: a snapshot shrunk to the limit; None when it cannot go at all."""
        limit = self.limit
        snapshot = bool(payload) and topic.endswith("/snapshot")
        if snapshot and self.snapshot_max is not None:
            limit = min(limit or self.snapshot_max, self.snapshot_max)
        if limit is None or publish_packet_size(topic, len(payload), self.v5) <= limit:
            return payload
        return shrink_jpeg(payload, limit - publish_packet_size(topic, 0, self.v5)) if snapshot else None

    def refused(self, topic: str, payload: bytes) -> None:
        """A broker that announces no limit refused this message: if a snapshot, later ones go at most
        half its size (halving again at each refusal). Never applied to events, which cannot shrink."""
        if payload and topic.endswith("/snapshot"):
            size = publish_packet_size(topic, len(payload), self.v5)
            self.snapshot_max = min(self.snapshot_max or size, size) // 2
