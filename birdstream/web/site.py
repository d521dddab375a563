"""What the page and API need from the daemon, who may review, and query-parameter checks."""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from birdstream.messages import StreamStatus
from birdstream.publish.client import is_loopback
from birdstream.publish.store import StoreWriter
from birdstream.publish.store_query import StoreReader, parse_cursor

STREAM_ID = re.compile(r"^[a-z0-9_-]{1,64}$")
SIGHTING_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
MAX_LIMIT = 500


class BadRequest(ValueError):
    """A request the user can fix: answered 400 with this message."""


def host_name(header: str) -> str:
    """The name in a Host header: ``[::1]:9108`` -> ``::1``, ``localhost:9108`` -> ``localhost``."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0]


@dataclass(frozen=True)
class ReviewPolicy:
    """Loopback without login; off loopback read-only unless basic auth is configured (section 6)."""

    loopback: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def check(self, headers: Mapping[str, str]) -> tuple[int, str] | None:
        """None when the request may review, else (401 or 403, message)."""
        if self.username is None or self.password is None:
            if not self.loopback:
                return 403, "reviews are off: this page is read-only off loopback (set http.auth to allow them)"
            # A page of another site whose name was rebound to 127.0.0.1 (DNS rebinding) must not review.
            return None if is_loopback(host_name(headers.get("host", ""))) else (403, "reviews are refused for a page not opened as localhost")
        given = headers.get("authorization", "")
        if not given.lower().startswith("basic "):
            return 401, "reviews need a login"
        try:
            user, _, password = base64.b64decode(given[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return 401, "reviews need a login"
        ok_user = hmac.compare_digest(user.encode(), self.username.encode())
        ok_pass = hmac.compare_digest(password.encode(), self.password.encode())
        return None if ok_user and ok_pass else (401, "wrong user name or password")

    @property
    def may_offer(self) -> bool:
        """Whether the page shows review buttons at all (with auth the browser asks for the login)."""
        return self.loopback or self.username is not None


@dataclass
class Site:
    """The daemon's parts the web layer reads; ``streams`` and ``publish_review`` are set once running."""

    state_dir: Path
    station: str
    reader: StoreReader | None
    writer: StoreWriter | None = None
    species_names: tuple[str, ...] = ()
    policy: ReviewPolicy = ReviewPolicy(loopback=True)
    streams: Callable[[], list[StreamStatus]] = lambda: []
    publish_review: Callable[[str, str, dict[str, Any]], None] = lambda stream, sid, review: None
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def snapshots_dir(self) -> Path:
        return self.state_dir / "snapshots"


# -- query parameters ------------------------------------------------------------------------------

def check_params(params: Mapping[str, str], allowed: tuple[str, ...]) -> None:
    for key in params:
        if key not in allowed:
            raise BadRequest(f"unknown query parameter {key!r}; allowed: {', '.join(allowed) or 'none'}")


def time_param(params: Mapping[str, str], key: str) -> float | None:
    value = params.get(key)
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{key}: {value[:64]!r} is not an RFC 3339 time (e.g. 2026-05-01T06:00:00Z)") from None
    if parsed.tzinfo is None:
        raise BadRequest(f"{key}: {value[:64]!r} needs a time zone (Z or +hh:mm)")
    return parsed.timestamp()


def limit_param(params: Mapping[str, str], default: int = 50) -> int:
    value = params.get("limit")
    if value is None or value == "":
        return default
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise BadRequest(f"limit: {value[:32]!r} is not a whole number from 1 to {MAX_LIMIT}")
    return int(value)


def cursor_param(params: Mapping[str, str]) -> tuple[float, str] | None:
    value = params.get("before")
    if value is None or value == "":
        return None
    cursor = parse_cursor(value)
    if cursor is None:
        raise BadRequest(f"before: {value[:80]!r} is not a cursor from a previous answer's 'next'")
    return cursor


def stream_param(params: Mapping[str, str]) -> str | None:
    value = params.get("stream")
    if value is None or value == "":
        return None
    if not STREAM_ID.match(value):
        raise BadRequest(f"stream: {value[:64]!r} is not a stream id ([a-z0-9_-]+)")
    return value


def species_param(params: Mapping[str, str]) -> str | None:
    value = params.get("species")
    if value is None or value == "":
        return None
    if len(value) > 200 or any(ord(c) < 32 for c in value):
        raise BadRequest("species: not a species name")
    return value


def day_param(params: Mapping[str, str], today: date) -> date:
    value = params.get("date")
    if value is None or value == "":
        return today
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"date: {value[:32]!r} is not a date (YYYY-MM-DD)") from None
    if day > today + timedelta(days=1) or day.year < 2000:
        raise BadRequest(f"date: {value} is out of range")
    return day


def day_bounds(day: date) -> tuple[float, float]:
    """Epoch seconds of the local midnight starting ``day`` and the next one."""
    start = datetime(day.year, day.month, day.day).astimezone()
    end = datetime.combine(day + timedelta(days=1), datetime.min.time()).astimezone()
    return start.timestamp(), end.timestamp()
