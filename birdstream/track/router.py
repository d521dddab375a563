"""One source's sightings, whatever it delivers: live or video frames, or stills.

Live and video frames go through a SightingTracker (a new one for each file of a folder); stills
(a frame with a source file but no media time) go through a StillsTracker: a lone still is judged
on its own, a burst is smoothed like video. The daemon and `birdstream classify` both use it, so a
camera-trap folder gives the same sightings in either.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

from birdstream.messages import Frame, Prediction, SightingEvent
from birdstream.track.options import TrackOptions
from birdstream.track.regions import RegionTracker
from birdstream.track.stills import StillsTracker
from birdstream.track.tracker import SeenSpecies, SightingTracker


def is_still(frame: Frame) -> bool:
    """A still image: read from a file, with no position in a video."""
    return frame.source is not None and frame.media_time is None


class MediaTracker:
    """Routes one source's predictions to the right tracker; same update / tick / close as they have."""

    def __init__(self, *, station: str, class_names: Sequence[str], model_id: str, options: TrackOptions,
                 stream_of: Callable[[Frame], str], metrics_label: str | None = None,
                 clock: Callable[[], float] = time.monotonic, seen: SeenSpecies | None = None) -> None:
        """`stream_of` names a sighting's stream from its first frame (the stream id in the daemon,
        the file's path offline); `clock` (steady seconds) ends a burst of stills once none came for
        end_after_s; `seen`, the station's memory of species (first_at_station)."""
        self.station = station
        self.class_names = tuple(class_names)
        self.model_id = model_id
        self.options = options
        self._stream_of = stream_of
        self._label = metrics_label
        self._clock = clock
        self._seen = seen
        self._stills = StillsTracker(station=station, class_names=self.class_names, model_id=model_id,
                                     options=options, stream_of=stream_of, metrics_label=metrics_label,
                                     seen=seen)
        self._video: RegionTracker | None = None
        self._video_source: str | None = None
        self._still_fed_at: float | None = None

    def update(self, pred: Prediction) -> list[SightingEvent]:
        """Feed one prediction (frames in capture order); returns the events it caused."""
        frame = pred.frame
        events: list[SightingEvent] = []
        if is_still(frame):
            events += self._end_video()
            self._still_fed_at = self._clock()
            # Judged on its score: a camera trap fires on movement, and a still has no motion context.
            return events + self._stills.update(Prediction(dataclasses.replace(frame, motion=None), pred.probs,
                                                           pred.region_probs))
        if self._video is None or frame.source != self._video_source:
            events += self._end_video() + self._end_stills()
            self._video_source = frame.source
            # Frames without regions make exactly the whole-frame sightings of a SightingTracker.
            self._video = RegionTracker(station=self.station, stream_id=self._stream_of(frame),
                                        class_names=self.class_names, model_id=self.model_id,
                                        options=self.options, metrics_label=self._label,
                                        seen=self._seen)
        return events + self._video.update(pred)

    def tick(self, now: float | None = None) -> list[SightingEvent]:
        """End what time has ended: a video sighting after end_after_s, a burst no still can join."""
        events = self._video.tick(now) if self._video is not None else []
        if self._still_fed_at is not None and self._clock() - self._still_fed_at > self._stills.burst_gap_s:
            events += self._end_stills()
        return events

    def close(self) -> list[SightingEvent]:
        """The source stopped (or shutdown): end every open sighting."""
        events = self._video.close() if self._video is not None else []
        self._video = None
        return events + self._end_stills()

    def _end_video(self) -> list[SightingEvent]:
        video, self._video, self._video_source = self._video, None, None
        return video.close() if video is not None else []

    def _end_stills(self) -> list[SightingEvent]:
        self._still_fed_at = None
        return self._stills.close()
