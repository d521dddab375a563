"""Per-stream sighting state machine: smoothed predictions -> start / update / end events."""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo

import numpy as np

from birdstream.messages import Box, Frame, Scene, Prediction, SightingEvent
from birdstream.track import metrics
from birdstream.track.options import TrackOptions, check_species
from birdstream.track.priors import PriorRule, prior_matrix
from birdstream.track.smoothing import DecayingMean, Smoother

log = logging.getLogger(__name__)


class SeenSpecies(Protocol):
    """The species this station has ever sighted (kept by the station, e.g. in state_dir)."""

    def __contains__(self, species: object) -> bool: ...

    def add(self, species: str) -> bool:
        """Remember a species; True when it was new."""


@dataclass
class _Run:
    """Supporting frames of one species: a candidate, or the open sighting once it started."""

    species: int
    first_t: float
    first_media: float | None
    last_t: float
    last_media: float | None
    frames: int
    best_p: float
    best_image: np.ndarray | None
    best_box: Box | None = None  # the region the best frame was judged on (None: whole frame)
    best_scene: Scene | None = None

    @classmethod
    def begin(cls, species: int, frame: Frame, p: float) -> _Run:
        t = float(frame.captured_at)
        return cls(species, t, frame.media_time, t, frame.media_time, 1, p, _picture(frame), frame.box, frame.scene)

    def support(self, frame: Frame, p: float) -> None:
        self.last_t = max(self.last_t, float(frame.captured_at))
        self.last_media = frame.media_time
        self.frames += 1
        if p > self.best_p:
            self.best_p = p
            self.best_image = _picture(frame)
            self.best_box, self.best_scene = frame.box, frame.scene


@dataclass
class _Open:
    """The sighting being reported."""

    run: _Run
    id: str
    seq: int  # seq of the last event sent
    reported: float  # score of the last event sent
    last_event_t: float
    peak: float
    peak_top: tuple[tuple[str, float], ...]
    started_t: float  # when the start was decided (frame time)
    prior: float = 1.0  # the species' occurrence weight in the month it started
    first: bool = False  # the first sighting ever of this species at the station


def _vector(probs: object) -> np.ndarray:
    """Probabilities as a flat float array; float32 stays float32 (the smoothing widens it exactly)."""
    arr = probs if isinstance(probs, np.ndarray) else np.asarray(probs)
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    return arr.reshape(-1) if arr.ndim != 1 else arr


def _picture(frame: Frame) -> np.ndarray | None:
    return frame.full if frame.full is not None else frame.image


