"""Reading the sightings store (the page and API) and reviewing a sighting.

Each HTTP worker thread has its own read connection (WAL: reads never wait for the writer). A
review is written at once in its own transaction and appended to ``reviews.jsonl`` so a rebuilt
store keeps it.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from birdstream.messages import rfc3339
from birdstream.publish.store import FILE_NAME, REVIEWS_FILE, apply_review, connect

log = logging.getLogger(__name__)

VERDICTS = ("correct", "false", "relabel")
_CURSOR = re.compile(r"^(\d{1,12}(?:\.\d{1,6})?)~([A-Za-z0-9-]{1,64})$")
_COLUMNS = ("id, station, stream, species, score, top, started, ended, frames, box, snapshot, model, "
            "media_start_s, media_end_s, review, label, updated, first_at_station")


@dataclass(frozen=True)
class Filter:
    stream: str | None = None
    species: str | None = None
    since: float | None = None  # epoch seconds, inclusive (started_at)
    until: float | None = None  # exclusive
    include_false: bool = True


def make_cursor(started: float, sighting_id: str) -> str:
    return f"{started:.6f}~{sighting_id}"


def parse_cursor(text: str) -> tuple[float, str] | None:
    match = _CURSOR.match(text)
    return (float(match.group(1)), match.group(2)) if match else None


def snapshot_url(snapshot: str | None) -> str | None:
    """``snapshots/a/b.jpg`` (relative to state_dir) -> ``/snapshots/a/b.jpg``; others are not served."""
    if not snapshot or not snapshot.startswith("snapshots/"):
        return None
    return "/" + quote(snapshot)


def _as_s(row: sqlite3.Row, state_dir: Path | None = None) -> dict[str, Any]:
    """INTERFACE.md section 6's ``S``, plus ``label`` (the model's species) and ``updated_at``."""
    return {
        "id": row["id"], "station": row["station"], "stream": row["stream"], "species": row["species"],
        "score": row["score"], "started_at": rfc3339(row["started"]),
        "ended_at": rfc3339(row["ended"]) if row["ended"] is not None else None,
        "updated_at": rfc3339(row["updated"]), "frames": row["frames"],
        "box": json.loads(row["box"]) if row["box"] else None, "snapshot_url": _live_url(row["snapshot"], state_dir),
        "model": row["model"], "media_start_s": row["media_start_s"], "media_end_s": row["media_end_s"],
        "review": row["review"], "label": row["label"], "top": json.loads(row["top"]),
        "first_at_station": bool(row["first_at_station"]),
    }


def _live_url(snapshot: str | None, state_dir: Path | None) -> str | None:
    """The snapshot's URL while its file exists (snapshots are pruned sooner than the store)."""
    url = snapshot_url(snapshot)
    if url is None or state_dir is None or (state_dir / str(snapshot)).is_file():
        return url
    return None


