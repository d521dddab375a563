"""The sightings store: ``state_dir/sightings.sqlite3``, the source of the station's page and API.

One more sink of the publish fan-out: its own bounded queue and ONE writer thread that drains the
queue in batches (one transaction per batch), so MQTT and the JSONL log never wait on it. A
sighting row is updated by every event; every event is kept too. WAL lets the HTTP threads read
while the writer writes. The file is a cache of ``sightings.jsonl`` (plus ``reviews.jsonl``): when
it is missing or damaged it is rebuilt from them.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from birdstream.errors import PublishError
from birdstream.publish import metrics
from birdstream.publish.sinks import wait_queue_done

log = logging.getLogger(__name__)

FILE_NAME = "sightings.sqlite3"
REVIEWS_FILE = "reviews.jsonl"  # every review, appended: a rebuilt store keeps them
LOCK_FILE = FILE_NAME + ".lock"
SCHEMA_VERSION = 1
_STOP = object()
_PRUNE_EVERY_S = 3600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sightings (
    id TEXT PRIMARY KEY, station TEXT NOT NULL, stream TEXT NOT NULL,
    label TEXT NOT NULL,            -- the model's species
    species TEXT NOT NULL,          -- after review (a relabel), what the page and API count
    score REAL NOT NULL, top TEXT NOT NULL, started REAL NOT NULL, updated REAL NOT NULL, ended REAL,
    frames INTEGER NOT NULL, box TEXT, snapshot TEXT, model TEXT NOT NULL,
    media_start_s REAL, media_end_s REAL, last_seq INTEGER NOT NULL,
    review TEXT, reviewed_at REAL
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
                       box, snapshot, model, media_start_s, media_end_s, last_seq)
VALUES (:id, :station, :stream, :species, :species, :score, :top, :started, :updated, :ended, :frames,
        :box, :snapshot, :model, :media_start_s, :media_end_s, :seq)
ON CONFLICT (id) DO UPDATE SET
    label = excluded.label,
    species = CASE WHEN sightings.review = 'relabel' THEN sightings.species ELSE excluded.label END,
    score = excluded.score, top = excluded.top, updated = excluded.updated, ended = excluded.ended,
    frames = excluded.frames, box = excluded.box, snapshot = COALESCE(excluded.snapshot, sightings.snapshot),
    model = excluded.model, media_start_s = excluded.media_start_s, media_end_s = excluded.media_end_s,
    last_seq = excluded.last_seq, started = excluded.started
WHERE excluded.last_seq >= sightings.last_seq
"""


@dataclass(frozen=True)
class StoreOptions:
    enabled: bool = True
    max_age_days: float | None = 365.0  # sightings that started longer ago are deleted; None keeps all
    batch: int = 500  # events per transaction at most
    linger_s: float = 0.2  # how long the writer waits to fill a batch (the page's live updates lag this much)
    queue_size: int = 10_000


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


