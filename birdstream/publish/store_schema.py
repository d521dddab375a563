"""The sightings store's SQLite schema and the statements every writer shares (daemon, rebuild, reviews)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

FILE_NAME = "sightings.sqlite3"
REVIEWS_FILE = "reviews.jsonl"  # every review, appended: a rebuilt store keeps them
LOCK_FILE = FILE_NAME + ".lock"
SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sightings (
    id TEXT PRIMARY KEY, station TEXT NOT NULL, stream TEXT NOT NULL,
    label TEXT NOT NULL,            -- the model's species
    species TEXT NOT NULL,          -- after review (a relabel), what the page and API count
    score REAL NOT NULL, top TEXT NOT NULL, started REAL NOT NULL, updated REAL NOT NULL, ended REAL,
    frames INTEGER NOT NULL, box TEXT, snapshot TEXT, model TEXT NOT NULL,
    media_start_s REAL, media_end_s REAL, last_seq INTEGER NOT NULL,
    review TEXT, reviewed_at REAL,
    first_at_station INTEGER NOT NULL DEFAULT 0  -- the first sighting ever of its species here: review it
);
CREATE INDEX IF NOT EXISTS sightings_stream ON sightings (stream, started);
-- covering indexes: a day's grid and the per-species counts are read from the index alone
CREATE INDEX IF NOT EXISTS sightings_species ON sightings (species, started, review);
CREATE INDEX IF NOT EXISTS sightings_started ON sightings (started, id, species, review);
CREATE TABLE IF NOT EXISTS events (
    id TEXT NOT NULL, seq INTEGER NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (id, seq)
) WITHOUT ROWID;
"""

# A later event (higher seq) updates the row; a replayed older one (outbox, rebuild) changes nothing.
# A reviewed species (relabel) stays what the reviewer said.
_UPSERT = """
INSERT INTO sightings (id, station, stream, label, species, score, top, started, updated, ended, frames,
                       box, snapshot, model, media_start_s, media_end_s, last_seq, first_at_station)
VALUES (:id, :station, :stream, :species, :species, :score, :top, :started, :updated, :ended, :frames,
        :box, :snapshot, :model, :media_start_s, :media_end_s, :seq, :first_at_station)
ON CONFLICT (id) DO UPDATE SET
    label = excluded.label,
    species = CASE WHEN sightings.review = 'relabel' THEN sightings.species ELSE excluded.label END,
    score = excluded.score, top = excluded.top, updated = excluded.updated, ended = excluded.ended,
    frames = excluded.frames, box = excluded.box, snapshot = COALESCE(excluded.snapshot, sightings.snapshot),
    model = excluded.model, media_start_s = excluded.media_start_s, media_end_s = excluded.media_end_s,
    last_seq = excluded.last_seq, started = excluded.started, first_at_station = excluded.first_at_station
WHERE excluded.last_seq >= sightings.last_seq
"""



def epoch(text: str | None) -> float | None:
    """RFC 3339 -> epoch seconds (None stays None)."""
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def row_values(payload: dict[str, Any]) -> dict[str, Any]:
    """The bound parameters of _UPSERT for one event payload (INTERFACE.md section 4, ``box`` optional)."""
    box = payload.get("box")
    return {
        "id": str(payload["id"]), "station": str(payload["station"]), "stream": str(payload["stream"]),
        "species": str(payload["species"]), "score": float(payload["score"]),
        "top": json.dumps(payload.get("top") or [], ensure_ascii=False),
        "started": epoch(payload["started_at"]), "updated": epoch(payload.get("updated_at") or payload["started_at"]),
        "ended": epoch(payload.get("ended_at")), "frames": int(payload.get("frames") or 0),
        "box": json.dumps(box) if box is not None else None, "snapshot": payload.get("snapshot"),
        "model": str(payload.get("model") or ""), "media_start_s": payload.get("media_start_s"),
        "media_end_s": payload.get("media_end_s"), "seq": int(payload["seq"]),
        "first_at_station": int(bool(payload.get("first_at_station", False))),
    }


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10, check_same_thread=False)
    else:
        db = sqlite3.connect(path, timeout=10, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a power cut loses at most the last batch
    db.execute("PRAGMA busy_timeout=10000")
    return db


def write_events(db: sqlite3.Connection, payloads: Iterable[dict[str, Any]]) -> int:
    """Upsert the sightings and insert the events (no commit); returns the number applied."""
    n = 0
    for payload in payloads:
        values = row_values(payload)
        db.execute(_UPSERT, values)
        db.execute("INSERT OR IGNORE INTO events (id, seq, payload) VALUES (?, ?, ?)",
                   (values["id"], values["seq"], json.dumps(payload, ensure_ascii=False, separators=(",", ":"))))
        n += 1
    return n


def apply_review(db: sqlite3.Connection, sighting_id: str, verdict: str, species: str | None, at: float) -> bool:
    """Set a sighting's review (no commit); False when the id is unknown."""
    if verdict == "relabel":
        cur = db.execute("UPDATE sightings SET review = ?, species = ?, reviewed_at = ? WHERE id = ?",
                         (verdict, species, at, sighting_id))
    else:  # correct / false: the model's species again (undoes an earlier relabel)
        cur = db.execute("UPDATE sightings SET review = ?, species = label, reviewed_at = ? WHERE id = ?",
                         (verdict, at, sighting_id))
    return cur.rowcount > 0
