"""After a crash or a power cut: the sightings the last run started and never ended get their end.

A clean stop ends every open sighting. A killed process cannot, and a subscriber (a Home Assistant
sensor, a counter) would then show a bird present for ever. At start the daemon reads the tail of
``sightings.jsonl`` and publishes an ``end`` for each sighting whose last event there is not one:
the next ``seq``, ``ended_at`` = the last supporting frame the log knows of.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from birdstream.messages import SightingEvent

log = logging.getLogger(__name__)

TAIL_BYTES = 4 * 1024 * 1024  # far more than the events of the sightings open at one moment


def _epoch(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text).timestamp()


def _tail_lines(path: Path, max_bytes: int) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except FileNotFoundError:
        return []
    lines = data.decode("utf-8", errors="replace").split("\n")
    if size > max_bytes:
        lines = lines[1:]  # the first one is cut
    return lines


def unfinished(path: Path, station: str, max_bytes: int = TAIL_BYTES) -> list[dict[str, Any]]:
    """The last logged event of every sighting of this station that has no ``end`` in the log's tail."""
    last: dict[str, dict[str, Any]] = {}
    for line in _tail_lines(path, max_bytes):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            if event.get("station") != station:
                continue
            last[str(event["id"])] = event
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # a line cut by the power cut, or not ours
    return [e for e in last.values() if e.get("event") != "end"]


def closing_event(last: dict[str, Any]) -> SightingEvent:
    """The ``end`` that follows ``last`` (a payload as logged)."""
    updated = _epoch(last["updated_at"])
    if updated is None:
        raise ValueError("no updated_at")
    return SightingEvent(
        id=str(last["id"]),
        seq=int(last["seq"]) + 1,
        event="end",
        station=str(last["station"]),
        stream=str(last["stream"]),
        species=str(last["species"]),
        score=float(last["score"]),
        top=tuple((str(name), float(p)) for name, p in last.get("top") or ()),
        started_at=_epoch(last["started_at"]) or updated,
        updated_at=updated,
        ended_at=updated,
        frames=int(last.get("frames") or 0),
        model=str(last.get("model") or ""),
        snapshot=last.get("snapshot"),
        media_start_s=last.get("media_start_s"),
        media_end_s=last.get("media_end_s"),
        box=_box(last.get("box")),
    )


def _box(value: Any) -> tuple[float, float, float, float] | None:
    """The logged box of an unfinished sighting (absent in logs written before regions)."""
    if not isinstance(value, list) or len(value) != 4:
        return None
    x, y, w, h = (float(v) for v in value)
    return (x, y, w, h)


def closing_events(path: Path, station: str) -> list[SightingEvent]:
    """The ends owed by a previous run that did not stop cleanly (none after a clean stop)."""
    events = []
    for last in unfinished(path, station):
        try:
            events.append(closing_event(last))
        except (ValueError, KeyError, TypeError) as err:
            log.warning("sighting %s left open by the previous run cannot be ended: %s", last.get("id"), err)
    return events
