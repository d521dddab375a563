"""The live path: stream readers -> engine (one inference thread) -> tracker thread -> publisher.

The daemon owns one LivePipeline. Trackers are pure code without locks: every call into them
(predictions handed over by the engine, end-of-stream from reader threads, the once-a-second
tick, shutdown) runs on the one tracker thread, queued in order (station/tracking.py).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from birdstream.config import Config
from birdstream.config.models import StreamConfig
from birdstream.errors import SourceError
from birdstream.engine.mailbox import INVALID, OOM, Mailbox
from birdstream.ingest.reader import StreamReader
from birdstream.ingest.seen import SeenFiles
from birdstream.ingest.spec import SourceSpec
from birdstream.messages import FINAL_STATES, SightingEvent, StreamStatus
from birdstream.publish.species_seen import SpeciesSeen
from birdstream.station import wiring
from birdstream.station.tracking import TrackerThread
from birdstream.track.router import MediaTracker

log = logging.getLogger(__name__)

TICK_S = 1.0
STATUS_EVERY_S = 60.0  # retained stream status refreshed this often, so its counters stay current


class EventSink(Protocol):
    def publish(self, event: SightingEvent) -> None: ...

    def publish_status(self, status: StreamStatus) -> None: ...


class LivePipeline:
    """Every configured stream through one classifier; streams can be added and removed while running."""

    def __init__(self, config: Config, classifier, sink: EventSink, *,
                 on_status: Callable[[StreamStatus], None] | None = None) -> None:
        self.config = config
        self.classifier = classifier
        self.sink = sink
        self._on_status = on_status
        self.tracking = TrackerThread(self._emit)
        self.engine = wiring.engine(config, classifier, self.tracking.submit)
        self._lock = threading.Lock()  # guards _pending (folder files waiting to be recorded)
        self.seen = SpeciesSeen(config.state_dir)  # first_at_station; written on the tracker thread, rarely
        self._readers: dict[str, StreamReader] = {}
        # Folder files whose frames are all in their mailbox: (mailbox, put count then, path, record).
        self._pending: dict[str, list[tuple[Mailbox, int, Path, SeenFiles]]] = {}
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick_loop, name="track-tick", daemon=True)

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the engine, then every enabled stream (a bad species name raises ConfigError first)."""
        streams = self.config.enabled_streams
        # Every stream's plan first: a bad species name opens nothing.
        plans = [wiring.stream_plan(self.config, stream, self.classifier.class_names) for stream in streams]
        self.tracking.start()
        self.engine.start()
        self._ticker.start()
        for plan in plans:
            self._open(plan)

    def stop(self) -> None:
        """Stop ingest, let the engine finish its batch, let the trackers take it, end every open sighting.

        When this returns every event has been handed to the sink (which the daemon flushes next).
        """
        readers = list(self._readers.values())
        for reader in readers:
            reader.stop()
        for reader in readers:
            if not reader.join(5.0):
                log.warning("stream %s: reader did not stop within 5 s", reader.spec.id)
        self.engine.stop(drain=False)
        if not self.engine.join(30.0):
            log.warning("engine: the running batch did not finish within 30 s")
        self._stop.set()
        if self._ticker.ident is not None:
            self._ticker.join(5.0)
        if not self.tracking.stop(30.0):
            log.warning("track: the tracker thread did not finish within 30 s")
        self._record_done()

    # ---- streams ----------------------------------------------------------------------------

    def add_stream(self, stream: StreamConfig) -> None:
        """Open one stream: its tracker, its mailbox on the engine, its reader thread."""
        self._open(wiring.stream_plan(self.config, stream, self.classifier.class_names))

    def _open(self, plan: wiring.StreamPlan) -> None:
        stream_id = plan.spec.id
        if stream_id in self._readers:
            raise ValueError(f"stream {stream_id} is already running")
        tracker = wiring.tracker(self.config, self.classifier, plan.track, lambda frame: stream_id,
                                  seen=self.seen)
        self.tracking.add(stream_id, tracker)
        mailbox = self.engine.mailbox(stream_id, blocking=plan.blocking)
        seen, on_file_done = self._folder_record(stream_id, plan.spec, mailbox)
        reader = StreamReader(plan.spec, input_size=self.classifier.input_size, emit=mailbox.put,
                              on_status=self._status_callback(stream_id), want_full=plan.want_full,
                              seen=seen, on_file_done=on_file_done)
        self._readers[stream_id] = reader
        reader.start()
        log.info("stream %s: started", stream_id)

    def remove_stream(self, stream_id: str) -> None:
        """Stop one stream and end its open sighting; the others are not disturbed."""
        reader = self._readers.pop(stream_id, None)
        if reader is not None:
            reader.stop()
        self.engine.remove_stream(stream_id)  # closes the mailbox: a reader blocked on a full one returns
        if reader is not None and not reader.join(5.0):
            log.warning("stream %s: reader did not stop within 5 s", stream_id)
        self.tracking.close_stream(stream_id, forget=True)  # after its predictions already handed over
        self._record_done()
        with self._lock:
            self._pending.pop(stream_id, None)
        log.info("stream %s: removed", stream_id)

    def apply(self, config: Config, added: Iterable[str], removed: Iterable[str], changed: Iterable[str]) -> None:
        """Apply a reloaded config: streams added, removed or changed; the rest keep running."""
        for stream_id in [*removed, *changed]:
            self.remove_stream(stream_id)
        self.config = config
        for stream_id in [*changed, *added]:
            stream = config.stream(stream_id)
            if stream.enabled:
                self.add_stream(stream)

    def statuses(self) -> list[StreamStatus]:
        return [self._with_engine_drops(reader.status) for reader in list(self._readers.values())]

    def _with_engine_drops(self, status: StreamStatus) -> StreamStatus:
        """Ingest counts corrupt packets; frames the engine dropped (overflow, stale) count too."""
        box = self.engine.mailbox(status.stream_id) if status.stream_id in self._readers else None
        return dataclasses.replace(status, dropped=status.dropped + box.dropped) if box is not None else status

    def stream_ids(self) -> list[str]:
        return list(self._readers)

    # ---- callbacks --------------------------------------------------------------------------

    @property
    def error(self) -> BaseException | None:
        """What stopped the inference or the tracker thread, if one has failed."""
        return self.engine.error or self.tracking.error

    def _status_callback(self, stream_id: str) -> Callable[[StreamStatus], None]:
        def on_status(status: StreamStatus) -> None:
            if status.state in FINAL_STATES:
                # A file that ended (or a source that gave up) cannot support its sighting any more;
                # its last frames may still be queued, so let the engine classify them first.
                self.engine.drain(timeout=10.0, stream_id=stream_id)
                self.tracking.close_stream(stream_id)
            status = self._with_engine_drops(status)
            self.sink.publish_status(status)
            if self._on_status is not None:
                self._on_status(status)

        return on_status

    def _folder_record(self, stream_id: str, spec: SourceSpec, mailbox: Mailbox
                       ) -> tuple[SeenFiles | None, Callable[[Path], None] | None]:
        """A folder stream's record of classified files in state_dir, and the reader's callback."""
        try:
            if spec.kind != "folder":
                return None, None
        except SourceError:
            return None, None
        seen = SeenFiles(Path(self.config.state_dir) / "folders" / f"{stream_id}.jsonl")

        def on_file_done(path: Path) -> None:
            with self._lock:
                self._pending.setdefault(stream_id, []).append((mailbox, mailbox.put_count, path, seen))

        return seen, on_file_done

    def _record_done(self) -> None:
        """Record the folder files whose every frame went through the tracker (its events are with
        the publisher): only then may a restart skip them.

        The engine counts a batch classified only after handing its predictions to the tracker
        thread, so once the tracker thread has worked through its queue (the empty call below), every
        frame counted here has been tracked and its events emitted."""
        ready: dict[SeenFiles, list[Path]] = {}
        with self._lock:
            for items in self._pending.values():
                while items:
                    box, target, path, seen = items[0]
                    if box.classified + box.drops[INVALID] + box.drops[OOM] < target:
                        break
                    items.pop(0)
                    ready.setdefault(seen, []).append(path)
        if not ready or self.tracking.error is not None:
            return  # a failed tracker thread lost predictions: those files are classified again next start
        if self.tracking.is_alive() and not self.tracking.call(lambda: []):
            return  # not tracked in time: classified again next start rather than lost
        for seen, paths in ready.items():
            seen.add(paths)

    def _tick_loop(self) -> None:
        last_status = time.monotonic()
        while not self._stop.wait(TICK_S):
            self.tracking.tick()
            self._record_done()
            if time.monotonic() - last_status >= STATUS_EVERY_S:
                last_status = time.monotonic()
                for status in self.statuses():
                    self.sink.publish_status(status)

    def _emit(self, events: list[SightingEvent]) -> None:
        """Hand events to the sink; called on the tracker thread only, so one sighting's events leave
        in order (the sink only queues: this never waits on I/O)."""
        for event in events:
            self.sink.publish(event)
