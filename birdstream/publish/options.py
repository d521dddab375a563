"""Options of the publish stage: small frozen dataclasses the config layer maps onto."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from birdstream.errors import PublishError


@dataclass(frozen=True)
class TlsOptions:
    """TLS towards the broker; all paths optional (system CAs when ca_file is None)."""

    ca_file: Path | None = None
    cert_file: Path | None = None  # client certificate (mutual TLS)
    key_file: Path | None = None
    insecure: bool = False  # skip the host name check only; the chain is still verified against ca_file


@dataclass(frozen=True)
class MqttOptions:
    host: str = "localhost"
    port: int = 1883
    topic_prefix: str = "birdstream"
    protocol: str = "5"  # "5" (MQTT 5) or "3.1.1"
    client_id: str | None = None  # default: birdstream-<station>-<random>, kept in state_dir
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None  # read at start() when password is None
    tls: TlsOptions | None = None
    keepalive_s: int = 30
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    max_inflight: int = 20  # unacknowledged QoS-1 messages at once; the backlog keeps its order
    publish_snapshots: bool = False  # JPEG of the best frame on P/S/C/snapshot (retained)
    discovery: bool = True  # Home Assistant MQTT discovery
    discovery_prefix: str = "homeassistant"
    max_packet_bytes: int | None = None  # the broker's packet limit when it does not announce one (3.1.1)

    def __post_init__(self) -> None:
        if self.protocol not in ("5", "3.1.1"):
            raise PublishError(f"mqtt.protocol: {self.protocol!r} is not one of '5', '3.1.1'")

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class JsonlOptions:
    enabled: bool = True
    max_bytes: int = 50 * 1024 * 1024  # rotate sightings.jsonl at this size
    backups: int = 10  # rotated files kept: sightings.jsonl.1 .. .N
    fsync: bool = False  # fsync each line (flush to the OS always happens)


@dataclass(frozen=True)
class SnapshotOptions:
    enabled: bool = True
    quality: int = 90
    max_age_days: float = 30.0
    max_total_mb: float = 2048.0
    prune_every: int = 100  # snapshot writes between retention passes (also once at start)


@dataclass(frozen=True)
class OutboxOptions:
    max_messages: int = 100_000  # oldest dropped beyond this (counted, logged)
    max_age_days: float = 30.0  # older undelivered messages dropped (counted, logged)
    synchronous: str = "FULL"  # SQLite synchronous: FULL survives power loss, NORMAL may lose the last commits


def read_secret_file(path: Path, what: str = "mqtt.password_file") -> str:
    """The first line of a secret file, stripped; errors name the file, never the content."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise PublishError(f"{what}: cannot read {path}: {err.strerror or err}") from None
    return text.splitlines()[0].strip() if text else ""


def credential_path(name: str, environ: Mapping[str, str] | None = None) -> Path:
    """``$CREDENTIALS_DIRECTORY/<name>`` (systemd LoadCredential=); PublishError when unset."""
    env = os.environ if environ is None else environ
    folder = env.get("CREDENTIALS_DIRECTORY")
    if not folder:
        raise PublishError(f"credential {name!r}: $CREDENTIALS_DIRECTORY is not set (LoadCredential= in the unit)")
    return Path(folder) / name


def resolve_password(opts: MqttOptions) -> str | None:
    if opts.password is not None:
        return opts.password
    if opts.password_file is not None:
        return read_secret_file(opts.password_file)
    return None
