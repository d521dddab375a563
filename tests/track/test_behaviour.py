"""The sighting state machine as a table: scene -> the sightings a user should see."""

from __future__ import annotations

import pytest

from birdstream.messages import Prediction
from tests.track.scenes import Seg, frames, make_tracker, play, sightings
from tests.support.options import track_options

H, S, D, M = "Eurasian Hoopoe", "House Sparrow", "Laughing Dove", "Common Myna"
MOVE = 0.05  # Frame.motion of a frame with a bird moving in it

# (name, segments, options, expected sightings: (species, start window, end window) in seconds)
CASES = [
    ("enter", [Seg(3), Seg(5, {H: 0.9}, motion=MOVE)], {}, [(H, (3, 4.5), (7.5, 8.01))]),
    ("present from the first frame, moving", [Seg(5, {H: 0.9}, motion=MOVE)], {}, [(H, (0, 1.5), (4.5, 5))]),
    ("stay through dips above exit", [Seg(2), *[Seg(1, {H: p}, motion=MOVE) for p in (0.9, 0.5) * 6]], {},
     [(H, (2, 4.5), (13.5, 14))]),
    ("stay through a short dropout", [Seg(2), Seg(4, {H: 0.9}, motion=MOVE), Seg(4), Seg(4, {H: 0.9}, motion=MOVE)],
     {}, [(H, (2, 3.5), (13.5, 14))]),
    ("flicker: one 0.3 s flash at 10 fps", [Seg(3), Seg(0.3, {H: 0.95}, fps=10, motion=MOVE),
                                          Seg(5, fps=10, motion=MOVE)], {}, []),
    ("flicker: one frame at 2 fps", [Seg(3), Seg(0.5, {H: 0.95}, motion=MOVE), Seg(5, motion=MOVE)], {}, []),
    ("flicker: alternating species", [Seg(2), *[Seg(0.5, {x: 0.9}, motion=MOVE) for x in (H, S, M) * 4]], {}, []),
    ("below enter never starts", [Seg(3), Seg(10, {H: 0.55}, motion=MOVE)], {}, []),
    ("exit: smoothed score falls, end timeout", [Seg(3), Seg(5, {H: 0.9}, motion=MOVE), Seg(20, motion=MOVE)], {},
     [(H, (3, 4.5), (8, 9.01))]),
    ("species switch", [Seg(3), Seg(6, {H: 0.9}, motion=MOVE), Seg(6, {S: 0.9}, motion=MOVE)], {},
     [(H, (3, 4.5), (9, 10.01)), (S, (9, 11), (14.5, 15))]),
    ("same species returns after end_after_s: two sightings",
     [Seg(2), Seg(3, {H: 0.9}, motion=MOVE), Seg(15), Seg(3, {H: 0.9}, motion=MOVE)], {},
     [(H, (2, 3.5), (5, 6.01)), (H, (20, 21.5), (22.5, 23))]),
    ("deny", [Seg(3), Seg(5, {H: 0.9}, motion=MOVE)], {"deny": (H,)}, []),
    ("deny keeps others", [Seg(3), Seg(5, {H: 0.9}, motion=MOVE), Seg(5, {S: 0.9}, motion=MOVE)], {"deny": (H,)},
     [(S, (8, 10), (12.5, 13))]),
    ("allow other species only", [Seg(3), Seg(5, {H: 0.9}, motion=MOVE)], {"allow": (S, M)}, []),
    ("allow this species", [Seg(3), Seg(5, {H: 0.9}, motion=MOVE)], {"allow": (H,)}, [(H, (3, 4.5), (7.5, 8))]),
    ("per-species threshold lowers enter", [Seg(3), Seg(6, {H: 0.5}, motion=MOVE)], {"thresholds": {H: 0.45}},
     [(H, (3, 6), (8.5, 9))]),
    ("per-species threshold raises enter", [Seg(3), Seg(6, {H: 0.9}, motion=MOVE)], {"thresholds": {H: 0.95}}, []),
    ("per-species threshold leaves others alone", [Seg(3), Seg(6, {S: 0.9}, motion=MOVE)],
     {"thresholds": {H: 0.95}}, [(S, (3, 4.5), (8.5, 9))]),
    ("min_frames 4 (started_at stays the first supporting frame)", [Seg(3), Seg(5, {H: 0.9}, motion=MOVE)],
     {"min_frames": 4}, [(H, (3, 4.5), (7.5, 8))]),
    ("min_frames 4 rejects a 1.5 s visit", [Seg(3), Seg(1.5, {H: 0.9}, motion=MOVE), Seg(5, motion=MOVE)],
     {"min_frames": 4}, []),
]


@pytest.mark.parametrize(("name", "segs", "opts", "expected"), CASES, ids=[c[0] for c in CASES])
def test_scene(name, segs, opts, expected):
    events = play(make_tracker(track_options(**opts)), frames(*segs))
    got = sightings(events)
    assert [g["species"] for g in got] == [e[0] for e in expected], got
    for g, (_, (s0, s1), (e0, e1)) in zip(got, expected, strict=True):
        assert g["kinds"][0] == "start" and g["kinds"][-1] == "end", g
        assert g["kinds"].count("start") == 1 and g["kinds"].count("end") == 1, g
        assert s0 <= g["start"] <= s1, g
        assert e0 <= g["end"] <= e1, g


def test_end_by_timeout_comes_from_tick_after_end_after_s():
    tracker = make_tracker()
    items = frames(Seg(2), Seg(3, {H: 0.9}, motion=MOVE))
    events = play(tracker, items, close=False)  # then the stream goes silent
    assert [e.event for e in events][0] == "start" and "end" not in [e.event for e in events]
    last = items[-1][1].captured_at
    assert tracker.tick(last + 9.9) == []
    (end,) = tracker.tick(last + 10.1)
    assert end.event == "end" and end.ended_at == last and end.id == events[0].id
    assert tracker.tick(last + 60) == [] and tracker.close() == []