class StoreReader:
    """Queries of the API and the page over ``state_dir/sightings.sqlite3``."""

    def __init__(self, state_dir: Path | str) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / FILE_NAME
        self._local = threading.local()
        self._review_lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = connect(self.path, readonly=True)
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

    def _where(self, f: Filter) -> tuple[str, list[Any]]:
        clauses, args = [], []
        for column, value in (("stream", f.stream), ("species", f.species)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if f.since is not None:
            clauses.append("started >= ?")
            args.append(f.since)
        if f.until is not None:
            clauses.append("started < ?")
            args.append(f.until)
        if not f.include_false:
            clauses.append("review IS NOT 'false'")
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    def sightings(self, f: Filter, limit: int = 50, before: tuple[float, str] | None = None
                  ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first; ``before`` is a cursor from a previous page's ``next``."""
        where, args = self._where(f)
        if before is not None:
            where += (" AND " if where else " WHERE ") + "(started < ? OR (started = ? AND id < ?))"
            args += [before[0], before[0], before[1]]
        rows = self._db().execute(
            f"SELECT {_COLUMNS} FROM sightings{where} ORDER BY started DESC, id DESC LIMIT ?",
            [*args, limit + 1]).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = make_cursor(rows[-1]["started"], rows[-1]["id"]) if more and rows else None
        return [_as_s(r, self.state_dir) for r in rows], cursor

    def sighting(self, sighting_id: str, events: bool = True) -> dict[str, Any] | None:
        db = self._db()
        row = db.execute(f"SELECT {_COLUMNS} FROM sightings WHERE id = ?", (sighting_id,)).fetchone()
        if row is None:
            return None
        s = _as_s(row, self.state_dir)
        if events:
            s["events"] = [json.loads(r[0]) for r in
                           db.execute("SELECT payload FROM events WHERE id = ? ORDER BY seq", (sighting_id,))]
        return s

    def species(self, since: float | None = None, until: float | None = None, name: str | None = None
                ) -> list[dict[str, Any]]:
        """Per species (or the one ``name``): sightings not reviewed false, first and last seen; most first."""
        where, args = self._where(Filter(species=name, since=since, until=until, include_false=False))
        rows = self._db().execute(
            f"SELECT species, COUNT(*), MIN(started), MAX(started) FROM sightings{where} "
            "GROUP BY species ORDER BY COUNT(*) DESC, species", args).fetchall()
        return [{"species": r[0], "count": r[1], "first_seen": rfc3339(r[2]), "last_seen": rfc3339(r[3])}
                for r in rows]

    def hour_grid(self, since: float, until: float, utc_offset_s: float = 0.0) -> dict[str, list[int]]:
        """species -> 24 counts of sightings that started in each hour (local time of the offset)."""
        where, args = self._where(Filter(since=since, until=until, include_false=False))
        rows = self._db().execute(
            f"SELECT species, CAST(((started + ?) % 86400) / 3600 AS INTEGER) AS h, COUNT(*) "
            f"FROM sightings{where} GROUP BY species, h", [utc_offset_s, *args]).fetchall()
        grid: dict[str, list[int]] = {}
        for species, hour, count in rows:
            grid.setdefault(species, [0] * 24)[int(hour) % 24] = count
        return dict(sorted(grid.items(), key=lambda kv: (-sum(kv[1]), kv[0])))

    def per_day(self, species: str, since: float, days: int, utc_offset_s: float = 0.0) -> list[int]:
        """Sightings of one species per day for ``days`` days from ``since`` (a local midnight)."""
        rows = self._db().execute(
            "SELECT CAST((started - ?) / 86400 AS INTEGER) AS d, COUNT(*) FROM sightings "
            "WHERE species = ? AND started >= ? AND started < ? AND review IS NOT 'false' GROUP BY d",
            (since, species, since, since + days * 86400)).fetchall()
        counts = [0] * days
        for day, count in rows:
            if 0 <= day < days:
                counts[int(day)] = count
        return counts

    def best(self, species: str, limit: int = 6) -> list[dict[str, Any]]:
        """The highest-scoring sightings of a species that have a snapshot."""
        rows = self._db().execute(
            f"SELECT {_COLUMNS} FROM sightings WHERE species = ? AND snapshot IS NOT NULL "
            "AND review IS NOT 'false' ORDER BY score DESC LIMIT ?", (species, limit)).fetchall()
        return [_as_s(r, self.state_dir) for r in rows]

    def review(self, sighting_id: str, verdict: str, species: str | None) -> dict[str, Any] | None:
        """Store a review (None for an unknown id) and return the sighting as it stands now."""
        at = time.time()
        with self._review_lock:
            db = connect(self.path)
            try:
                with db:
                    if not apply_review(db, sighting_id, verdict, species, at):
                        return None
            finally:
                db.close()
            record = {"id": sighting_id, "verdict": verdict, "species": species, "at": at}
            try:
                with open(self.state_dir / REVIEWS_FILE, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            except OSError as err:
                log.error("%s: review of %s not appended (%s); a rebuilt store would lose it",
                          self.state_dir / REVIEWS_FILE, sighting_id, err.strerror or err)
        log.info("sighting %s reviewed: %s%s", sighting_id, verdict, f" as {species}" if species else "")
        return self.sighting(sighting_id, events=False)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
