"""Wiring for the standard exports: config + a classify run or the sightings store -> export/ records."""

from __future__ import annotations

import mimetypes
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from birdstream.config import Config
from birdstream.config.export import PlaceConfig
from birdstream.errors import ConfigError, first_line
from birdstream.export import ebird
from birdstream.export.camtrap_dp import MediaFile, Place, Sighting, write_package
from birdstream.export.taxonomy import load_taxonomy

_PLACE_KEYS = ("latitude", "longitude", "location_name", "camera_model", "camera_height_m", "active_from",
               "active_until")


def place(config: Config, camera: str, override: dict[str, Any] | None = None) -> Place:
    """The deployment facts of one camera: the station's, the camera's own over them, then ``override``."""
    facts = {k: getattr(config.deployment, k) for k in _PLACE_KEYS}
    own: PlaceConfig | None = config.deployment.streams.get(camera)
    where = "deployment"
    if own is not None:
        facts.update({k: getattr(own, k) for k in _PLACE_KEYS if getattr(own, k) is not None})
        where = f"deployment.streams.{camera}"
    facts.update({k: v for k, v in (override or {}).items() if v is not None})
    for key in ("active_from", "active_until"):
        if facts[key] is not None:
            facts[key] = facts[key].timestamp()
    return Place(**facts, where=where)


def mediatype(path: str) -> str:
    guessed, _ = mimetypes.guess_type(path)
    if guessed and guessed.split("/")[0] in ("image", "video", "audio"):
        return guessed
    return "video/octet-stream"  # the standard wants image/, video/ or audio/; ingest read it as frames


def _store_rows(config: Config, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
    """The store's sightings that ended, reviewed false left out, relabels applied (oldest first)."""
    from birdstream.publish.store_query import Filter, StoreReader, parse_cursor

    reader = StoreReader(Path(config.state_dir))
    if not reader.path.is_file():
        raise ConfigError(f"{reader.path}: no sightings store here (state_dir {config.state_dir}; "
                          "`birdstream store rebuild` makes one from sightings.jsonl)")
    rows: list[dict[str, Any]] = []
    try:
        f = Filter(since=since.timestamp() if since else None, until=until.timestamp() if until else None,
                   include_false=False)
        before: tuple[float, str] | None = None
        while True:
            try:
                page, cursor = reader.sightings(f, limit=500, before=before)
            except sqlite3.Error as exc:
                raise ConfigError(f"{reader.path}: cannot read the sightings store ({first_line(exc)})") from None
            rows += page
            before = parse_cursor(cursor) if cursor else None
            if before is None:
                break
    finally:
        reader.close()
    return [s for s in reversed(rows) if s.get("ended_at") is not None]  # an open one's end is not known yet


def store_package(config: Config, out: Path, since: datetime | None, until: datetime | None) -> dict[str, int]:
    """`birdstream export camtrap-dp`: the store's sightings (reviews honoured) and their snapshots."""
    return _write_rows(config, out, Path(config.state_dir), _store_rows(config, since, until))


def ebird_csv(config: Config, out: Path, since: datetime | None, until: datetime | None, header: bool) -> int:
    """`birdstream export ebird`: one record per species per day at this station (station-level place)."""
    from zoneinfo import ZoneInfo

    facts = config.deployment
    if facts.latitude is None or facts.longitude is None:
        key = "latitude" if facts.latitude is None else "longitude"
        raise ConfigError(f"deployment.{key}: needed for the eBird export (the station's location)")
    station = ebird.Station(config.station, facts.latitude, facts.longitude, facts.location_name,
                            facts.state_province, facts.country_code)
    rows = _store_rows(config, since, until)
    seen = [ebird.Seen(s["species"], _epoch(s["started_at"]), _epoch(s["ended_at"])) for s in rows]
    models = ", ".join(sorted({s["model"] for s in rows})) or "unknown"
    tz = ZoneInfo(config.timezone) if config.timezone else None
    records = ebird.rows(station, seen, load_taxonomy(config.taxonomy), tz, models)
    try:
        return ebird.write_file(out, records, header)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot write the eBird CSV ({exc.strerror or exc})") from None


def _write_rows(config: Config, out: Path, state_dir: Path, rows: list[dict[str, Any]]) -> dict[str, int]:
    sightings, media = [], []
    for s in rows:
        start, end = _epoch(s["started_at"]), _epoch(s["ended_at"])
        sightings.append(Sighting(id=s["id"], deployment=s["stream"], species=s["species"], score=float(s["score"]),
                                  start=start, end=end, model=s["model"], box=s.get("box")))
        snapshot = _snapshot_path(state_dir, s)
        if snapshot is not None:
            media.append(MediaFile(s["stream"], str(snapshot), start, "image/jpeg", sightings=1))
    places = {c: place(config, c) for c in {s.deployment for s in sightings}}
    return write_package(out, station=config.station, places=places, media=media, sightings=sightings,
                         taxonomy=load_taxonomy(config.taxonomy), created=time.time())


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _snapshot_path(state_dir: Path, s: dict[str, Any]) -> Path | None:
    url = s.get("snapshot_url")
    if not url or not url.startswith("/snapshots/"):
        return None
    path = state_dir / "snapshots" / unquote(url[len("/snapshots/"):])
    return path if path.is_file() else None