class SightingTracker:
    """Turns one stream's predictions into sightings; pure code, time comes from the frames or tick()."""

    def __init__(
        self,
        *,
        station: str,
        stream_id: str,
        class_names: Sequence[str],
        model_id: str,
        options: TrackOptions,
        id_factory: Callable[[], object] = uuid.uuid4,
        clock: Callable[[], float] = time.monotonic,
        start_from_first_frame: bool = False,
        metrics_label: str | None = None,
        seen: SeenSpecies | None = None,
        may_start: Callable[[str], bool] | None = None,
    ):
        """`clock` (any steady seconds) only serves tick() without a time; `start_from_first_frame`
        seeds the smoothing with the first frame (still bursts) instead of zero; `metrics_label`
        is the `stream` label of its counters (default the stream id; one fixed label offline, where
        every file is a stream and a label each would grow without bound); `seen` marks a
        sighting `first_at_station` and holds a species it lacks to new_species_min_frames;
        `may_start(species)`, when given, can hold back a start (another region of the stream
        already reports it)."""
        self.station = station
        self.stream_id = stream_id
        self._label = stream_id if metrics_label is None else metrics_label
        self.model_id = model_id
        self.class_names = tuple(class_names)
        self.options = opts = check_species(options, self.class_names)
        self._id_factory = id_factory
        self._clock = clock
        self._fed: tuple[float, float] | None = None  # (latest captured_at, clock() when it was fed)
        n = len(self.class_names)
        index = {name: i for i, name in enumerate(self.class_names)}
        eligible = np.ones(n, dtype=bool)
        if opts.allow:
            eligible[:] = False
            eligible[[index[s] for s in opts.allow]] = True
        for name in opts.deny:
            eligible[index[name]] = False
        self._eligible = eligible
        self._all_eligible = bool(eligible.all())  # the common case: no allow/deny, no mask per frame
        self._enter = np.full(n, opts.enter_score, dtype=np.float64)
        for name, score in opts.thresholds.items():
            self._enter[index[name]] = score
        self._seen = seen
        matrix = None
        if opts.priors is not None or opts.priors_default < 1.0:
            matrix = prior_matrix(opts.priors, index, opts.priors_default)
        self._rule = PriorRule(self._enter, opts.exit_score / opts.enter_score, opts.min_frames, matrix,
                               ZoneInfo(opts.timezone) if opts.timezone else None, scale_frames=opts.prior_frames)
        self._smoother = Smoother(n, opts.smoothing_s, opts.max_frame_s, start_from_first=start_from_first_frame)
        self._baseline = DecayingMean(n, opts.baseline_s)
        self._last_motion_t: float | None = None
        self._frames_seen = 0
        self._cand: _Run | None = None
        self._open: _Open | None = None
        self._warned_bad = False
        self._may_start = may_start

    @property
    def open_sighting(self) -> str | None:
        """The id of the sighting in progress, if any."""
        return self._open.id if self._open else None

    def update(self, pred: Prediction) -> list[SightingEvent]:
        """Feed one prediction (frames in capture order); returns the events it caused."""
        frame = pred.frame
        probs = _vector(pred.probs)
        # One dot product checks every value: a NaN or infinity anywhere makes it non-finite.
        if probs.shape[0] != len(self.class_names) or not math.isfinite(probs.dot(probs)):
            metrics.BAD_PREDICTIONS.labels(stream=self._label).inc()
            if not self._warned_bad:
                self._warned_bad = True
                log.warning(
                    "stream %s: dropped a prediction of %d values (model has %d classes) or with NaN",
                    self.stream_id, probs.shape[0], len(self.class_names),
                )
            return []
        t = float(frame.captured_at)
        now = self._clock()
        fed = self._fed
        # Only a frame older than the newest by end_after_s can mean the clock was set back.
        events = self._clock_set_back(t, now) if fed is not None and fed[0] - t > self.options.end_after_s else []
        if self._fed is None or t >= self._fed[0]:
            self._fed = (t, now)
        if self._cand is not None or self._open is not None:
            events += self._expire(t)
        s = self._smoother.add(probs, t)
        moving, quiet = self._motion(frame)
        if moving:
            self._last_motion_t = t
        if quiet and self._open is None and self.options.scenery:
            self._baseline.add(probs, t)
        if self._open is not None:
            events += self._follow(frame, probs, s)
        events += self._consider(frame, probs, s)
        self._frames_seen += 1
        return events

    def tick(self, now: float | None = None) -> list[SightingEvent]:
        """End the sighting whose last supporting frame is older than end_after_s at `now`.

        `now` is on the frames' timeline (epoch seconds like captured_at). Without it, now is the
        latest frame's captured_at plus the clock time elapsed since that frame was fed, which
        suits live cameras and files read faster or slower than real time alike.
        """
        if now is None:
            if self._fed is None:
                return []
            now = self._fed[0] + (self._clock() - self._fed[1])
        return self._expire(float(now))

    def close(self) -> list[SightingEvent]:
        """The stream stopped: end the open sighting (ended_at stays its last supporting frame)."""
        self._cand = None
        if self._open is None:
            return []
        return [self._end("close")]

    # -- internals ---------------------------------------------------------------------------

    def _motion(self, frame: Frame) -> tuple[bool, bool]:
        """(moving, quiet) of a frame; unknown motion is neither."""
        m = frame.motion
        if m is None:
            return False, False
        if frame.keepalive or m < self.options.motion_min:
            return False, True
        # A background model has nothing to compare the very first frame with.
        return self._frames_seen > 0, False

    def _clock_set_back(self, t: float, now: float) -> list[SightingEvent]:
        """Frames that go back in time by more than end_after_s: the wall clock was set back.

        Times before and after are not comparable: the open sighting ends (as it was, on the old
        timeline) and the tracker carries on from the new time. Without this, the sighting would
        either end at every tick or never, until the clock caught up again.
        """
        if self._fed is None:
            return []
        expected = self._fed[0] + (now - self._fed[1])
        jump = t - expected
        if -jump <= self.options.end_after_s or self._fed[0] - t <= self.options.end_after_s:
            return []
        log.warning("stream %s: frame times went back by %.0f s (wall clock set back, or an older file); "
                    "tracking goes on from the new time", self.stream_id, -jump)
        metrics.CLOCK_JUMPS.labels(stream=self._label).inc()
        self._fed = None
        self._cand = None
        self._smoother.shift(jump)
        self._baseline.shift(jump)
        if self._last_motion_t is not None:
            self._last_motion_t += jump
        return [self._end("clock")] if self._open is not None else []

    def _expire(self, now: float) -> list[SightingEvent]:
        limit = self.options.end_after_s
        if self._cand is not None and now - self._cand.last_t > limit:
            self._cand = None
        if self._open is not None and now - self._open.run.last_t > limit:
            return [self._end("timeout")]
        return []

    def _follow(self, frame: Frame, probs: np.ndarray, s: np.ndarray) -> list[SightingEvent]:
        op = self._open
        assert op is not None
        a = op.run.species
        t = float(frame.captured_at)
        opts = self.options
        events: list[SightingEvent] = []
        if s[a] >= self._rule.at(t)[1][a]:
            op.run.support(frame, float(probs[a]))
            if s[a] > op.peak:
                op.peak = float(s[a])
                op.peak_top = self._top(s)
            rose = opts.update_min_delta > 0 and s[a] >= op.reported + opts.update_min_delta
            stale = opts.update_every_s > 0 and t - op.last_event_t >= opts.update_every_s
            if rose or stale:
                events.append(self._event("update", float(s[a]), self._top(s), t))
        if opts.scenery and frame.motion is not None and opts.still_limit_s > 0:
            moved = max(op.started_t, self._last_motion_t or op.started_t)
            if t - moved >= opts.still_limit_s:
                metrics.SCENERY_ENDED.labels(stream=self._label).inc()
                events.append(self._end("still"))
        return events

    def _consider(self, frame: Frame, probs: np.ndarray, s: np.ndarray) -> list[SightingEvent]:
        """Grow the candidate run of the top eligible species; start it once it qualifies."""
        opts = self.options
        if self._all_eligible:
            c = int(s.argmax())
        else:
            masked = np.where(self._eligible, s, -1.0)
            c = int(masked.argmax())
            if masked[c] < 0:
                self._cand = None
                return []
        if self._open is not None and c == self._open.run.species:
            self._cand = None
            return []
        t = float(frame.captured_at)
        enter, _, need_frames = self._rule.at(t)
        if s[c] < enter[c]:
            top = c if self._all_eligible else int(s.argmax())
            if not self._eligible[top] and s[top] >= self._enter[top]:
                metrics.HELD_BACK.labels(stream=self._label, reason="filtered").inc()
            elif s[c] >= self._enter[c]:
                metrics.HELD_BACK.labels(stream=self._label, reason="prior").inc()
            self._cand = None
            return []
        judged_on_score = not opts.scenery or frame.motion is None
        if not judged_on_score and self._baseline.known:
            if s[c] < self._baseline.value[c] + opts.baseline_margin:
                metrics.HELD_BACK.labels(stream=self._label, reason="scenery").inc()
                self._cand = None
                return []
        if self._cand is None or self._cand.species != c:
            self._cand = _Run.begin(c, frame, float(probs[c]))
        else:
            self._cand.support(frame, float(probs[c]))
        if self._cand.frames < self._frames_needed(c, int(need_frames[c])):
            return []
        if not judged_on_score and (
            self._last_motion_t is None or t - self._last_motion_t > opts.motion_window_s
        ):
            metrics.HELD_BACK.labels(stream=self._label, reason="no_motion").inc()
            self._cand = None
            return []
        if self._may_start is not None and not self._may_start(self.class_names[c]):
            metrics.HELD_BACK.labels(stream=self._label, reason="duplicate").inc()
            self._cand = None
            return []
        events = [self._end("switch")] if self._open is not None else []
        run, self._cand = self._cand, None
        top = self._top(s)
        first = self._seen is not None and self._seen.add(self.class_names[c])
        self._open = _Open(run, str(self._id_factory()), -1, float(s[c]), t, float(s[c]), top, t,
                           self._rule.weight(c, run.first_t), first)
        events.append(self._event("start", float(s[c]), top, t))
        return events

    def _frames_needed(self, species: int, frames: int) -> int:
        extra = self.options.new_species_min_frames
        if extra is None or self._seen is None or self.class_names[species] in self._seen:
            return frames
        return max(frames, extra)

    def _end(self, reason: str) -> SightingEvent:
        op = self._open
        assert op is not None
        ev = self._event("end", op.peak, op.peak_top, op.run.last_t)
        log.debug("stream %s: sighting %s of %s ended (%s)", self.stream_id, op.id, ev.species, reason)
        self._open = None
        return ev

    def _event(self, kind: str, score: float, top: tuple[tuple[str, float], ...], t: float) -> SightingEvent:
        op = self._open
        assert op is not None
        op.seq += 1
        op.reported = score if kind != "end" else op.reported
        op.last_event_t = t
        run = op.run
        ending = kind == "end"
        metrics.SIGHTING_EVENTS.labels(stream=self._label, event=kind).inc()
        return SightingEvent(
            id=op.id,
            seq=op.seq,
            event=kind,  # type: ignore[arg-type]
            station=self.station,
            stream=self.stream_id,
            species=self.class_names[run.species],
            score=score,
            top=top,
            started_at=run.first_t,
            updated_at=t,
            ended_at=run.last_t if ending else None,
            frames=run.frames,
            model=self.model_id,
            media_start_s=run.first_media,
            media_end_s=run.last_media if ending else None,
            box=run.best_box,
            best_image=run.best_image,
            prior=op.prior,
            first_at_station=op.first,
            best_scene=run.best_scene,
        )

    def _top(self, s: np.ndarray) -> tuple[tuple[str, float], ...]:
        k = min(self.options.top_k, s.shape[0])
        neg = -s
        if k < s.shape[0]:
            # The k best without sorting all classes; ties at the cut resolved by index, as a stable sort would.
            kth = np.partition(neg, k - 1)[k - 1]
            cand = np.flatnonzero(neg <= kth)
            idx = cand[np.argsort(neg[cand], kind="stable")][:k]
        else:
            idx = np.argsort(neg, kind="stable")
        return tuple((self.class_names[i], float(s[i])) for i in idx)
