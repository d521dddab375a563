"""Per-region tracks: one stream's sightings, one per bird-sized region, plus the whole frame.

The whole frame goes through a SightingTracker exactly as without regions. Each region of a frame
(ingest's motion proposals, already classified on its own crop) is associated with a track by
overlap, else by the distance between centres (within twice the larger box: a hopping bird stays
on its track); a region nothing matches opens a new track. Every track runs today's sighting
lifecycle (smoothing, enter/exit, scenery, still_limit_s) in a SightingTracker of its own, so two
birds of different species are two sightings that overlap in time, and one bird moving across the
view is one sighting.

The same species in two places at once is ONE sighting: a track (or the whole frame) may not start
a species another track of the stream is reporting; it may once that sighting has ended (counted
as held back, reason `duplicate`). Region tracks are fed before the whole frame, so a bird found on
its crop gets a box, and a bird the whole frame and its crop both see is one sighting.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from birdstream.messages import Frame, Prediction, Region, Scene, SightingEvent
from birdstream.track.options import TrackOptions
from birdstream.track.tracker import SeenSpecies, SightingTracker

PixelBox = tuple[int, int, int, int]
REACH = 2.0  # a region this many box sizes from a track's last box may still be the same bird


@dataclass
class _Track:
    box: PixelBox
    last_t: float
    tracker: SightingTracker


def _iou(a: PixelBox, b: PixelBox) -> float:
    iw = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _distance(a: PixelBox, b: PixelBox) -> float:
    """Distance between centres in units of the larger box side."""
    d = math.hypot(a[0] + a[2] / 2 - b[0] - b[2] / 2, a[1] + a[3] / 2 - b[1] - b[3] / 2)
    return d / max(1, a[2], a[3], b[2], b[3])


class RegionTracker:
    """SightingTracker's update / tick / close for a stream whose frames may carry regions."""

    def __init__(self, *, station: str, stream_id: str, class_names: Sequence[str], model_id: str,
                 options: TrackOptions, metrics_label: str | None = None, seen: SeenSpecies | None = None) -> None:
        self._open: dict[str, str] = {}  # open sighting id -> species, over every track of the stream
        self._make = lambda: SightingTracker(station=station, stream_id=stream_id, class_names=class_names,
                                             model_id=model_id, options=options, metrics_label=metrics_label,
                                             may_start=self._may_start, seen=seen)
        self.options = options
        self._whole = self._make()
        self._tracks: list[_Track] = []

    @property
    def tracks(self) -> int:
        """Region tracks alive now."""
        return len(self._tracks)

    def update(self, pred: Prediction) -> list[SightingEvent]:
        frame = pred.frame
        t = float(frame.captured_at)
        events: list[SightingEvent] = []
        regions = frame.regions[: len(pred.region_probs)]
        fed: set[int] = set()
        for region, probs, k in zip(regions, pred.region_probs, self._associate(regions, t)):
            track = self._tracks[k]
            fed.add(k)
            track.box, track.last_t = region.pixels, t
            events += self._note(track.tracker.update(Prediction(region_view(frame, region), probs)))
        for k, track in enumerate(self._tracks):
            if k not in fed:
                events += self._note(track.tracker.tick(t))
        events += self._note(self._whole.update(pred))
        self._retire(t)
        return events

    def tick(self, now: float | None = None) -> list[SightingEvent]:
        events = [e for track in self._tracks for e in self._note(track.tracker.tick(now))]
        return events + self._note(self._whole.tick(now))

    def close(self) -> list[SightingEvent]:
        events = [e for track in self._tracks for e in self._note(track.tracker.close())]
        self._tracks = []
        return events + self._note(self._whole.close())

    def _associate(self, regions: Sequence[Region], t: float) -> list[int]:
        """The track index of each region (new tracks appended); one region per track."""
        pairs = []
        for i, region in enumerate(regions):
            for k, track in enumerate(self._tracks):
                overlap = _iou(region.pixels, track.box)
                distance = _distance(region.pixels, track.box)
                if overlap > 0 or distance <= REACH:
                    pairs.append((-overlap, distance, i, k))
        chosen: dict[int, int] = {}
        taken: set[int] = set()
        for _, _, i, k in sorted(pairs):  # greedy: the best overlap (then the nearest) first
            if i not in chosen and k not in taken:
                chosen[i] = k
                taken.add(k)
        for i, region in enumerate(regions):
            if i not in chosen:
                self._tracks.append(_Track(region.pixels, t, self._make()))
                chosen[i] = len(self._tracks) - 1
        return [chosen[i] for i in range(len(regions))]

    def _retire(self, t: float) -> None:
        """Forget tracks with no sighting that nothing has fed for end_after_s."""
        limit = self.options.end_after_s
        self._tracks = [tr for tr in self._tracks
                        if tr.tracker.open_sighting is not None or t - tr.last_t <= limit]

    def _may_start(self, species: str) -> bool:
        return species not in self._open.values()

    def _note(self, events: list[SightingEvent]) -> list[SightingEvent]:
        """Keep the open sightings current as soon as a tracker reports (the next one asks)."""
        for event in events:
            if event.event == "end":
                self._open.pop(event.id, None)
            else:
                self._open[event.id] = event.species
        return events


def region_view(frame: Frame, region: Region) -> Frame:
    """The frame as a region track sees it: the crop, its box, its own motion."""
    scene = Scene(frame.full, region.pixels) if frame.full is not None else None
    return dataclasses.replace(frame, image=region.image, full=region.crop, regions=(), box=region.box,
                               scene=scene, motion=region.motion, keepalive=False)
