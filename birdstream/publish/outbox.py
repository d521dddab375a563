"""The durable outbox: every MQTT message is on disk before it is sent and leaves only on PUBACK.

SQLite in WAL mode. ``synchronous=FULL`` by default: in WAL mode NORMAL survives a killed process
but may roll back the last commits on power loss, and a field station's power does get cut; one
fsync per sighting event is cheap at the rate sightings happen. Deletions are batched per ack round
(losing one only means a duplicate, which subscribers drop by ``(id, seq)``).

A corrupt file (a power cut on a cheap SD card) is found at open (``PRAGMA quick_check``) and at run
time (SQLITE_CORRUPT / SQLITE_NOTADB from any statement): it is moved aside as
``outbox.sqlite3.corrupt-<UTC time>`` with one log line, the rows still readable are copied into a
fresh outbox, and delivery goes on; ``corrupted`` says what happened for health and metrics.

Ages follow the monotonic clock: a station without a real-time clock boots with a stale wall clock
and NTP then jumps it by months. When the wall clock jumps under the running daemon, the stored
creation times move with it (a jump forward must not expire the backlog, a jump back must not keep
it for ever); rows stamped in the future at open (the clock went back while stopped) count from then.

Rows with a ``key`` (retained, latest-wins topics such as ``P/S/C/last``) replace older rows with the
same key, so a day-long outage leaves one pending stream status, not thousands.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from birdstream.errors import PublishError
from birdstream.publish import metrics
from birdstream.publish.options import OutboxOptions

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL,
    key TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_key ON outbox(key) WHERE key IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_created ON outbox(created);
CREATE TABLE IF NOT EXISTS aside (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL,
    reason TEXT NOT NULL,
    created REAL NOT NULL
);
"""
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_ASIDE_KEEP = 1000  # set-aside messages kept for an operator to look at; the oldest go first
_AGE_CHECK_EVERY_S = 60.0
_JUMP_S = 5.0  # a wall-clock step larger than this (NTP slewing stays far below) is a jump


@dataclass(frozen=True)
class OutMessage:
    topic: str
    payload: bytes
    retain: bool = False
    key: str | None = None  # latest-wins: a newer message with the same key replaces this one


@dataclass(frozen=True)
class Row:
    id: int
    topic: str
    payload: bytes
    retain: bool


