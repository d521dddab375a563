"""`birdstream classify`: video files, stills and camera-trap folders -> the daemon's sighting events.

The same ingest (sampling by presentation time, the model's resize), the same classifier and the
same trackers as the live daemon; only the driver differs: frames are read as fast as the
classifier takes them, nothing is dropped, and event times are on the file's own timeline.
"""

from __future__ import annotations

import csv
import functools
import logging
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import numpy as np

from birdstream.config import Config
from birdstream.errors import SourceError
from birdstream.ingest.files import iter_frames
from birdstream.messages import Frame, Prediction, SightingEvent, rfc3339
from birdstream.publish.payload import event_bytes
from birdstream.redact import printable
from birdstream.station import collect, wiring

log = logging.getLogger(__name__)

METRICS_LABEL = "classify"  # one label for every file: a card of 100k files must not make 100k label sets

FORMULA_STARTS = frozenset("=+-@\t\r")  # what spreadsheets run as a formula (CSV injection)
SUMMARY_FIELDS = ("file", "stream", "species", "start", "end", "media_start_s", "media_end_s", "best_score", "frames", "id")


class OfflineRun:
    """Classifies one input (file or folder) at a time with the daemon's classifier and trackers."""

    def __init__(self, classifier: Any, config: Config, *, sample_fps: float,
                 stop: threading.Event | None = None, hwaccel: str | None = None,
                 hwaccel_device: str | None = None, keyframes_only: bool = False) -> None:
        """`stop`, once set, ends the run as Ctrl-C does (set by the CLI's signal handler).

        `hwaccel`/`hwaccel_device`/`keyframes_only` are the stream keys of the same names: hardware
        decoding (falling back to software with one line per run) and key-frame-only decoding.
        """
        self.stop = stop or threading.Event()
        self.decode = {"hwaccel": hwaccel, "hwaccel_device": hwaccel_device, "keyframes_only": keyframes_only}
        self.classifier = classifier
        self.config = config
        self.sample_fps = sample_fps
        self.options = wiring.track_options(config.sightings, classifier.class_names, sample_fps,
                                            timezone=config.timezone)
        self.errors: list[SourceError] = []
        self.on_frame: Any = None  # called with each classified frame (the Camtrap DP export's media list)

    def events(self, path: Path) -> Iterator[SightingEvent]:
        """Every sighting event of one input, in order; unreadable files of a folder go to self.errors."""
        base = path if path.is_dir() else None

        def name(source: str | None) -> str:
            if source is None:
                return path.name
            return Path(source).relative_to(base).as_posix() if base is not None else Path(source).name

        spec = wiring.classify_spec(path, sample_fps=self.sample_fps, **self.decode)
        frames = iter_frames(spec, self.classifier.input_size, on_error=self.errors.append, stop=self.stop)
        tracker = wiring.tracker(self.config, self.classifier, self.options, lambda frame: name(frame.source),
                                 metrics_label=METRICS_LABEL)
        try:
            for batch in _batched(frames, self.config.model.max_batch):
                probs = self.classifier(np.stack([frame.image for frame in batch]))
                for frame, p in zip(batch, probs):
                    if self.on_frame is not None:
                        self.on_frame(frame)
                    yield from tracker.update(Prediction(frame, p))
                if self.stop.is_set():
                    break
            if self.stop.is_set():  # stopped, not at the end of the input: end as on Ctrl-C
                raise KeyboardInterrupt
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: a sighting that started still ends, as in the daemon
            yield from tracker.close()
            raise
        yield from tracker.close()


def _batched(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Summary:
    """One CSV row per sighting, written when the sighting ends."""

    def __init__(self, out: IO[str]) -> None:
        self._writer = csv.writer(out)
        self._writer.writerow(SUMMARY_FIELDS)
        self._best: dict[str, float] = {}

    def add(self, file: str, event: SightingEvent) -> None:
        self._best[event.id] = max(self._best.get(event.id, 0.0), float(event.score))
        if event.event != "end":
            return
        best = self._best.pop(event.id)
        self._writer.writerow([_cell(str(v)) for v in (
            file, event.stream, event.species, rfc3339(event.started_at),
            rfc3339(event.ended_at if event.ended_at is not None else event.updated_at),
            _num(event.media_start_s), _num(event.media_end_s), f"{best:.4f}", event.frames, event.id,
        )])


def _cell(text: str) -> str:
    """A CSV cell a spreadsheet shows as text: a file named '=HYPERLINK(...).jpg' is not a formula."""
    return "'" + text if text[:1] in FORMULA_STARTS else text


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def classify_main(args: Any, config: Config) -> int:
    """The `classify` command: 0 all inputs read, 1 some input unreadable (each named on stderr)."""
    classifier = wiring.classifier(config)
    classifier.prepare()  # compile / capture before decoding starts (decoder threads may use the GPU)
    run = OfflineRun(classifier, config, sample_fps=args.sample_fps, stop=getattr(args, "stop_event", None),
                     hwaccel=getattr(args, "hwaccel", None), hwaccel_device=getattr(args, "hwaccel_device", None),
                     keyframes_only=getattr(args, "keyframes_only", False))
    progress = None if args.quiet else sys.stderr
    camtrap = collect.collector(args, config)
    failed = 0
    with ExitStack() as stack:
        out = stack.enter_context(open(args.out, "w", encoding="utf-8")) if args.out else sys.stdout
        summary = None
        if args.summary:
            summary = _Summary(stack.enter_context(open(args.summary, "w", encoding="utf-8", newline="")))
        for n, path in enumerate(args.inputs, 1):
            if progress:
                progress.write(f"[{n}/{len(args.inputs)}] {printable(str(path))}\n")
            if not path.exists():
                _report(f"{path}: no such file or folder")
                failed += 1
                continue
            count = 0
            if camtrap is not None:
                run.on_frame = functools.partial(camtrap.add_frame, path)
            try:
                for event in run.events(path):
                    out.write(json_line(event))
                    out.flush()
                    count += 1
                    if summary is not None:
                        summary.add(str(path), event)
                    if camtrap is not None:
                        camtrap.add_event(path, event)
            except SourceError as err:
                _report(str(err))
                failed += 1
                if camtrap is not None:
                    camtrap.add_failure(path, err)
            for err in run.errors:
                _report(str(err))
                failed += 1
                if camtrap is not None:
                    camtrap.add_failure(path, err)
            run.errors.clear()
            if progress:
                progress.write(f"[{n}/{len(args.inputs)}] {printable(str(path))}: {count} event(s)\n")
        if camtrap is not None:
            _write_exports(args, camtrap, classifier, progress)
    return 1 if failed else 0


def _write_exports(args: Any, collector: collect.Collector, classifier: Any, progress: IO[str] | None) -> None:
    if args.megadetector_json:
        n = collector.write_megadetector(args.megadetector_json, list(classifier.class_names), classifier.model_id)
        if progress:
            progress.write(f"MegaDetector JSON in {printable(str(args.megadetector_json))}: {n} file(s)\n")
    if args.camtrap_dp:
        counts = collector.write_camtrap(args.camtrap_dp)
        if progress:
            progress.write(f"Camtrap DP package in {printable(str(args.camtrap_dp))}: "
                           + ", ".join(f"{n} {table}" for table, n in counts.items()) + "\n")


def json_line(event: SightingEvent) -> str:
    """One line of classify's output: the bytes the daemon logs and publishes for the same event."""
    return event_bytes(event).decode("utf-8") + "\n"


def _report(message: str) -> None:
    sys.stderr.write(f"birdstream: error: {printable(message)}\n")
