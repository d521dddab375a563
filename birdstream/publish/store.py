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
from pathlib import Path
from typing import Any, BinaryIO

from birdstream.errors import PublishError
from birdstream.publish import metrics
from birdstream.publish.sinks import wait_queue_done

from birdstream.publish.store_schema import (  # noqa: F401 - FILE_NAME etc. are this module's API too
    SCHEMA,
    FILE_NAME,
    LOCK_FILE,
    REVIEWS_FILE,
    SCHEMA_VERSION,
    apply_review,
    connect,
    epoch,
    row_values,
    write_events,
)

_STOP = object()
_PRUNE_EVERY_S = 3600.0
_CATCH_UP_BYTES = 1 << 20  # the log's tail read again at start (a killed run's last uncommitted batch)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreOptions:
    enabled: bool = True
    max_age_days: float | None = 365.0  # sightings that started longer ago are deleted; None keeps all
    batch: int = 500  # events per transaction at most
    linger_s: float = 0.2  # how long the writer waits to fill a batch (the page's live updates lag this much)
    queue_size: int = 10_000


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
        db.executescript(SCHEMA)
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
        self.path = self.state_dir / FILE_NAME
        self._db: sqlite3.Connection | None = None
        self.ready = threading.Event()  # set once the store is open (a rebuild can take a while)
        self._clock = clock
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=options.queue_size)
        self._thread = threading.Thread(target=self._run, name="publish:store", daemon=True)
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._failing = False
        self._last_prune = 0.0

    def _open(self) -> bool:
        """Open (rebuilding first when needed) on the writer thread: a long rebuild never delays the daemon."""
        try:
            self.path = open_or_rebuild(self.state_dir)
            self._db = connect(self.path)
            self._db.executescript(SCHEMA)
            self._catch_up()
        except (sqlite3.Error, OSError) as err:
            metrics.SINK_ERRORS.labels(sink="store").inc()
            log.error("sightings store %s cannot be opened (%s); the page shows no sightings until a restart",
                      self.path, err)
            return False
        finally:
            self.ready.set()
        self.prune()
        return True

    def _catch_up(self) -> None:
        """Apply the log's tail again: events a killed run logged but had not committed here yet.

        Idempotent: events are kept once per (id, seq) and a row only moves forward in seq.
        """
        log_path = self.state_dir / "sightings.jsonl"
        try:
            with open(log_path, "rb") as fh:
                fh.seek(max(0, fh.seek(0, os.SEEK_END) - _CATCH_UP_BYTES))
                tail = fh.read().decode("utf-8", errors="replace").split("\n")[1:-1]
        except FileNotFoundError:
            return
        except OSError as err:
            log.warning("%s: unreadable (%s); the store may miss the last events of a killed run",
                        log_path, err.strerror or err)
            return
        payloads = []
        for line in tail:
            try:
                obj = json.loads(line)
                row_values(obj)
            except (ValueError, KeyError, TypeError):
                continue
            payloads.append(obj)
        assert self._db is not None
        with self._db:
            write_events(self._db, payloads)

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def start(self) -> None:
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
        opened = self._open()
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
                if payloads and opened:
                    self._write(payloads)
                if opened and self._clock() - self._last_prune > _PRUNE_EVERY_S:
                    self.prune()
            finally:
                for _ in batch:
                    self._queue.task_done()
            if stop:
                return

    def _write(self, payloads: list[dict[str, Any]]) -> None:
        assert self._db is not None
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
        if self.options.max_age_days is None or self._db is None:
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
        if self._db is not None:
            self._db.close()
        self._lock_fh.close()
        return True
