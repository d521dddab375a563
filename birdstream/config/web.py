"""The `http:` and `store:` sections: the station's page and API, and the sightings store behind them."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr
from pydantic.json_schema import SkipJsonSchema

from birdstream.config.base import ConfigPath, Section


class HttpAuthConfig(Section):
    username: Annotated[str, Field(min_length=1, pattern=r"^[^:]+$")]
    """User name for HTTP basic auth (needed to review off loopback)."""
    password_file: ConfigPath
    """File holding the password (never logged)."""
    password: SkipJsonSchema[SecretStr | None] = Field(default=None, exclude=True)


class HttpConfig(Section):
    enabled: bool = False
    """Serve the station's page and API, /healthz and Prometheus /metrics over HTTP."""
    host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    """Address to listen on; off loopback (e.g. 0.0.0.0) the page is read-only unless http.auth is set."""
    port: Annotated[int, Field(ge=1, le=65535)] = 9108
    """TCP port to listen on."""
    auth: HttpAuthConfig | None = None
    """Basic auth that allows reviews off loopback: {username, password_file}; null = read-only off loopback."""
    max_connections: Annotated[int, Field(ge=1, le=10_000)] = 64
    """Concurrent connections at most; beyond it requests get 503 (live pages hold one each)."""
    max_body_bytes: Annotated[int, Field(ge=1024, le=10_485_760)] = 65_536
    """Largest request body accepted (413 beyond)."""


class StoreConfig(Section):
    enabled: bool = True
    """Keep every sighting in state_dir/sightings.sqlite3, the source of the station's page and API."""
    max_age_days: Annotated[float, Field(gt=0)] | None = 365
    """Sightings that started longer ago are deleted from the store (sightings.jsonl keeps them); null keeps all."""
