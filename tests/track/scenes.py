"""Hand-made prediction sequences for tracker tests: a small class list, known times, an injected clock."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from birdstream.messages import Frame, Prediction, SightingEvent
from birdstream.track import SightingTracker, TrackOptions
from tests.support.options import track_options

CLASSES = ("Common Myna", "Eurasian Hoopoe", "House Sparrow", "Laughing Dove", "White-eared Bulbul")
T0 = 1_780_000_000.0  # epoch seconds of the scenes' t = 0


def probs(scores: dict[str, float] | None = None) -> np.ndarray:
    """A probability vector: the named classes get their score, the rest share what is left."""
    scores = scores or {}
    p = np.zeros(len(CLASSES), dtype=np.float32)
    for name, v in scores.items():
        p[CLASSES.index(name)] = v
    rest = [i for i, c in enumerate(CLASSES) if c not in scores]
    if rest:
        p[rest] = max(0.0, 1.0 - float(sum(scores.values()))) / len(rest)
    return p


@dataclass
class Seg:
    """`dur` seconds of the same scene sampled at `fps` (or at the given `gaps`)."""

    dur: float
    scores: dict[str, float] = field(default_factory=dict)
    fps: float = 2.0
    motion: float | None = 0.0
    keepalive: bool = False
    gaps: Sequence[float] | None = None  # explicit spacing between frames (VFR)


def frames(*segs: Seg, media: bool = True, start: float = 0.0) -> list[tuple[float, Frame, np.ndarray]]:
    """(t, Frame, probs) for consecutive segments; t is seconds from T0."""
    out: list[tuple[float, Frame, np.ndarray]] = []
    t0 = start
    seq = itertools.count()
    for seg in segs:
        if seg.gaps is not None:
            offsets = np.concatenate([[0.0], np.cumsum(seg.gaps)])
            offsets = offsets[offsets < seg.dur]
        else:
            offsets = np.arange(0.0, seg.dur - 1e-9, 1.0 / seg.fps)
        for off in offsets:
            t = round(t0 + float(off), 6)
            n = next(seq)
            image = np.full((4, 4, 3), n % 256, dtype=np.uint8)
            frame = Frame(
                stream_id="feeder",
                seq=n,
                image=image,
                captured_at=T0 + t,
                media_time=t if media else None,
                motion=seg.motion,
                keepalive=seg.keepalive,
            )
            out.append((t, frame, probs(seg.scores)))
        t0 += seg.dur
    return out


def make_tracker(options: TrackOptions | None = None, **kw: object) -> SightingTracker:
    ids = (f"id-{i}" for i in itertools.count())
    return SightingTracker(
        station="garden",
        stream_id="feeder",
        class_names=CLASSES,
        model_id="planted@0123456789ab",
        options=options or track_options(),
        id_factory=lambda: next(ids),
        **kw,
    )


def play(
    tracker: SightingTracker,
    items: Iterable[tuple[float, Frame, np.ndarray]],
    *,
    tick_every: float = 1.0,
    until: float | None = None,
    close: bool = True,
) -> list[SightingEvent]:
    """Feed frames in order, ticking the clock every `tick_every` s like the daemon, then close."""
    events: list[SightingEvent] = []
    clock = 0.0
    last = 0.0
    for t, frame, p in items:
        while clock + tick_every <= t:
            clock += tick_every
            events += tracker.tick(T0 + clock)
        events += tracker.update(Prediction(frame=frame, probs=p))
        last = t
    end = until if until is not None else last
    while clock + tick_every <= end:
        clock += tick_every
        events += tracker.tick(T0 + clock)
    if close:
        events += tracker.close()
    return events


def sightings(events: Sequence[SightingEvent]) -> list[dict[str, object]]:
    """One summary per sighting id, in start order: species, start/end (s from T0), kinds of events."""
    out: dict[str, dict[str, object]] = {}
    for ev in events:
        s = out.setdefault(ev.id, {"species": ev.species, "kinds": []})
        s["kinds"].append(ev.event)  # type: ignore[union-attr]
        s["start"] = ev.started_at - T0
        if ev.event == "end":
            s["end"] = (ev.ended_at or 0.0) - T0
            s["frames"] = ev.frames
    return list(out.values())


def iter_pairs(events: Sequence[SightingEvent]) -> Iterator[tuple[str, int]]:
    return ((ev.id, ev.seq) for ev in events)
