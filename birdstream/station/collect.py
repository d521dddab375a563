"""What `classify --camtrap-dp` and `--megadetector-json` need, gathered while the events stream past."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from birdstream.config import Config
from birdstream.errors import first_line
from birdstream.export import megadetector
from birdstream.export.camtrap_dp import MediaFile, Sighting, write_package
from birdstream.export.taxonomy import load_taxonomy
from birdstream.messages import Frame, SightingEvent
from birdstream.station.exports import mediatype, place

log = logging.getLogger(__name__)

Pair = tuple[Sighting, SightingEvent]

SLACK_S = 0.5  # a still this close to a sighting's first or last frame is part of it (burst times are whole seconds)


def camera_of(input_path: Path, stream: str) -> str:
    """A camera is a folder: the file's folder inside the card, else the card (or the file's folder) itself."""
    parent = Path(stream).parent.as_posix()
    if parent not in ("", "."):
        return parent
    return (input_path if input_path.is_dir() else input_path.absolute().parent).name or "camera"


@dataclass
class _Medium:
    camera: str
    start: float  # epoch seconds of the file's first frame (a still: its time)
    stream: str  # its name in events: relative to the folder classified
    media_times: list[float] = field(default_factory=list)  # videos: the media times classified


class Collector:
    """Every classified file and the last event of every sighting, per input."""

    def __init__(self, config: Config, override: dict[str, Any]) -> None:
        self.config = config
        self.override = override
        self.started = time.time()
        self.media: dict[str, _Medium] = {}  # file path -> what was read of it
        self.events: dict[str, tuple[Path, SightingEvent]] = {}
        self.failures: dict[str, str] = {}  # file name as in events -> why it was not read

    def add_frame(self, input_path: Path, frame: Frame) -> None:
        if frame.source is None:
            return
        medium = self.media.get(frame.source)
        if medium is None:
            base = input_path if input_path.is_dir() else input_path.parent
            stream = Path(frame.source).relative_to(base).as_posix()
            medium = _Medium(camera_of(input_path, stream), frame.captured_at - (frame.media_time or 0.0), stream)
            self.media[frame.source] = medium
        if frame.media_time is not None:
            medium.media_times.append(frame.media_time)

    def add_failure(self, input_path: Path, err: Exception) -> None:
        """A file that could not be read: listed with its reason in the MegaDetector JSON."""
        label = str(getattr(err, "label", input_path))
        base = input_path if input_path.is_dir() else input_path.parent
        try:
            name = Path(label).relative_to(base).as_posix()
        except ValueError:
            name = Path(label).name
        if label not in self.media:
            self.failures[name] = first_line(err)

    def add_event(self, input_path: Path, event: SightingEvent) -> None:
        # Without its best frame: a card's thousands of sightings must not hold thousands of pictures.
        self.events[event.id] = (input_path, dataclasses.replace(event, best_image=None))

    def _sightings(self) -> list[Pair]:
        out = []
        for input_path, e in self.events.values():
            end = e.ended_at if e.ended_at is not None else e.updated_at
            out.append((Sighting(id=e.id, deployment=camera_of(input_path, e.stream), species=e.species,
                                 score=float(e.score), start=e.started_at, end=end, model=e.model,
                                 box=getattr(e, "box", None)), e))
        return out

    def _seen_in(self) -> Callable[[_Medium], list[Pair]]:
        """The sightings seen in one file: started in it, or (a still of a burst) spanning its time."""
        by_stream: dict[str, list[Pair]] = defaultdict(list)
        by_camera: dict[str, list[Pair]] = defaultdict(list)
        for s, e in self._sightings():
            by_stream[e.stream].append((s, e))
            by_camera[s.deployment].append((s, e))

        def seen(m: _Medium) -> list[Pair]:
            found = list(by_stream.get(m.stream, ()))
            if not m.media_times:
                found += [(s, e) for s, e in by_camera.get(m.camera, ())
                          if e.stream != m.stream and s.start - SLACK_S <= m.start <= s.end + SLACK_S]
            return found
        return seen

    def write_camtrap(self, out: Path) -> dict[str, int]:
        seen = self._seen_in()
        media = [MediaFile(m.camera, path, m.start, mediatype(path), sightings=len(seen(m)))
                 for path, m in self.media.items()]
        sightings = [s for s, _ in self._sightings()]
        cameras = {m.deployment for m in media} | {s.deployment for s in sightings}
        places = {c: place(self.config, c, self.override) for c in cameras}
        return write_package(out, station=self.config.station, places=places, media=media, sightings=sightings,
                             taxonomy=load_taxonomy(self.config.taxonomy), created=time.time())

    def write_megadetector(self, path: Path, class_names: list[str], model: str) -> int:
        results = []
        seen = self._seen_in()
        for source, m in self.media.items():
            rate = _frame_rate(source) if m.media_times else None
            result = megadetector.MediaResult(m.stream)
            if rate is not None:
                result.frame_rate = rate
                result.frames_processed = [round(t * rate) for t in m.media_times]
            for s, e in seen(m):
                frame = round((e.media_start_s or 0.0) * rate) if rate is not None else None
                result.detections.append(megadetector.Detection(s.score, e.top, s.box, frame))
            results.append(result)
        results += [megadetector.MediaResult(name, failure=why) for name, why in self.failures.items()]
        doc = megadetector.document(results, class_names=class_names, model=model, started=self.started,
                                    finished=time.time(), threshold=self.config.sightings.enter_score)
        megadetector.write(path, doc)
        return len(results)


def _frame_rate(path: str) -> float | None:
    """The clip's frame rate, which the format needs to turn frame numbers into times."""
    import av

    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            return float(rate) if rate else None
    except (av.error.FFmpegError, IndexError, OSError) as exc:
        log.warning("%s: frame rate unknown (%s); listed as a still", path, first_line(exc))
        return None


def collector(args: Any, config: Config) -> Collector | None:
    """The collector when classify writes a standard output, with --lat/--lon/--location-name over the config."""
    if not (getattr(args, "camtrap_dp", None) or getattr(args, "megadetector_json", None)):
        return None
    return Collector(config, {"latitude": args.lat, "longitude": args.lon, "location_name": args.location_name})
