"""What each event carries: id, seq, times, media times, frames, score, top, best image; and config checks."""

from __future__ import annotations

import numpy as np
import pytest

from birdstream.errors import ConfigError
from birdstream.messages import Frame, Prediction
from tests.track.scenes import CLASSES, T0, Seg, frames, make_tracker, play, probs
from tests.support.options import track_options

H, S = "Eurasian Hoopoe", "House Sparrow"
MOVE = 0.05


def test_event_fields_of_one_visit():
    items = frames(Seg(3), Seg(6, {H: 0.9}, motion=MOVE), Seg(3, motion=MOVE))
    events = play(make_tracker(track_options(update_min_delta=0.05)), items)
    assert [e.event for e in events][0] == "start" and events[-1].event == "end"
    assert {e.id for e in events} == {"id-0"}
    assert [e.seq for e in events] == list(range(len(events)))
    assert "update" in [e.event for e in events]
    start, end = events[0], events[-1]
    first_support = start.started_at
    assert 3 <= first_support - T0 <= 4.5
    assert all(e.started_at == first_support for e in events)
    assert all(e.ended_at is None and e.media_end_s is None for e in events[:-1])
    assert end.ended_at == end.updated_at and 9 <= end.ended_at - T0 <= 10
    # live-like media times follow the frames' media_time (here = seconds from T0)
    assert end.media_start_s == pytest.approx(first_support - T0)
    assert end.media_end_s == pytest.approx(end.ended_at - T0)
    assert [e.frames for e in events] == sorted(e.frames for e in events)
    supporting = [f for t, f, _ in items if first_support <= f.captured_at <= end.ended_at]
    assert end.frames == len(supporting)
    assert all(e.species == H and e.station == "garden" and e.stream == "feeder" for e in events)
    assert all(e.model == "planted@0123456789ab" for e in events)
    # scores are smoothed (the first frame of the bird is not yet 0.9) and rise over updates
    assert 0.6 <= start.score < 0.9
    assert [e.score for e in events[:-1]] == sorted(e.score for e in events[:-1])
    assert end.score == pytest.approx(max(e.score for e in events), abs=1e-9) and end.score <= 0.9 + 1e-9
    for e in events:
        assert len(e.top) == 5 and e.top[0][0] == H and e.top[0][1] == pytest.approx(e.score)
        assert [p for _, p in e.top] == sorted((p for _, p in e.top), reverse=True)
        assert {n for n, _ in e.top} == set(CLASSES)
    payload = end.to_payload()
    assert payload["event"] == "end" and payload["ended_at"].endswith("Z")


def test_media_times_are_none_for_live_frames():
    events = play(make_tracker(), frames(Seg(3), Seg(4, {H: 0.9}, motion=MOVE), media=False))
    assert events and all(e.media_start_s is None and e.media_end_s is None for e in events)


def test_best_image_is_the_full_picture_of_the_highest_scoring_supporting_frame():
    tracker = make_tracker()
    scores = [0.2, 0.2, 0.8, 0.85, 0.97, 0.8, 0.75]
    events = []
    for i, sc in enumerate(scores):
        full = np.full((8, 8, 3), i, dtype=np.uint8)
        frame = Frame("feeder", i, np.zeros((4, 4, 3), np.uint8), T0 + i * 0.5, motion=MOVE, full=full)
        events += tracker.update(Prediction(frame, probs({H: sc})))
    events += tracker.close()
    assert all(e.best_image is not None for e in events)
    assert int(events[-1].best_image[0, 0, 0]) == 4
    # without a full-resolution picture the model-size image is kept
    tracker = make_tracker()
    for i, sc in enumerate(scores):
        frame = Frame("feeder", i, np.full((4, 4, 3), i, np.uint8), T0 + i * 0.5, motion=MOVE)
        tracker.update(Prediction(frame, probs({H: sc})))
    (end,) = tracker.close()
    assert end.best_image.shape == (4, 4, 3) and int(end.best_image[0, 0, 0]) == 4


@pytest.mark.parametrize(
    ("opts", "min_updates", "max_updates"),
    [
        ({"update_min_delta": 0, "update_every_s": 0}, 0, 0),
        ({"update_min_delta": 0, "update_every_s": 10}, 5, 6),
        ({"update_min_delta": 0.05, "update_every_s": 0}, 1, 4),
    ],
)
def test_update_policy(opts, min_updates, max_updates):
    events = play(make_tracker(track_options(**opts)), frames(Seg(2), Seg(62, {H: 0.9}, motion=MOVE)))
    n = [e.event for e in events].count("update")
    assert min_updates <= n <= max_updates, [(e.event, e.updated_at - T0) for e in events]


