"""`birdstream classify`: video files, stills and camera-trap folders -> the daemon's sighting events.

The same ingest (sampling by presentation time, the model's resize), the same classifier and the
same trackers as the live daemon; only the driver differs: frames are read as fast as the
classifier takes them, nothing is dropped, and event times are on the file's own timeline.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import numpy as np

from birdstream.config import Config, ConfigError
from birdstream.engine.engine import frame_images
from birdstream.errors import SourceError
from birdstream.ingest.files import iter_frames
from birdstream.messages import Frame, Prediction, SightingEvent, rfc3339
from birdstream.publish.payload import event_bytes
from birdstream.redact import printable
from birdstream.station import archive, collect, wiring, workers
from birdstream.station.progress import Progress

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
        self.prefetch: Any = None  # a workers.Prefetch when other processes decode (--workers)
        self.remote: Any = None  # a ray_job.RayJob when a Ray cluster decodes and classifies (--ray)
        self.on_frames: Callable[[list[Frame]], None] = lambda batch: None  # progress
        self.on_frame: Any = None  # called with each classified frame (the Camtrap DP export's media list)

    def spec(self, path: Path) -> Any:
        """How one input is read (its SourceSpec)."""
        return wiring.classify_spec(path, sample_fps=self.sample_fps, regions=wiring.region_options(self.config),
                                    **self.decode)

    def events(self, path: Path) -> Iterator[SightingEvent]:
        """Every sighting event of one input, in order; unreadable files of a folder go to self.errors."""
        base = path if path.is_dir() else None

        def name(source: str | None) -> str:
            if source is None:
                return path.name
            return Path(source).relative_to(base).as_posix() if base is not None else Path(source).name

        tracker = wiring.tracker(self.config, self.classifier, self.options, lambda frame: name(frame.source),
                                 metrics_label=METRICS_LABEL)
        try:
            for batch in self._predictions(path):
                self.on_frames([p.frame for p in batch])
                for pred in batch:
                    if self.on_frame is not None:
                        self.on_frame(pred.frame)
                    yield from tracker.update(pred)
                if self.stop.is_set():
                    break
            if self.stop.is_set():  # stopped, not at the end of the input: end as on Ctrl-C
                raise KeyboardInterrupt
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: a sighting that started still ends, as in the daemon
            yield from tracker.close()
            raise
        yield from tracker.close()

    def _predictions(self, path: Path) -> Iterator[list[Prediction]]:
        """The input's frames with their class probabilities, a batch at a time."""
        if self.remote is not None:  # decoded and classified on a Ray cluster
            yield from self.remote.predictions(path, self.errors.append, self.stop)
            return
        if self.prefetch is not None:
            frames = self.prefetch.frames(path, self.errors.append, self.stop)
        else:
            frames = iter_frames(self.spec(path), self.classifier.input_size, on_error=self.errors.append,
                                 stop=self.stop)
        for batch in _batched(frames, self.config.model.max_batch):
            # Each frame's whole picture, then its region crops: one forward for all of them.
            probs = iter(self.classifier(np.stack([img for frame in batch for img in frame_images(frame)])))
            yield [Prediction(frame, next(probs), tuple(next(probs) for _ in frame.regions)) for frame in batch]


