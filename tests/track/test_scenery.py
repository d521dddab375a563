"""Scenery is not a sighting: a static object scored as a species never starts one; a bird arriving does."""

from __future__ import annotations

import pytest

from tests.track.scenes import Seg, frames, make_tracker, play, sightings
from tests.support.options import track_options

H, D = "Eurasian Hoopoe", "Laughing Dove"
ROCK = {D: 0.85}  # a rock the classifier scores as a Laughing Dove
BIRD_AT_ROCK = {H: 0.8, D: 0.1}
MOVE = 0.05

# (name, segments, options, expected species of the sightings in order)
CASES = [
    ("static object from frame 0, motion 0", [Seg(120, ROCK)], {}, []),
    ("static object, keep-alive samples only", [Seg(120, ROCK, fps=0.2, keepalive=True)], {}, []),
    ("static object, first frame reports full motion", [Seg(0.5, ROCK, motion=1.0), Seg(60, ROCK)], {}, []),
    ("static object, first frame motion unknown", [Seg(0.5, ROCK, motion=None), Seg(60, ROCK)], {}, []),
    ("static object, wind moves the scene now and then",
     [Seg(30, ROCK), *[s for _ in range(5) for s in (Seg(2, ROCK, motion=0.03), Seg(8, ROCK))]], {}, []),
    ("bird arrives in front of the static object",
     [Seg(60, ROCK), Seg(6, BIRD_AT_ROCK, motion=MOVE), Seg(1, ROCK, motion=MOVE), Seg(30, ROCK)], {}, [H]),
    ("bird arrives, keep-alive sampling before and after",
     [Seg(60, ROCK, fps=0.2, keepalive=True), Seg(6, BIRD_AT_ROCK, motion=MOVE), Seg(1, ROCK, motion=MOVE),
      Seg(60, ROCK, fps=0.2, keepalive=True)], {}, [H]),
    ("two visits in front of the static object",
     [Seg(30, ROCK), Seg(5, BIRD_AT_ROCK, motion=MOVE), Seg(30, ROCK), Seg(5, BIRD_AT_ROCK, motion=MOVE),
      Seg(30, ROCK)], {}, [H, H]),
    ("a bird that never moves in view is not started", [Seg(5), Seg(30, {H: 0.9}, motion=0.0)], {}, []),
    ("scenery gate off: the static object is reported", [Seg(30, ROCK)], {"scenery": False}, [D]),
    ("still images (motion unknown) are judged on score alone", [Seg(3, ROCK, motion=None)], {}, [D]),
]


@pytest.mark.parametrize(("name", "segs", "opts", "expected"), CASES, ids=[c[0] for c in CASES])
def test_scenery(name, segs, opts, expected):
    got = sightings(play(make_tracker(track_options(**opts)), frames(*segs)))
    assert [g["species"] for g in got] == expected, got


def test_bird_sighting_in_front_of_scenery_has_the_bird_times():
    items = frames(Seg(60, ROCK), Seg(6, BIRD_AT_ROCK, motion=MOVE), Seg(1, ROCK, motion=MOVE), Seg(30, ROCK))
    (got,) = sightings(play(make_tracker(), items))
    assert 60 <= got["start"] <= 61.5 and 65.5 <= got["end"] <= 67.01


def test_object_placed_then_static_ends_after_still_limit_and_stays_quiet():
    # Someone puts a dove-like ornament in view (motion), then it never moves again.
    opts = track_options(still_limit_s=60)
    items = frames(Seg(5), Seg(3, ROCK, motion=0.2), Seg(600, ROCK, fps=0.5))
    events = play(make_tracker(opts), items)
    got = sightings(events)
    assert [g["species"] for g in got] == [D]
    end = [e for e in events if e.event == "end"][0]
    # It ended while the stream ran, about still_limit_s after the last movement, not at close().
    assert end.ended_at - items[0][1].captured_at < 5 + 3 + 60 + 5
    # A bird of another species is still seen in front of it afterwards.
    more = frames(Seg(5, {H: 0.8, D: 0.1}, motion=MOVE), start=610)
    assert [g["species"] for g in sightings(play(make_tracker(opts), items + more))] == [D, H]