def test_ids_come_from_the_factory_and_each_sighting_starts_at_seq_0():
    events = play(make_tracker(), frames(Seg(3), Seg(5, {H: 0.9}, motion=MOVE), Seg(5, {S: 0.9}, motion=MOVE)))
    assert sorted({e.id for e in events}) == ["id-0", "id-1"]
    for sid in ("id-0", "id-1"):
        seqs = [e.seq for e in events if e.id == sid]
        assert seqs == list(range(len(seqs)))


def test_default_ids_are_uuids():
    import uuid

    from birdstream.track import SightingTracker

    tracker = SightingTracker(station="g", stream_id="c", class_names=CLASSES, model_id="m@0", options=track_options())
    events = play(tracker, frames(Seg(3), Seg(3, {H: 0.9}, motion=MOVE)))
    assert uuid.UUID(events[0].id).version == 4 and len({e.id for e in events}) == 1


def test_bad_prediction_is_dropped_not_raised():
    tracker = make_tracker()
    frame = Frame("feeder", 0, np.zeros((4, 4, 3), np.uint8), T0, motion=MOVE)
    assert tracker.update(Prediction(frame, np.ones(3, np.float32))) == []
    assert tracker.update(Prediction(frame, np.full(len(CLASSES), np.nan, np.float32))) == []
    for bad in (np.nan, np.inf, -np.inf):  # one bad value among good ones is enough
        one = np.full(len(CLASSES), 1.0 / len(CLASSES), np.float32)
        one[-1] = bad
        assert tracker.update(Prediction(frame, one)) == []


def test_top_is_the_k_best_in_order_with_ties_by_class_order():
    from birdstream.track import SightingTracker

    names = [f"species {i:03d}" for i in range(735)]
    rng = np.random.default_rng(3)
    tracker = SightingTracker(station="g", stream_id="c", class_names=names, model_id="m@0",
                              options=track_options(top_k=5))
    for _ in range(50):
        s = rng.integers(0, 20, 735).astype(np.float64) / 20  # many ties, at the cut too
        expected = np.argsort(-s, kind="stable")[:5]
        assert tracker._top(s) == tuple((names[i], float(s[i])) for i in expected)


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"allow": ("Eurasian Hopoe",)}, "sightings.allow: unknown species 'Eurasian Hopoe' for this model "
                                         "(did you mean 'Eurasian Hoopoe'?)"),
        ({"deny": ("Sparrow, House",)}, "sightings.deny: unknown species 'Sparrow, House'"),
        ({"thresholds": {"Laughing Dov": 0.7}}, "(did you mean 'Laughing Dove'?)"),
        ({"allow": ("Zebra",)}, "sightings.allow: unknown species 'Zebra' for this model"),
        ({"allow": ("eurasian_hoopoe",), "deny": ("Eurasian Hoopoe",)}, "is also in sightings.allow"),
    ],
)
def test_unknown_species_names_are_config_errors(opts, message):
    with pytest.raises(ConfigError) as err:
        make_tracker(track_options(**opts))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_species_names_ignore_case_and_underscores():
    tracker = make_tracker(track_options(allow=("eurasian_hoopoe",), thresholds={"HOUSE SPARROW": 0.7}))
    assert tracker.options.allow == (H,) and dict(tracker.options.thresholds) == {S: 0.7}


@pytest.mark.parametrize(
    ("opts", "key"),
    [
        ({"enter_score": 1.5}, "sightings.enter_score"),
        ({"enter_score": 0.5, "exit_score": 0.6}, "sightings.exit_score"),
        ({"min_frames": 0}, "sightings.min_frames"),
        ({"end_after_s": 0}, "sightings.end_after_s"),
        ({"smoothing_s": -1}, "sightings.smoothing_s"),
        ({"top_k": 0}, "sightings.top_k"),
        ({"thresholds": {H: 0}}, "sightings.thresholds['Eurasian Hoopoe']"),
        ({"motion_min": float("nan")}, "sightings.motion_min"),
    ],
)
def test_bad_numbers_are_config_errors_naming_the_key(opts, key):
    with pytest.raises(ConfigError, match=r"^" + __import__("re").escape(key)):
        track_options(**opts)


def test_options_are_hashable_and_adapt_to_the_sample_rate():
    a = track_options(thresholds={H: 0.7}, allow=[H, S])
    assert hash(a) == hash(track_options(thresholds={H: 0.7}, allow=(H, S))) and a.allow == (H, S)
    assert a.for_sample_fps(4).max_frame_s == 0.25 and a.for_sample_fps(4).thresholds == {H: 0.7}
    with pytest.raises(ConfigError, match="sample_fps"):
        a.for_sample_fps(0)
