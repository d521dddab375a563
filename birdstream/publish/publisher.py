"""Publisher: fans sighting events out to the snapshot store, the JSONL log and MQTT.

One bounded queue and one thread per sink, so the caller (the engine's thread) never waits on disk
or network, and a dead broker never stalls the log. Snapshots are written first (the event's
``snapshot`` path must exist when the event is read), then the event goes to the log, and only once
its line is written (fsynced by default) to the MQTT outbox: after a power cut the log holds every
event the broker may get, so a restart can end what was open. A log that cannot be written does not
hold MQTT back.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from birdstream.errors import PublishError
from birdstream.messages import SightingEvent, StreamStatus
from birdstream.publish import metrics
from birdstream.publish.jsonl import JsonlLog
from birdstream.publish.mqtt import MqttSink
from birdstream.publish.notify import Notifier, NotifyOptions
from birdstream.publish.options import JsonlOptions, MqttOptions, OutboxOptions, SnapshotOptions
from birdstream.publish.outbox import OutMessage, Outbox
from birdstream.publish.payload import Topics, encode, event_bytes, status_bytes
from birdstream.publish.sinks import SinkThread
from birdstream.publish.snapshots import SnapshotStore
from birdstream.publish.store import StoreOptions, StoreWriter

log = logging.getLogger(__name__)

OUTBOX_FILE = "outbox.sqlite3"
STREAMS_FILE = "mqtt_streams.json"  # the streams whose retained topics this station has set


class Publisher:
    """Fans events out to snapshots -> (sightings.jsonl, MQTT outbox)."""

    def __init__(
        self,
        *,
        station: str,
        state_dir: Path | str,
        mqtt: MqttOptions | None,
        jsonl: JsonlOptions,
        snapshots: SnapshotOptions,
        outbox: OutboxOptions,
        store: StoreOptions | None = None,
        topic_prefix: str | None = None,
        streams: Iterable[str] = (),
        forget_unlisted: bool = False,
        queue_size: int = 10_000,
        notify: NotifyOptions | None = None,
    ) -> None:
        """``streams``: announced at start. ``forget_unlisted``: ``streams`` is the whole configuration,
        so streams a previous run published for and that are no longer in it are cleared at start."""
        self.station = station
        self.state_dir = Path(state_dir)
        self.mqtt_options = mqtt
        self.jsonl_options = jsonl
        self.snapshot_options = snapshots
        self.outbox_options = outbox
        self.store_options = store if store is not None else StoreOptions(enabled=False)
        self._store: StoreWriter | None = None
        prefix = topic_prefix if topic_prefix is not None else (mqtt.topic_prefix if mqtt else "birdstream")
        self.topics = Topics(prefix, station)
        self._streams = list(streams)
        self._forget_unlisted = forget_unlisted
        self._queue_size = queue_size
        self._mqtt: MqttSink | None = None
        self._jsonl: JsonlLog | None = None
        self._snapshots: SnapshotStore | None = None
        self._jsonl_sink: SinkThread[tuple[bytes, list[OutMessage]]] | None = None
        self._snapshot_sink: SinkThread[SightingEvent] | None = None
        self._known_streams: set[str] = set()
        self._recorded: set[str] = set()  # streams of the file not seen by this run
        self._snapshot_failing = False
        self._notifier: Notifier | None = None
        if notify is not None and (notify.targets or notify.digest is not None):
            self._notifier = Notifier(station=station, state_dir=self.state_dir, options=notify)
        self._lock = threading.Lock()
        self._started = False
        self._closed = False

    def start(self) -> None:
        """Open the state folder, outbox, log and snapshot store; connect in the background.

        Raises PublishError naming the folder or file when the state folder cannot be used. An
        unreachable broker is not an error: one line is logged and messages wait in the outbox.
        """
        if self._started:
            return
        self._prepare_state_dir()
        try:
            self._open_sinks()
        except BaseException:
            if self._jsonl is not None:
                self._jsonl.close()
            raise
        if self._snapshots is not None:
            self._snapshots.prune()
        for sink in (self._jsonl_sink, self._snapshot_sink, self._store):
            if sink is not None:
                sink.start()
        if self._notifier is not None:
            self._notifier.start()
        if self._mqtt is not None:
            self._mqtt.start()
            previous = self._read_streams_file()
            gone = previous - set(self._streams) if self._forget_unlisted else set()
            self._recorded = set() if self._forget_unlisted else previous  # kept in the file until cleared
            for stream in self._streams:
                self._note_stream(stream)
            for stream in sorted(gone):
                log.info("stream %s is no longer configured: clearing its retained MQTT topics", stream)
                self._mqtt.remove_stream(stream)
            self._write_streams_file()
        self._started = True

    def _open_sinks(self) -> None:
        """Open the log, the snapshot store and the outbox (PublishError naming what failed)."""
        if self.jsonl_options.enabled:
            self._jsonl = JsonlLog(self.state_dir, self.jsonl_options)
            self._jsonl_sink = SinkThread("jsonl", self._log_then_outbox, self._queue_size)
        if self.snapshot_options.enabled:
            self._snapshots = SnapshotStore(self.state_dir, self.snapshot_options)
            self._snapshot_sink = SinkThread("snapshots", self._write_snapshot, self._queue_size)
        if self.store_options.enabled:
            self._store = self._open_store()
        if self.mqtt_options is not None:
            box = Outbox(self.state_dir / OUTBOX_FILE, self.outbox_options)
            try:
                self._mqtt = MqttSink(
                    station=self.station, state_dir=self.state_dir, options=self.mqtt_options,
                    outbox=box, topics=self.topics, queue_size=self._queue_size,
                )
            except BaseException:
                box.close()
                raise
            if box:
                log.info("outbox %s holds %d undelivered message(s); sending them first", box.path, len(box))

    def _open_store(self) -> StoreWriter | None:
        """The sightings store; one that cannot be opened costs the page, never the sightings."""
        try:
            return StoreWriter(self.state_dir, self.store_options)
        except (OSError, sqlite3.Error, PublishError) as err:
            log.error("sightings store in %s cannot be opened (%s); running without the page's data",
                      self.state_dir, err)
            return None

    @property
    def store(self) -> StoreWriter | None:
        """The sightings store's writer (listeners for the page's live updates), None when off."""
        return self._store

    def publish_review(self, stream: str, sighting_id: str, review: dict) -> None:
        """A review of a sighting, retained on ``P/S/C/review/<id>`` through the outbox."""
        if not self._started or self._closed or self._mqtt is None:
            return
        topic = f"{self.topics.base}/{stream}/review/{sighting_id}"
        self._mqtt.submit([OutMessage(topic, encode(review), True, f"review/{sighting_id}")])

    def _prepare_state_dir(self) -> None:
        probe = self.state_dir / ".write-test"
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise PublishError(f"state_dir {self.state_dir}: not writable ({err.strerror or err})") from None

    # -- the caller's side: never blocks on disk or network --------------------------------------
    def publish(self, event: SightingEvent) -> None:
        """Hand one sighting event to every sink; returns at once."""
        if not self._started or self._closed:
            raise RuntimeError("Publisher.publish() outside start()/close()")
        metrics.EVENTS.labels(stream=event.stream).inc()
        self._note_stream(event.stream)
        if self._snapshot_sink is not None:
            self._snapshot_sink.submit(event)
        else:
            self._fan_out(event, None)

    def publish_status(self, status: StreamStatus) -> None:
        """Retained stream health on ``P/S/C/status`` (latest wins in the outbox)."""
        if not self._started or self._closed or self._mqtt is None:
            return
        self._note_stream(status.stream_id)
        topic, key = self.topics.retained(status.stream_id)["status"]
        self._mqtt.submit([OutMessage(topic, status_bytes(status), True, key)])

    def forget_stream(self, stream: str, timeout: float = 5.0) -> None:
        """A stream was removed from the config: clear its retained MQTT topics and its Home
        Assistant entities, after its last events (waits up to ``timeout`` for the snapshot queue)."""
        if not self._started or self._closed or self._mqtt is None:
            return
        deadline = time.monotonic() + timeout
        # Its last events reach the outbox through the snapshot and then the log thread.
        if not all(sink.wait_idle(deadline) for sink in (self._snapshot_sink, self._jsonl_sink) if sink is not None):
            log.warning("stream %s: its last events are still queued; clearing its retained topics anyway", stream)
        with self._lock:
            self._known_streams.discard(stream)
            self._recorded.discard(stream)
            self._mqtt.remove_stream(stream)
            self._write_streams_file()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event handed over so far is in the log and the outbox (not: delivered)."""
        deadline = time.monotonic() + timeout
        for sink in (self._snapshot_sink, self._jsonl_sink, self._store):
            if sink is not None and not sink.wait_idle(deadline):
                return False
        return self._mqtt.wait_stored(deadline) if self._mqtt is not None else True

    @property
    def backlog(self) -> int:
        """Messages not yet acknowledged by the broker (outbox plus its input queue)."""
        return self._mqtt.backlog if self._mqtt is not None else 0

    @property
    def connected(self) -> bool:
        return self._mqtt is not None and self._mqtt.connected

    @property
    def outbox_notice(self) -> str | None:
        """One line when a corrupt outbox was moved aside during this run (for health), else None."""
        return self._mqtt.outbox.corrupted if self._mqtt is not None else None

    def _note_stream(self, stream: str) -> None:
        if stream in self._known_streams or self._mqtt is None:
            return
        with self._lock:
            if stream not in self._known_streams:
                self._known_streams.add(stream)
                self._mqtt.add_stream(stream)
                if self._started:
                    self._write_streams_file()

    def _streams_file(self) -> Path:
        return self.state_dir / STREAMS_FILE

    def _read_streams_file(self) -> set[str]:
        """The streams a previous run set retained topics for, under this station and prefix."""
        path = self._streams_file()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("topics") != self.topics.base:
                return set()  # another station name or prefix: those topics are not ours to clear
            return {s for s in data["streams"] if isinstance(s, str)}
        except FileNotFoundError:
            return set()
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            log.warning("%s: unreadable (%s); streams removed while stopped keep their retained topics", path, err)
            return set()

    def _write_streams_file(self) -> None:
        path = self._streams_file()
        tmp = path.with_name(path.name + ".tmp")
        try:
            streams = sorted(self._known_streams | self._recorded)
            tmp.write_text(json.dumps({"topics": self.topics.base, "streams": streams}), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as err:
            log.warning("%s: cannot write (%s)", path, err.strerror or err)

    # -- sink threads ------------------------------------------------------------------------------
    def _write_snapshot(self, event: SightingEvent) -> None:
        assert self._snapshots is not None
        jpeg: bytes | None = None
        try:
            event, jpeg = self._snapshots.save(event)
            if self._snapshot_failing and jpeg is not None:
                log.info("snapshots are written again")
                self._snapshot_failing = False
        except (OSError, ValueError) as err:
            metrics.SINK_ERRORS.labels(sink="snapshots").inc()
            # One line per failure episode: a full disk must not add a line to every event.
            (log.debug if self._snapshot_failing else log.error)(
                "snapshot of sighting %s not written (%s); events go on without one", event.id, err)
            self._snapshot_failing = True
        self._fan_out(event, jpeg)

    def _fan_out(self, event: SightingEvent, jpeg: bytes | None) -> None:
        data = event_bytes(event)
        msgs: list[OutMessage] = []
        if self._mqtt is not None:
            retained = self.topics.retained(event.stream)
            topic, key = retained["last"]
            msgs = [OutMessage(self.topics.sighting(event.stream), data, False), OutMessage(topic, data, True, key)]
            if jpeg is not None and self.mqtt_options is not None and self.mqtt_options.publish_snapshots:
                topic, key = retained["snapshot"]
                msgs.append(OutMessage(topic, jpeg, True, key))
        # The log thread hands the messages on once the line is written (log before outbox).
        if (self._jsonl_sink is None or not self._jsonl_sink.submit((data, msgs))) and self._mqtt is not None:
            self._mqtt.submit(msgs)
        if self._store is not None:
            self._store.submit(event.to_payload())
        if self._notifier is not None:
            self._notifier.submit(event)  # only judges and queues: its own worker sends

    def _log_then_outbox(self, item: tuple[bytes, list[OutMessage]]) -> None:
        data, msgs = item
        assert self._jsonl is not None
        try:
            self._jsonl.write(data)
        finally:  # a failed write (counted and logged by the sink) must not hold MQTT back
            if msgs and self._mqtt is not None:
                self._mqtt.submit(msgs)

    def close(self, grace_s: float = 5.0) -> int:
        """Flush the log, drain the outbox up to grace_s, publish ``offline``, disconnect.

        Returns the number of messages left in the outbox (sent at the next start).
        """
        if not self._started or self._closed:
            return 0
        self._closed = True
        if self._snapshot_sink is not None:
            self._snapshot_sink.close(max(grace_s, 1.0))
        if self._jsonl_sink is not None and self._jsonl_sink.close(max(grace_s, 1.0)) and self._jsonl:
            self._jsonl.close()
        if self._store is not None:
            self._store.close(max(grace_s, 1.0))
        left = self._mqtt.close(grace_s) if self._mqtt is not None else 0
        if self._notifier is not None:
            self._notifier.close(min(grace_s, 5.0))
        return left

    def __enter__(self) -> Publisher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