class Outbox:
    """One SQLite file; used by one thread at a time (the MQTT sink's)."""

    def __init__(self, path: Path, options: OutboxOptions, *, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.options = options
        self._clock = clock
        self._mono = monotonic
        self._offset = clock() - monotonic()  # wall minus monotonic; changes only when the wall clock jumps
        self._count = 0
        self._next_age_check = 0.0
        self.corrupted: str | None = None  # one line about the last corrupt file moved aside
        if options.synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise PublishError(f"outbox.synchronous: {options.synchronous!r} is not NORMAL, FULL or EXTRA")
        try:
            self._db = self._connect(check=True)
        except sqlite3.DatabaseError as err:
            if not is_corrupt(err):
                raise PublishError(f"outbox {self.path}: cannot open ({err})") from None
            self.recover(err)
        self._from_the_future()
        self._expire(self._clock())
        metrics.OUTBOX_BACKLOG.set(self._count)

    def _from_the_future(self) -> None:
        now = self._clock()
        with self._tx() as db:
            n = db.execute("UPDATE outbox SET created = ? WHERE created > ?", (now, now + 3600.0)).rowcount
        if n > 0:
            log.warning("outbox %s: %d message(s) were stamped after the current time (the clock went back); "
                        "their age counts from now", self.path, n)

    def _follow_clock(self) -> float:
        """The wall time now; after a wall-clock jump, the stored creation times are moved by the jump."""
        now = self._clock()
        offset = now - self._mono()
        jump = offset - self._offset
        if abs(jump) > _JUMP_S:
            with self._tx() as db:
                db.execute("UPDATE outbox SET created = created + ?", (jump,))
            self._offset = offset
            log.warning("outbox %s: the wall clock jumped by %+.0f s; message ages are kept as they were",
                        self.path, jump)
        return now

    def _connect(self, *, check: bool) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.options.synchronous.upper()}")
            if check:
                verdict = " ".join(str(db.execute("PRAGMA quick_check(1)").fetchone()[0]).split())
                if verdict != "ok":
                    err = sqlite3.DatabaseError(f"database disk image is malformed ({verdict})")
                    err.sqlite_errorcode = 11  # type: ignore[attr-defined]
                    raise err
            db.executescript(_SCHEMA)
            self._count = int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        except BaseException:
            db.close()
            raise
        return db

    def recover(self, err: BaseException) -> Path:
        """The file is corrupt: move it aside, start a fresh outbox with the rows still readable."""
        old = getattr(self, "_db", None)
        if old is not None:
            try:
                old.close()
            except sqlite3.Error:
                pass
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                os.replace(src, f"{aside}{suffix}")
        try:
            self._db = self._connect(check=False)
        except sqlite3.Error as again:
            raise PublishError(f"outbox {self.path}: cannot start a fresh outbox ({again})") from None
        saved = self._salvage(aside)
        metrics.OUTBOX_CORRUPT.inc()
        self.corrupted = (f"outbox {self.path} was corrupt ({err}); moved aside to {aside.name}, "
                          f"{saved} undelivered message(s) saved from it, a fresh outbox started "
                          f"at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
        log.error("%s", self.corrupted)
        metrics.OUTBOX_BACKLOG.set(self._count)
        return aside

    def _salvage(self, aside: Path) -> int:
        """Copy the rows of the corrupt file that can still be read, in order, until the first bad page."""
        saved: list[tuple[object, ...]] = []
        try:
            src = sqlite3.connect(f"file:{aside}?mode=ro", uri=True)
            try:
                for row in src.execute("SELECT topic, payload, retain, key, created FROM outbox ORDER BY id"):
                    saved.append(tuple(row))
            finally:
                src.close()
        except sqlite3.Error:
            pass  # what was read before the damage is kept
        if saved:
            with self._tx() as db:
                db.executemany("INSERT INTO outbox (topic, payload, retain, key, created) VALUES (?, ?, ?, ?, ?)",
                               saved)
            self._count += len(saved)
        return len(saved)

    def __len__(self) -> int:
        return self._count

    def put(self, messages: Sequence[OutMessage]) -> list[int]:
        """Store messages in one transaction (in order); return their row ids."""
        now = self._follow_clock()
        ids: list[int] = []
        count = self._count  # applied only once committed: a failed put (disk full) changes nothing
        with self._tx() as db:
            for msg in messages:
                if msg.key is not None:
                    count -= db.execute("DELETE FROM outbox WHERE key = ?", (msg.key,)).rowcount
                cur = db.execute(
                    "INSERT INTO outbox (topic, payload, retain, key, created) VALUES (?, ?, ?, ?, ?)",
                    (msg.topic, msg.payload, int(msg.retain), msg.key, now),
                )
                ids.append(int(cur.lastrowid or 0))
                count += 1
            over = count - self.options.max_messages
            if over > 0:
                db.execute("DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)", (over,))
                count -= over
        self._count = count
        if over > 0:
            metrics.OUTBOX_DROPPED.labels(reason="full").inc(over)
            log.warning(
                "outbox %s full (%d messages): dropped the %d oldest undelivered message(s)",
                self.path, self.options.max_messages, over,
            )
        if self._mono() >= self._next_age_check:
            self._expire(now)
        metrics.OUTBOX_BACKLOG.set(self._count)
        return ids

    def after(self, last_id: int, limit: int) -> list[Row]:
        """The oldest ``limit`` rows with id > last_id, in order."""
        cur = self._db.execute(
            "SELECT id, topic, payload, retain FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (last_id, limit)
        )
        return [Row(int(i), str(t), bytes(p), bool(r)) for i, t, p, r in cur.fetchall()]

    def delete(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        if not ids:
            return
        with self._tx() as db:
            n = db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids]).rowcount
        self._count = max(0, self._count - max(n, 0))
        metrics.OUTBOX_BACKLOG.set(self._count)

    def set_aside(self, row_id: int, reason: str) -> None:
        """Move a row the broker cannot take into the ``aside`` table (kept for inspection, never resent)."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO aside (id, topic, payload, retain, reason, created) "
                       "SELECT id, topic, payload, retain, ?, created FROM outbox WHERE id = ?", (reason, row_id))
            n = db.execute("DELETE FROM outbox WHERE id = ?", (row_id,)).rowcount
            db.execute("DELETE FROM aside WHERE id NOT IN (SELECT id FROM aside ORDER BY id DESC LIMIT ?)",
                       (_ASIDE_KEEP,))
        self._count = max(0, self._count - max(n, 0))
        metrics.OUTBOX_BACKLOG.set(self._count)

    def _expire(self, now: float) -> None:
        self._next_age_check = self._mono() + _AGE_CHECK_EVERY_S
        cutoff = now - self.options.max_age_days * 86400.0
        with self._tx() as db:
            n = db.execute("DELETE FROM outbox WHERE created < ?", (cutoff,)).rowcount
        if n > 0:
            self._count -= n
            metrics.OUTBOX_DROPPED.labels(reason="expired").inc(n)
            log.warning(
                "outbox %s: dropped %d undelivered message(s) older than %g days",
                self.path, n, self.options.max_age_days,
            )
            metrics.OUTBOX_BACKLOG.set(self._count)

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error:
            log.exception("closing outbox %s", self.path)


def is_corrupt(err: BaseException) -> bool:
    """A SQLite error that says the file itself is damaged (not a full disk or a lock)."""
    if not isinstance(err, sqlite3.DatabaseError):
        return False
    if getattr(err, "sqlite_errorcode", None) in _CORRUPT_CODES:
        return True
    text = str(err)
    return "malformed" in text or "not a database" in text


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, *rest: object) -> None:
        # SQLite may already have rolled back (SQLITE_FULL, SQLITE_IOERR): a second ROLLBACK would
        # hide the real error; a failed COMMIT must not leave the transaction open for the next put.
        try:
            if exc_type is None:
                self.db.execute("COMMIT")
        finally:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