def test_close_ends_the_open_sighting_at_its_last_supporting_frame():
    tracker = make_tracker()
    items = frames(Seg(2), Seg(4, {H: 0.9}, motion=MOVE))
    events = play(tracker, items, close=False)
    assert tracker.open_sighting == events[0].id
    (end,) = tracker.close()
    assert end.event == "end" and end.id == events[0].id
    assert end.ended_at == items[-1][1].captured_at
    assert end.updated_at == end.ended_at
    assert tracker.open_sighting is None and tracker.close() == []


@pytest.mark.parametrize("score", [0.85, 0.65])
def test_variable_frame_rate_gives_the_same_sighting_as_constant(score):
    rng = __import__("numpy").random.default_rng(7)

    def scene(gaps):
        return [Seg(5, gaps=gaps[0]), Seg(10, {H: score}, motion=MOVE, gaps=gaps[1]), Seg(15, gaps=gaps[2])]

    cfr = sightings(play(make_tracker(), frames(*scene([None] * 3))))
    vfr_gaps = [list(rng.uniform(0.1, 0.5, 200)) for _ in range(3)]
    vfr = sightings(play(make_tracker(), frames(*scene(vfr_gaps))))
    fast = sightings(play(make_tracker(), frames(*[Seg(s.dur, s.scores, fps=10, motion=s.motion)
                                                   for s in scene([None] * 3)])))
    for got in (cfr, vfr, fast):
        assert [g["species"] for g in got] == [H], got
    for got in (vfr, fast):
        # within one 2 fps frame interval plus the other's own spacing
        assert abs(got[0]["start"] - cfr[0]["start"]) <= 1.0, (got, cfr)
        assert abs(got[0]["end"] - cfr[0]["end"]) <= 1.0, (got, cfr)


def test_motion_gated_stream_with_sparse_keepalives_rejects_a_flash():
    # Between bursts of motion only keep-alive samples arrive, 5 s apart: a flash after a gap
    # must not be trusted at face value.
    items = frames(
        Seg(20, fps=0.2, motion=0.0, keepalive=True),
        Seg(0.3, {H: 0.95}, fps=10, motion=MOVE),
        Seg(20, fps=0.2, motion=0.0, keepalive=True),
    )
    assert sightings(play(make_tracker(), items)) == []


@pytest.mark.parametrize("fps", [0.5, 1, 2, 5, 10])
def test_options_for_the_sample_rate_give_similar_sightings(fps):
    opts = track_options().for_sample_fps(fps)
    segs = [Seg(10, fps=fps), Seg(12, {H: 0.85}, fps=fps, motion=MOVE), Seg(20, fps=fps, motion=MOVE)]
    (got,) = sightings(play(make_tracker(opts), frames(*segs)))
    assert got["species"] == H
    assert 10 <= got["start"] <= 10 + max(1.0, 1.0 / fps), got
    assert 22 - max(1.0, 1.0 / fps) <= got["end"] <= 22 + max(1.0, 1.0 / fps), got


def test_tick_without_a_time_uses_the_injected_clock_since_the_last_frame():
    # A file read much faster than real time: frame times are years ago, the clock is what passes.
    wall = [5000.0]
    tracker = make_tracker(clock=lambda: wall[0])
    items = frames(Seg(2), Seg(3, {H: 0.9}, motion=MOVE), start=-3e8)
    for t, frame, p in items:
        tracker.update(Prediction(frame, p))
    assert tracker.open_sighting is not None
    wall[0] += 9.0
    assert tracker.tick() == []
    wall[0] += 1.6
    (end,) = tracker.tick()
    assert end.event == "end" and end.ended_at == items[-1][1].captured_at
    assert make_tracker().tick() == []


@pytest.mark.parametrize("fps", [2, 10])
def test_classifier_noise_makes_no_sighting(fps):
    rng = __import__("numpy").random.default_rng(fps)
    items = frames(Seg(120, fps=fps, motion=MOVE))
    noisy = [(t, f, rng.dirichlet([0.5] * len(p)).astype(p.dtype)) for t, f, p in items]
    assert max(p.max() for _, _, p in noisy) > 0.9  # single frames do look confident
    assert sightings(play(make_tracker(), noisy)) == []


def test_importing_the_tracker_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, birdstream.track; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_wall_clock_set_back_splits_once_then_tracks_on_the_new_time():
    """Live frames carry wall-clock time; the daemon ticks without a time (steady clock)."""
    steady = [0.0]
    tracker = make_tracker(track_options(), clock=lambda: steady[0])
    bird, empty = Seg(1, {H: 0.9}, motion=MOVE), Seg(1, motion=MOVE)
    events = []
    # 10 s of bird, then the clock is set back an hour; the bird stays 20 s more, then leaves for 30 s.
    for second, seg, offset in [*[(s, bird, 0.0) for s in range(10)], *[(s, bird, -3600.0) for s in range(10, 30)],
                                *[(s, empty, -3600.0) for s in range(30, 60)]]:
        for t, frame, p in frames(seg, start=second + offset):
            steady[0] = second + (t - second - offset)
            events += tracker.update(Prediction(frame=frame, probs=p))
        steady[0] = second + 1.0
        events += tracker.tick()
    got = sightings(events)
    assert [g["kinds"].count("start") for g in got] == [1, 1], got
    assert all(g["kinds"][-1] == "end" for g in got), got
    assert -3600 + 10 <= got[1]["start"] <= -3600 + 12 and -3600 + 29 <= got[1]["end"] <= -3600 + 32, got