def _batched(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    """Frames in batches of about `size` images (a frame counts its region crops too)."""
    batch: list[Frame] = []
    images = 0
    for frame in frames:
        batch.append(frame)
        images += 1 + len(frame.regions)
        if images >= size:
            yield batch
            batch, images = [], 0
    if batch:
        yield batch


class _Summary:
    """One CSV row per sighting, written when the sighting ends."""

    def __init__(self, out: IO[str], *, header: bool = True) -> None:
        self.file = out
        self._writer = csv.writer(out)
        if header:  # not when a resumed run appends to the rows of the finished inputs
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
    resume = bool(getattr(args, "resume", False))
    if resume and args.out is None:
        raise ConfigError("--resume: needs --out FILE (the manifest of finished inputs lives next to it)")
    manifest = None
    if args.out is not None:  # every run with --out can be resumed, even one started without --resume
        path, header = archive.manifest_path(args.out), archive.fingerprint(args, config)
        manifest = archive.Manifest.resume(path, header) if resume else archive.Manifest.start(path, header)
    classifier = wiring.classifier(config)
    classifier.prepare()  # compile / capture before decoding starts (decoder threads may use the GPU)
    run = OfflineRun(classifier, config, sample_fps=args.sample_fps, stop=getattr(args, "stop_event", None),
                     hwaccel=getattr(args, "hwaccel", None), hwaccel_device=getattr(args, "hwaccel_device", None),
                     keyframes_only=getattr(args, "keyframes_only", False))
    camtrap = collect.collector(args, config)
    if resume and camtrap is not None:
        raise ConfigError("--resume: not yet with --camtrap-dp or --megadetector-json (their files are written "
                          "from every input at the end of one run); run again without --resume")
    last = manifest.last if manifest is not None else archive.Done("", 0, 0)
    with ExitStack() as stack:
        if manifest is not None:
            stack.callback(manifest.close)
        out = stack.enter_context(archive.open_output(args.out, last.out_bytes)) if args.out else sys.stdout
        summary = None
        if args.summary:
            file = stack.enter_context(archive.open_output(args.summary, last.summary_bytes, newline=""))
            summary = _Summary(file, header=last.summary_bytes == 0)
        pending = [p for p in args.inputs if not (manifest and str(p.absolute()) in manifest.done)]
        todo = [p for p in pending if p.exists()]
        if getattr(args, "ray", None) is not None:
            from birdstream.station import ray_job  # Ray is an extra: imported only when asked for

            run.remote = stack.enter_context(ray_job.RayJob(args.ray, config, run, todo))
        else:
            run.prefetch = workers.start(stack, run, todo, getattr(args, "workers", 0))
        progress = None
        if not args.quiet:
            source = run.remote or run.prefetch  # what lists the files up front, if anything does
            progress = Progress(sys.stderr, len(pending), files=source.files if source is not None else None)
            run.on_frames = progress.frames
            stack.callback(progress.close)
        return _classify_inputs(args, run, out, summary, manifest, progress, camtrap)


def _classify_inputs(args: Any, run: OfflineRun, out: IO[str], summary: _Summary | None,
                     manifest: archive.Manifest | None, progress: Progress | None,
                     camtrap: collect.Collector | None) -> int:
    failed = 0
    for path in args.inputs:
        key = str(Path(path).absolute())
        if manifest is not None and key in manifest.done:  # finished before the interruption
            for message in manifest.done[key].errors:
                _report(message)
                failed += 1
            continue
        count, errors = _classify_one(path, run, out, summary, camtrap,
                                      getattr(args, "hold_signals", contextlib.nullcontext))
        if progress is not None and errors:
            progress.clear()
        for message in errors:
            _report(message)
        failed += len(errors)
        log.debug("%s: %d event(s)", path, count)
        if progress is not None:
            progress.input_done()
        if manifest is not None:
            out_bytes, summary_bytes = archive.durable(out, summary.file if summary else None)
            manifest.record(archive.Done(key, out_bytes, summary_bytes, errors))
    if camtrap is not None:
        if progress is not None:
            progress.clear()
        _write_exports(args, camtrap, run.classifier, None if args.quiet else sys.stderr)
    return 1 if failed else 0


def _classify_one(path: Path, run: OfflineRun, out: IO[str], summary: _Summary | None,
                  camtrap: collect.Collector | None, hold: Callable[[], Any]) -> tuple[int, list[str]]:
    """Write one input's events; returns their count and its error lines (an unreadable input or folder file)."""
    if not path.exists():
        return 0, [f"{path}: no such file or folder"]
    errors: list[SourceError] = []
    written = _Written(path, out, summary, camtrap, hold)
    run.on_frame = functools.partial(camtrap.add_frame, path) if camtrap is not None else None
    events = run.events(path)
    try:
        for event in events:
            written.add(event)
    except SourceError as err:
        errors.append(err)
    except KeyboardInterrupt:
        written.close_from(events)
        raise
    errors += run.errors
    run.errors.clear()
    if camtrap is not None:
        for err in errors:
            camtrap.add_failure(path, err)
    return written.count, [str(err) for err in errors]


class _Written:
    """The outputs of one input's events. Each event is written whole and noted under `hold()` (a
    SIGTERM or Ctrl-C waits for the end of it), and a sighting whose start was never written (the
    signal came between the tracker and here) writes nothing more: every start written gets its end."""

    def __init__(self, path: Path, out: IO[str], summary: _Summary | None, camtrap: collect.Collector | None,
                 hold: Callable[[], Any]) -> None:
        self.path, self.out, self.summary, self.camtrap, self.hold = path, out, summary, camtrap, hold
        self.started: set[str] = set()
        self.count = 0

    def add(self, event: SightingEvent) -> None:
        with self.hold():
            if event.event != "start" and event.id not in self.started:
                return
            self.out.write(json_line(event))
            self.out.flush()
            self.started.add(event.id)
            self.count += 1
            if self.summary is not None:
                self.summary.add(str(self.path), event)
            if self.camtrap is not None:
                self.camtrap.add_event(self.path, event)

    def close_from(self, events: Iterator[SightingEvent]) -> None:
        """After a signal raised in this loop rather than inside `events`: let it end its open sightings."""
        if getattr(events, "gi_frame", None) is None:
            return  # raised inside the generator, which has already handed over its ends
        try:
            event = events.throw(KeyboardInterrupt())  # type: ignore[attr-defined]
            while True:
                self.add(event)
                event = next(events)
        except (KeyboardInterrupt, StopIteration):
            return


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