def jsonl_files(state_dir: Path, name: str = "sightings.jsonl") -> list[Path]:
    """The log and its rotated backups, oldest first (``.N`` .. ``.1``, then the live file)."""
    rotated = sorted(state_dir.glob(name + ".*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    files = [p for p in rotated if p.suffix[1:].isdigit()]
    live = state_dir / name
    return files + ([live] if live.exists() else [])


def read_lines(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """JSON objects of complete lines; damaged lines are skipped (counted in the log line of the caller)."""
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if not line.endswith("\n") or not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(obj, dict):
                        yield obj
        except FileNotFoundError:
            continue
        except OSError as err:
            log.warning("%s: unreadable (%s); the store is rebuilt without it", path, err.strerror or err)


def rebuild(state_dir: Path, path: Path | None = None) -> tuple[int, int]:
    """Build the store afresh from sightings.jsonl (+ rotated files) and reviews.jsonl; atomic replace.

    Returns (events applied, reviews applied). Lines that are not sighting events are skipped.
    """
    state_dir = Path(state_dir)
    path = path or state_dir / FILE_NAME
    tmp = path.with_name(path.name + ".rebuild")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        leftover.unlink(missing_ok=True)
    db = connect(tmp)
    try:
        db.executescript(_SCHEMA)
        events = reviews = 0
        batch: list[dict[str, Any]] = []
        for obj in read_lines(jsonl_files(state_dir)):
            try:
                row_values(obj)
            except (KeyError, TypeError, ValueError):
                continue
            batch.append(obj)
            if len(batch) >= 2000:
                events += write_events(db, batch)
                batch.clear()
        events += write_events(db, batch)
        for obj in read_lines([state_dir / REVIEWS_FILE]):
            try:
                reviews += apply_review(db, str(obj["id"]), str(obj["verdict"]), obj.get("species"), float(obj["at"]))
            except (KeyError, TypeError, ValueError):
                continue
        db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    os.replace(tmp, path)
    return events, reviews


def _lock(state_dir: Path) -> BinaryIO:
    """Hold ``sightings.sqlite3.lock`` while writing the store: a rebuild never replaces it under a daemon."""
    fh = open(Path(state_dir) / LOCK_FILE, "ab")  # noqa: SIM115 - held for the writer's life
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise PublishError(f"sightings store in {state_dir} is in use by a running daemon: stop it first") from None
    return fh


def rebuild_locked(state_dir: Path) -> tuple[int, int]:
    """``birdstream store rebuild``: rebuild, refused while a daemon writes the store."""
    if not Path(state_dir).is_dir():
        raise PublishError(f"state_dir {state_dir}: no such folder")
    lock = _lock(state_dir)
    try:
        return rebuild(Path(state_dir))
    finally:
        lock.close()


def _usable(path: Path) -> bool:
    """True when ``path`` is a store of this schema that SQLite can read."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            ok = db.execute("PRAGMA quick_check(1)").fetchone()[0] == "ok"
            return ok and row is not None and row[0] == str(SCHEMA_VERSION)
        finally:
            db.close()
    except sqlite3.Error:
        return False


def open_or_rebuild(state_dir: Path) -> Path:
    """The store's path, rebuilt from the JSONL log first when missing or damaged (one log line)."""
    path = Path(state_dir) / FILE_NAME
    if path.exists() and _usable(path):
        return path
    if path.exists():
        damaged = path.with_name(path.name + ".damaged")
        os.replace(path, damaged)
        log.warning("sightings store %s is damaged (kept as %s); rebuilding it from sightings.jsonl", path, damaged.name)
    events, reviews = rebuild(Path(state_dir), path)
    if events or reviews:
        log.info("sightings store %s rebuilt: %d event(s), %d review(s)", path, events, reviews)
    return path


Listener = Callable[[list[dict[str, Any]]], None]


class StoreWriter:
    """The store's sink: a bounded queue, one writer thread, one transaction per drained batch.

    ``listeners`` are called (on the writer thread, after the commit) with each batch of payloads:
    the page's live updates read only what is already stored.
    """

    def __init__(self, state_dir: Path, options: StoreOptions, clock: Callable[[], float] = time.time) -> None:
        self.state_dir = Path(state_dir)
        self.options = options
        self._lock_fh = _lock(self.state_dir)
        try:
            self.path = open_or_rebuild(self.state_dir)
            self._db = connect(self.path)
            self._db.executescript(_SCHEMA)
        except BaseException:
            self._lock_fh.close()
            raise
        self._clock = clock
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=options.queue_size)
        self._thread = threading.Thread(target=self._run, name="publish:store", daemon=True)
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._failing = False
        self._last_prune = 0.0

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def start(self) -> None:
        self.prune()
        self._thread.start()

    def submit(self, payload: dict[str, Any]) -> bool:
        try:
            self._queue.put_nowait(payload)
            return True
        except queue.Full:
            metrics.SINK_DROPPED.labels(sink="store").inc()
            log.error("store sink queue full (%d items): an event is missing from the store until a rebuild",
                      self._queue.maxsize)
            return False

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            # Wait a moment for more: a few larger transactions cost the other sinks less than many.
            until = time.monotonic() + self.options.linger_s
            while len(batch) < self.options.batch and batch[-1] is not _STOP:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, until - time.monotonic())))
                except queue.Empty:
                    break
            stop = any(item is _STOP for item in batch)
            payloads = [item for item in batch if item is not _STOP]
            try:
                if payloads:
                    self._write(payloads)
                if self._clock() - self._last_prune > _PRUNE_EVERY_S:
                    self.prune()
            finally:
                for _ in batch:
                    self._queue.task_done()
            if stop:
                return

    def _write(self, payloads: list[dict[str, Any]]) -> None:
        try:
            with self._db:
                write_events(self._db, payloads)
        except (sqlite3.Error, OSError, KeyError, TypeError, ValueError) as err:
            metrics.SINK_ERRORS.labels(sink="store").inc()
            (log.debug if self._failing else log.error)(
                "sightings store %s: %d event(s) not written (%s); `birdstream store rebuild` restores them",
                self.path, len(payloads), err)
            self._failing = True
            return
        if self._failing:
            log.info("sightings store %s is written again", self.path)
            self._failing = False
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(payloads)
            except Exception:  # noqa: BLE001 - a page's listener must not end the store
                log.exception("store listener failed")

    def prune(self) -> int:
        """Delete sightings (and their events) that started more than max_age_days ago."""
        self._last_prune = self._clock()
        if self.options.max_age_days is None:
            return 0
        cutoff = self._clock() - self.options.max_age_days * 86400
        try:
            with self._db:
                self._db.execute("DELETE FROM events WHERE id IN (SELECT id FROM sightings WHERE started < ?)",
                                 (cutoff,))
                n = self._db.execute("DELETE FROM sightings WHERE started < ?", (cutoff,)).rowcount
        except sqlite3.Error as err:
            log.error("sightings store %s: pruning failed (%s)", self.path, err)
            return 0
        if n:
            log.info("sightings store: %d sighting(s) older than %g days deleted", n, self.options.max_age_days)
        return n

    def wait_idle(self, deadline: float) -> bool:
        return wait_queue_done(self._queue, deadline)

    def close(self, timeout: float) -> bool:
        if self._thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                return False
            self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        self._db.close()
        self._lock_fh.close()
        return True
