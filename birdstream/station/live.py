"""The live path: stream readers -> engine (one inference thread) -> per-stream trackers -> publisher.

The daemon owns one LivePipeline. Trackers are pure code without locks: every call into them
(predictions from the engine thread, end-of-stream from reader threads, the once-a-second tick)
goes through one lock here.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from birdstream.config import Config
from birdstream.config.models import StreamConfig
from birdstream.errors import SourceError
from birdstream.ingest.reader import StreamReader
from birdstream.ingest.spec import SourceSpec
from birdstream.messages import Prediction, SightingEvent, StreamStatus
from birdstream.station import wiring
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
        from birdstream.engine.engine import Engine

        self.config = config
        self.classifier = classifier
        self.sink = sink
        self._on_status = on_status
        self.engine = Engine(
            classifier,
            max_batch=config.model.max_batch,
            max_wait_ms=config.model.max_wait_ms,
            max_age_s=config.model.max_age_ms / 1000.0,
            on_predictions=self._on_predictions,
        )
        self._lock = threading.Lock()
        self._trackers: dict[str, MediaTracker] = {}
        self._readers: dict[str, StreamReader] = {}
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick_loop, name="track-tick", daemon=True)

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the engine, then every enabled stream (a bad species name raises ConfigError first)."""
        streams = self.config.enabled_streams
        for stream in streams:  # validate every stream's tracker options before opening anything
            wiring.track_options(self.config.sightings, self.classifier.class_names, stream.sample_fps)
        self.engine.start()
        self._ticker.start()
        for stream in streams:
            self.add_stream(stream)

    def stop(self) -> None:
        """Stop ingest, let the engine finish its batch, end every open sighting."""
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
        with self._lock:
            self._emit([e for tracker in self._trackers.values() for e in tracker.close()])

    # ---- streams ----------------------------------------------------------------------------

    def add_stream(self, stream: StreamConfig) -> None:
        """Open one stream: its tracker, its mailbox on the engine, its reader thread."""
        if stream.id in self._readers:
            raise ValueError(f"stream {stream.id} is already running")
        options = wiring.track_options(self.config.sightings, self.classifier.class_names, stream.sample_fps)
        stream_id = stream.id
        tracker = MediaTracker(station=self.config.station, class_names=self.classifier.class_names,
                               model_id=self.classifier.model_id, options=options,
                               stream_of=lambda frame: stream_id)
        with self._lock:
            self._trackers[stream.id] = tracker
        spec = wiring.source_spec(stream, regions=wiring.region_options(self.config, stream))
        mailbox = self.engine.mailbox(stream.id, blocking=_offline(spec))
        reader = StreamReader(spec, input_size=self.classifier.input_size,
                              emit=mailbox.put, on_status=self._status_callback(stream.id),
                              want_full=self.config.snapshots.enabled)
        self._readers[stream.id] = reader
        reader.start()
        log.info("stream %s: started", stream.id)

    def remove_stream(self, stream_id: str) -> None:
        """Stop one stream and end its open sighting; the others are not disturbed."""
        reader = self._readers.pop(stream_id, None)
        if reader is not None:
            reader.stop()
        self.engine.remove_stream(stream_id)  # closes the mailbox: a reader blocked on a full one returns
        if reader is not None and not reader.join(5.0):
            log.warning("stream %s: reader did not stop within 5 s", stream_id)
        with self._lock:
            tracker = self._trackers.pop(stream_id, None)
            self._emit(tracker.close() if tracker is not None else [])
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

    def _on_predictions(self, predictions: list[Prediction]) -> None:
        events: list[SightingEvent] = []
        with self._lock:
            for prediction in predictions:
                tracker = self._trackers.get(prediction.frame.stream_id)
                if tracker is not None:
                    events.extend(tracker.update(prediction))
            self._emit(events)

    def _status_callback(self, stream_id: str) -> Callable[[StreamStatus], None]:
        def on_status(status: StreamStatus) -> None:
            if status.state in ("stopped", "failed"):
                # A file that ended (or a source that gave up) cannot support its sighting any more;
                # its last frames may still be queued, so let the engine classify them first.
                self.engine.drain(timeout=10.0, stream_id=stream_id)
                with self._lock:
                    tracker = self._trackers.get(stream_id)
                    self._emit(tracker.close() if tracker is not None else [])
            status = self._with_engine_drops(status)
            self.sink.publish_status(status)
            if self._on_status is not None:
                self._on_status(status)

        return on_status

    def _tick_loop(self) -> None:
        last_status = time.monotonic()
        while not self._stop.wait(TICK_S):
            with self._lock:
                self._emit([e for tracker in self._trackers.values() for e in tracker.tick()])
            if time.monotonic() - last_status >= STATUS_EVERY_S:
                last_status = time.monotonic()
                for status in self.statuses():
                    self.sink.publish_status(status)

    def _emit(self, events: list[SightingEvent]) -> None:
        """Hand events to the sink; called under the tracker lock, so one sighting's events leave in
        order whichever thread made them (the sink only queues: this never waits on I/O)."""
        for event in events:
            self.sink.publish(event)


def _offline(spec: SourceSpec) -> bool:
    """A file or folder read as fast as it goes: every sampled frame is classified, none dropped.

    Its reader waits for the classifier (a blocking mailbox) instead of losing frames to a
    latest-wins one, so what the daemon finds in a file does not depend on the load.
    """
    try:
        return not spec.live and not spec.realtime
    except SourceError:  # an unknown scheme: the reader reports it as the stream's error
        return False
