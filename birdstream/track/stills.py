"""Sightings from still images (camera-trap cards, image folders) for `birdstream classify`.

Stills arrive in capture order. Stills closer than `burst_gap_s` (default end_after_s) to their
neighbour form a burst, which is smoothed like video frames by a SightingTracker of its own. A still
with no neighbour within the gap is judged alone: if its best allowed species scores at least that
species' enter score, it is one sighting (a start and an end, one frame).
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Callable, Sequence

import numpy as np

from birdstream.messages import Frame, Prediction, SightingEvent
from birdstream.track.options import TrackOptions, check_species
from birdstream.track.regions import region_view
from birdstream.track.tracker import SeenSpecies, SightingTracker


def _folder(frame: Frame) -> object:
    return os.path.dirname(frame.source) if frame.source else frame.stream_id


class StillsTracker:
    """Like SightingTracker, for stills: bursts are smoothed, a lone still above enter is one sighting."""

    def __init__(
        self,
        *,
        station: str,
        class_names: Sequence[str],
        model_id: str,
        options: TrackOptions,
        burst_gap_s: float | None = None,
        stream_of: Callable[[Frame], str] = lambda frame: frame.stream_id,
        burst_key: Callable[[Frame], object] = _folder,
        id_factory: Callable[[], object] = uuid.uuid4,
        metrics_label: str | None = None,
        seen: SeenSpecies | None = None,
    ):
        """`stream_of` names a sighting's stream from its burst's first still; a change of
        `burst_key` (by default the still's folder) also ends a burst."""
        self.station = station
        self.class_names = tuple(class_names)
        self.model_id = model_id
        self.options = check_species(options, self.class_names)
        self.burst_gap_s = self.options.end_after_s if burst_gap_s is None else float(burst_gap_s)
        self._stream_of = stream_of
        self._burst_key = burst_key
        self._id_factory = id_factory
        self._metrics_label = metrics_label
        self._seen = seen
        self._first: Prediction | None = None
        self._tracker: SightingTracker | None = None
        self._last_t = 0.0
        self._key: object = None

    def update(self, pred: Prediction) -> list[SightingEvent]:
        """Feed the prediction of one still (in capture order); returns the events it caused."""
        frame = pred.frame
        t = float(frame.captured_at)
        key = self._burst_key(frame)
        events: list[SightingEvent] = []
        if self._first is not None and (t - self._last_t > self.burst_gap_s or key != self._key):
            events += self._finish()
        if self._first is None:
            self._first, self._key = pred, key
        else:
            if self._tracker is None:
                self._tracker = self._new_tracker(self.options, self._first.frame)
                events += self._tracker.update(surest(self._first))
            events += self._tracker.update(surest(pred))
        self._last_t = max(self._last_t, t) if self._tracker is not None else t
        return events

    def close(self) -> list[SightingEvent]:
        """No more stills: finish the current burst or lone still."""
        return self._finish() if self._first is not None else []

    def _finish(self) -> list[SightingEvent]:
        first, tracker = self._first, self._tracker
        self._first, self._tracker, self._key = None, None, None
        assert first is not None
        if tracker is not None:
            return tracker.close()
        # A lone still: no smoothing partner and no motion context, so one frame decides.
        lone = dataclasses.replace(self.options, min_frames=1, scenery=False, prior_frames=False)
        tracker = self._new_tracker(lone, first.frame)
        return tracker.update(first) + tracker.close()

    def _new_tracker(self, options: TrackOptions, first: Frame) -> SightingTracker:
        return SightingTracker(
            station=self.station,
            stream_id=self._stream_of(first),
            class_names=self.class_names,
            model_id=self.model_id,
            options=options,
            id_factory=self._id_factory,
            start_from_first_frame=True,
            metrics_label=self._metrics_label,
            seen=self._seen,
        )


def surest(pred: Prediction) -> Prediction:
    """A photo of a burst is judged on the whole photo or on a crop of what differs from the photo
    before it (ingest's regions), whichever the classifier is surest of; the crop brings its box.
    A lone photo is judged on the whole photo only: it has nothing to differ from."""
    best, best_p = pred, float(np.max(pred.probs))
    for region, probs in zip(pred.frame.regions, pred.region_probs):
        if float(np.max(probs)) > best_p:
            view = dataclasses.replace(region_view(pred.frame, region), motion=pred.frame.motion)
            best, best_p = Prediction(view, probs), float(np.max(probs))
    return best
