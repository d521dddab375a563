"""Offline stills: a lone still above enter_score is one sighting; a burst is smoothed like video."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from birdstream.messages import Frame, Prediction
from birdstream.track import StillsTracker
from tests.track.scenes import CLASSES, T0, probs
from tests.support.options import track_options

H, S, D = "Eurasian Hoopoe", "House Sparrow", "Laughing Dove"


def still(t: float, scores: dict[str, float], name: str, folder: str = "card") -> Prediction:
    frame = Frame(
        stream_id=name, seq=0, image=np.full((4, 4, 3), int(t) % 256, np.uint8), captured_at=T0 + t,
        source=f"/media/{folder}/{name}",
    )
    return Prediction(frame, probs(scores))


def run(stills: list[Prediction], **opts: object) -> list:
    ids = (f"id-{i}" for i in itertools.count())
    tracker = StillsTracker(station="garden", class_names=CLASSES, model_id="m@0",
                            options=track_options(**opts), id_factory=lambda: next(ids))
    events = []
    for p in stills:
        events += tracker.update(p)
    return events + tracker.close()


def summary(events: list) -> list[tuple]:
    return [(e.event, e.species, e.stream, e.frames) for e in events]


# (name, stills as (t, scores, file), options, expected (event, species, stream, frames))
CASES = [
    ("lone still above enter", [(0, {H: 0.7}, "a.jpg")], {},
     [("start", H, "a.jpg", 1), ("end", H, "a.jpg", 1)]),
    ("lone still below enter", [(0, {H: 0.55}, "a.jpg")], {}, []),
    ("lone still of a denied species", [(0, {H: 0.9}, "a.jpg")], {"deny": (H,)}, []),
    ("lone still under a per-species threshold", [(0, {H: 0.5}, "a.jpg")], {"thresholds": {H: 0.45}},
     [("start", H, "a.jpg", 1), ("end", H, "a.jpg", 1)]),
    ("two lone stills far apart", [(0, {H: 0.8}, "a.jpg"), (60, {S: 0.8}, "b.jpg")], {},
     [("start", H, "a.jpg", 1), ("end", H, "a.jpg", 1), ("start", S, "b.jpg", 1), ("end", S, "b.jpg", 1)]),
    ("burst of three with the bird in all", [(0, {H: 0.8}, "a.jpg"), (1, {H: 0.8}, "b.jpg"), (2, {H: 0.8}, "c.jpg")],
     {}, [("start", H, "a.jpg", 2), ("end", H, "a.jpg", 3)]),
    ("burst with the same capture second", [(5, {H: 0.8}, "a.jpg"), (5, {H: 0.8}, "b.jpg"), (5, {H: 0.8}, "c.jpg")],
     {}, [("start", H, "a.jpg", 2), ("end", H, "a.jpg", 3)]),
    ("burst: one still of a flash among empty ones",
     [(0, {}, "a.jpg"), (1, {}, "b.jpg"), (2, {H: 0.9}, "c.jpg"), (3, {}, "d.jpg"), (4, {}, "e.jpg")], {}, []),
    ("burst: noisy scores smoothed into one sighting",
     [(i, {H: sc}, f"{i}.jpg") for i, sc in enumerate([0.8, 0.5, 0.85, 0.55, 0.8])], {},
     [("start", H, "0.jpg", 2), ("end", H, "0.jpg", 5)]),
    ("burst then a lone still", [(0, {H: 0.8}, "a.jpg"), (1, {H: 0.8}, "b.jpg"), (40, {S: 0.7}, "c.jpg")], {},
     [("start", H, "a.jpg", 2), ("end", H, "a.jpg", 2), ("start", S, "c.jpg", 1), ("end", S, "c.jpg", 1)]),
    ("gap just over end_after_s splits", [(0, {H: 0.8}, "a.jpg"), (10.5, {H: 0.8}, "b.jpg")], {},
     [("start", H, "a.jpg", 1), ("end", H, "a.jpg", 1), ("start", H, "b.jpg", 1), ("end", H, "b.jpg", 1)]),
]


@pytest.mark.parametrize(("name", "items", "opts", "expected"), CASES, ids=[c[0] for c in CASES])
def test_stills(name, items, opts, expected):
    events = run([still(t, sc, f) for t, sc, f in items], **opts)
    assert [(e.event, e.species, e.stream, e.frames) for e in events if e.event != "update"] == expected
    assert len({(e.id, e.seq) for e in events}) == len(events)


def test_lone_still_event_fields():
    start, end = run([still(7, {H: 0.7}, "a.jpg")])
    assert start.id == end.id and (start.seq, end.seq) == (0, 1)
    assert start.started_at == end.started_at == end.ended_at == end.updated_at == T0 + 7
    assert start.score == pytest.approx(0.7) and end.top[0] == (H, pytest.approx(0.7))
    assert end.best_image is not None and int(end.best_image[0, 0, 0]) == 7


def test_burst_sighting_spans_its_stills():
    events = run([still(t, {H: 0.8}, f"{t}.jpg") for t in (0, 2, 4)])
    end = events[-1]
    assert end.event == "end" and end.started_at == T0 and end.ended_at == T0 + 4


def test_another_folder_starts_another_burst():
    events = run([still(0, {H: 0.8}, "a.jpg", "cam1"), still(1, {H: 0.8}, "b.jpg", "cam2")])
    assert [(e.event, e.stream, e.frames) for e in events] == [
        ("start", "a.jpg", 1), ("end", "a.jpg", 1), ("start", "b.jpg", 1), ("end", "b.jpg", 1)]
