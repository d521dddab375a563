"""After a crash or a power cut: the sightings the last run started and never ended get their end.

A clean stop ends every open sighting. A killed process cannot, and a subscriber (a Home Assistant
sensor, a counter) would then show a bird present for ever. At start the daemon reads the tail of
``sightings.jsonl`` and publishes an ``end`` for each sighting whose last event there is not one:
the next ``seq``, ``ended_at`` = the last supporting frame the log knows of.

The log is written (and by default fsynced) before an event enters the outbox, but a log that is
not fsynced (``log.fsync: false``), failed to write, or sat on a card that lost its last blocks can
miss events the outbox holds: the outbox's undelivered sighting events are read too, and the later
event of each sighting (by ``seq``) of the two sources counts.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from birdstream.messages import SightingEvent

log = logging.getLogger(__name__)

TAIL_BYTES = 4 * 1024 * 1024  # far more than the events of the sightings open at one moment


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


def outbox_lines(path: Path) -> list[str]:
    """The undelivered sighting events of an outbox file, in row order (none when it cannot be read)."""
    if not Path(path).exists():
        return []
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            rows = db.execute("SELECT payload FROM outbox WHERE topic LIKE '%/sighting' ORDER BY id").fetchall()
        finally:
            db.close()
    except sqlite3.Error as err:  # a corrupt outbox is dealt with when it is opened; the log still counts
        log.warning("outbox %s: cannot read its undelivered events for recovery (%s)", path, err)
        return []
    return [bytes(payload).decode("utf-8", errors="replace") for (payload,) in rows]


def unfinished(path: Path, station: str, max_bytes: int = TAIL_BYTES,
               outbox: Path | None = None) -> list[dict[str, Any]]:
    """The latest event of every sighting of this station, in the log's tail or the outbox, that is
    not an ``end``."""
    last: dict[str, dict[str, Any]] = {}
    lines = _tail_lines(path, max_bytes) + (outbox_lines(outbox) if outbox is not None else [])
    for line in lines:
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            if event.get("station") != station:
                continue
            key = str(event["id"])
            if key not in last or int(event["seq"]) >= int(last[key]["seq"]):
                last[key] = event
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # a line cut by the power cut, or not ours
    return [e for e in last.values() if e.get("event") != "end"]


def closing_event(last: dict[str, Any]) -> SightingEvent:
    """The ``end`` that follows ``last`` (a payload as logged)."""
    event = SightingEvent.from_payload(last)
    return dataclasses.replace(event, seq=event.seq + 1, event="end", ended_at=event.updated_at)


def closing_events(path: Path, station: str, outbox: Path | None = None) -> list[SightingEvent]:
    """The ends owed by a previous run that did not stop cleanly (none after a clean stop)."""
    events = []
    for last in unfinished(path, station, outbox=outbox):
        try:
            events.append(closing_event(last))
        except (ValueError, KeyError, TypeError) as err:
            log.warning("sighting %s left open by the previous run cannot be ended: %s", last.get("id"), err)
    return events
