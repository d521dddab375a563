"""Options of the publish stage: small frozen dataclasses the config layer maps onto."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from birdstream.errors import PublishError


# The fields without a default are config keys: their defaults live in the config models only
# (station/wiring.py fills them in); the ones with a default are not configurable.


@dataclass(frozen=True, kw_only=True)
class TlsOptions:
    """TLS towards the broker (system CAs when ca_file is None)."""

    ca_file: Path | None
    cert_file: Path | None  # client certificate (mutual TLS)
    key_file: Path | None
    insecure: bool  # skip the host name check only; the chain is still verified against ca_file


@dataclass(frozen=True, kw_only=True)
class MqttOptions:
    host: str
    port: int
    topic_prefix: str
    protocol: str  # "5" (MQTT 5) or "3.1.1"
    client_id: str | None  # None: birdstream-<station>-<random>, kept in state_dir
    username: str | None
    password: str | None = field(repr=False)
    tls: TlsOptions | None
    keepalive_s: int
    publish_snapshots: bool  # JPEG of the best frame on P/S/C/snapshot (retained)
    discovery: bool  # Home Assistant MQTT discovery
    discovery_prefix: str
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    max_inflight: int = 20  # unacknowledged QoS-1 messages at once; the backlog keeps its order
    max_packet_bytes: int | None  # the broker's packet limit when it does not announce one (3.1.1)

    def __post_init__(self) -> None:
        if self.protocol not in ("5", "3.1.1"):
            raise PublishError(f"mqtt.protocol: {self.protocol!r} is not one of '5', '3.1.1'")

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, kw_only=True)
class JsonlOptions:
    max_bytes: int  # rotate sightings.jsonl at this size
    backups: int  # rotated files kept: sightings.jsonl.1 .. .N
    enabled: bool = True
    fsync: bool  # fsync each line (flush to the OS always happens)


@dataclass(frozen=True, kw_only=True)
class SnapshotOptions:
    enabled: bool
    quality: int
    max_age_days: float
    max_total_mb: float
    prune_every: int = 100  # snapshot writes between retention passes (also once at start)


@dataclass(frozen=True, kw_only=True)
class OutboxOptions:
    max_messages: int  # oldest dropped beyond this (counted, logged)
    max_age_days: float  # older undelivered messages dropped (counted, logged)
    synchronous: str = "FULL"  # SQLite synchronous: FULL survives power loss, NORMAL may lose the last commits
