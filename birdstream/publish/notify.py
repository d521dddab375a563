"""Notifications through Apprise: a sink off the sighting path, and a daily digest.

Events are judged where they are handed over (cheap: a few dict look-ups); what is to be sent goes
into a bounded queue drained by one worker thread, which retries with backoff. A slow, hanging or
failing target therefore delays only other notifications, never a sighting, the log or MQTT; a
full queue drops the notification (counted). Notifications are not durable: those still queued
at shutdown are dropped (counted), the events themselves are in the log and the outbox.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from birdstream.messages import SightingEvent
from birdstream.publish import apprise_send, metrics
from birdstream.publish.jsonl import FILE_NAME as LOG_NAME
from birdstream.publish.sinks import wait_queue_done

log = logging.getLogger(__name__)

WHEN = ("start", "new_species", "first_of_day", "rare")


@dataclass(frozen=True)
class NotifyTarget:
    """One `notify:` entry."""

    url: str = field(repr=False)
    when: tuple[str, ...] = ("start",)
    cooldown_s: float = 0.0  # per species: no second notification of it within this time
    quiet_hours: tuple[int, int] | None = None  # [from, to) in minutes of the local day; may wrap midnight
    attach_snapshot: bool = True
    place: str = "notify"  # where the config defines it, for logs: notify[0]


@dataclass(frozen=True)
class DigestOptions:
    """The daily digest: the species since the last digest with counts, and the best picture."""

    url: str = field(repr=False)
    at_minute: int = 20 * 60  # local time of day, minutes
    attach_snapshot: bool = True


@dataclass(frozen=True)
class NotifyOptions:
    targets: tuple[NotifyTarget, ...] = ()
    digest: DigestOptions | None = None
    timezone: str | None = None  # IANA name; None = the system's
    rare_below: float = 0.1
    queue_size: int = 100
    retries: int = 3  # attempts after the first
    backoff_s: float = 2.0  # doubled after each failed attempt
    timeout_s: float = 10.0  # per attempt (connect and read)


@dataclass(frozen=True)
class _Job:
    name: str  # target name for logs and metrics
    url: str = field(repr=False)
    title: str
    body: str
    attach: Path | None


Sender = Callable[[str, str, str, "Path | None", float], bool]


class Notifier:
    """Decides which targets hear of a sighting; one worker sends, with retries; a digest once a day."""

    def __init__(self, *, station: str, state_dir: Path, options: NotifyOptions,
                 clock: Callable[[], float] = time.time, sender: Sender = apprise_send.send) -> None:
        self.station = station
        self.state_dir = Path(state_dir)
        self.options = options
        self._tz = ZoneInfo(options.timezone) if options.timezone else None
        self._clock = clock
        self._send = sender
        self._names = [apprise_send.target_name(t.place, t.url) for t in options.targets]
        self._queue: queue.Queue[_Job] = queue.Queue(maxsize=options.queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publish:notify", daemon=True)
        self._last: dict[tuple[int, str], float] = {}  # (target, species) -> event time last notified
        self._day: object = None
        self._today: set[str] = set()
        self._tally: dict[str, list[Any]] = {}  # species -> [count, best score, best snapshot]
        self._lock = threading.Lock()
        self._next_digest: float | None = None
        urls = [t.url for t in options.targets] + ([options.digest.url] if options.digest else [])
        apprise_send.install_mask(urls)

    def start(self) -> None:
        if self.options.digest is not None:
            self._next_digest = self._digest_due(self._clock())
            self._restore_tally(self._next_digest - 86_400)
        self._thread.start()

    def _restore_tally(self, since: float) -> None:
        """After a restart, the digest still counts what the sightings log holds since the last digest."""
        path = self.state_dir / LOG_NAME
        try:
            with open(path, "rb") as fh:
                for line in fh:
                    event = _read_event(line)
                    if event is not None and event[0] >= since:
                        self._tally_add(*event[1:])
        except FileNotFoundError:
            return
        except OSError as err:
            log.warning("%s: cannot read (%s); the next digest counts only new sightings", path, err.strerror or err)

    # -- deciding (the publisher's thread: no I/O) ----------------------------------------------
    def submit(self, event: SightingEvent) -> None:
        """Judge one event (with its snapshot path set); queue what is to be sent."""
        with self._lock:
            self._count(event)
        if event.event != "start":
            return
        local = datetime.fromtimestamp(event.started_at, self._tz)
        if local.date() != self._day:
            self._day, self._today = local.date(), set()
        reasons = {
            "start": True,
            "new_species": event.first_at_station,
            "first_of_day": event.species not in self._today,
            "rare": event.prior < self.options.rare_below,
        }
        self._today.add(event.species)
        minute = local.hour * 60 + local.minute
        for i, target in enumerate(self.options.targets):
            if not any(reasons[w] for w in target.when):
                continue
            name = self._names[i]
            if target.quiet_hours is not None and _within(minute, target.quiet_hours):
                metrics.NOTIFY_SKIPPED.labels(reason="quiet_hours").inc()
                continue
            last = self._last.get((i, event.species))
            if last is not None and event.started_at - last < target.cooldown_s:
                metrics.NOTIFY_SKIPPED.labels(reason="cooldown").inc()
                continue
            self._last[(i, event.species)] = event.started_at
            title, body = self._message(event, local, [w for w in WHEN if w in target.when and reasons[w]])
            attach = self.state_dir / event.snapshot if target.attach_snapshot and event.snapshot else None
            self._enqueue(_Job(name, target.url, title, body, attach))

    def _message(self, event: SightingEvent, local: datetime, why: list[str]) -> tuple[str, str]:
        notes = []
        if "new_species" in why:
            notes.append("first ever at this station")
        if "rare" in why:
            notes.append(f"rare here this month (prior {event.prior:g})")
        if "first_of_day" in why and "new_species" not in why:
            notes.append("first today")
        when = local.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
        body = f"{event.species} on {event.stream} at {self.station}, {when} (score {event.score:.2f})"
        if notes:
            body += "; " + ", ".join(notes)
        return f"{event.species} at {self.station}", body

    def _count(self, event: SightingEvent) -> None:
        if self.options.digest is not None:
            self._tally_add(event.species, event.event == "start", float(event.score), event.snapshot)

    def _tally_add(self, species: str, start: bool, score: float, snapshot: str | None) -> None:
        entry = self._tally.setdefault(species, [0, -1.0, None])
        if start:
            entry[0] += 1
        if snapshot and score >= entry[1]:
            entry[1], entry[2] = score, snapshot

    def _enqueue(self, job: _Job) -> None:
        try:
            self._queue.put_nowait(job)
            metrics.NOTIFY_QUEUED.inc()
        except queue.Full:
            metrics.NOTIFY_DROPPED.labels(reason="queue_full").inc()
            log.warning("%s: %d notifications waiting; one was dropped", job.name, self._queue.maxsize)

    # -- sending (the worker thread) ------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            wait = 1.0
            if self._next_digest is not None:
                now = self._clock()
                if now >= self._next_digest:
                    self._next_digest = self._digest_due(now + 60)
                    self._deliver(self._digest_job())
                    continue
                wait = min(wait, max(self._next_digest - now, 0.0))
            try:
                job = self._queue.get(timeout=wait)
            except queue.Empty:
                continue
            try:
                self._deliver(job)
            finally:
                self._queue.task_done()

    def _deliver(self, job: _Job) -> None:
        delay = self.options.backoff_s
        for attempt in range(self.options.retries + 1):
            if self._stop.is_set():
                metrics.NOTIFY_DROPPED.labels(reason="shutdown").inc()
                return
            try:
                ok = self._send(job.url, job.title, job.body, job.attach, self.options.timeout_s)
            except Exception:  # noqa: BLE001 - never let one message end the worker (no URL in the line)
                ok = False
            if ok:
                metrics.NOTIFY_SENT.inc()
                log.info("%s: sent %r", job.name, job.title)
                return
            if attempt < self.options.retries:
                metrics.NOTIFY_RETRIES.inc()
                log.warning("%s: sending failed (attempt %d of %d); retrying in %.0f s", job.name,
                            attempt + 1, self.options.retries + 1, delay)
                if self._stop.wait(delay):
                    metrics.NOTIFY_DROPPED.labels(reason="shutdown").inc()
                    return
                delay *= 2
        metrics.NOTIFY_FAILED.inc()
        log.error("%s: %r not sent after %d attempts", job.name, job.title, self.options.retries + 1)

    # -- the digest -----------------------------------------------------------------------------
    def _digest_due(self, after: float) -> float:
        assert self.options.digest is not None
        local = datetime.fromtimestamp(after, self._tz)
        minute = self.options.digest.at_minute
        due = local.replace(hour=minute // 60, minute=minute % 60, second=0, microsecond=0)
        if due.timestamp() <= after:
            due = (due + timedelta(days=1)).replace(hour=minute // 60, minute=minute % 60)
        return due.timestamp()

    def _digest_job(self) -> _Job:
        digest = self.options.digest
        assert digest is not None
        with self._lock:
            tally, self._tally = self._tally, {}
        ranked = sorted(tally.items(), key=lambda kv: (-kv[1][0], kv[0]))
        lines = [f"{species}: {n}" for species, (n, _, _) in ranked if n > 0]
        best = max((v for v in tally.values() if v[2]), key=lambda v: v[1], default=None)
        total = sum(n for n, _, _ in tally.values())
        body = "\n".join(lines) if lines else "No sightings."
        title = f"{self.station}: {total} sighting{'s' if total != 1 else ''} of {len(lines)} species"
        attach = self.state_dir / best[2] if best is not None and digest.attach_snapshot else None
        return _Job(apprise_send.target_name("digest", digest.url), digest.url, title, body, attach)

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued for up to `timeout` seconds; the rest is dropped (counted)."""
        if self._thread.ident is None:
            return
        deadline = time.monotonic() + timeout
        wait_queue_done(self._queue, deadline)
        self._stop.set()
        self._thread.join(max(deadline - time.monotonic(), 0.1))
        left = self._queue.qsize()
        if left:
            metrics.NOTIFY_DROPPED.labels(reason="shutdown").inc(left)
            log.warning("%d notification(s) not sent before shutdown", left)


def _read_event(line: bytes) -> tuple[float, str, bool, float, str | None] | None:
    """(started_at epoch, species, is a start, score, snapshot) of one log line; None if it is not an event."""
    try:
        e = json.loads(line)
        started = datetime.fromisoformat(e["started_at"].replace("Z", "+00:00")).timestamp()
        return started, str(e["species"]), e["event"] == "start", float(e["score"]), e.get("snapshot")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _within(minute: int, span: tuple[int, int]) -> bool:
    start, end = span
    return start <= minute < end if start <= end else minute >= start or minute < end
