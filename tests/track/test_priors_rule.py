"""How a prior weight acts in the tracker, on hand-made scores where the planted model cannot go."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone

import numpy as np

from birdstream.messages import Frame, Prediction
from tests.support.options import track_options as TrackOptions
from birdstream.track.priors import MONTHS, PriorTable
from birdstream.track.stills import StillsTracker
from tests.track.scenes import CLASSES, Seg, frames, make_tracker, play, sightings


def _table(**weights: float) -> PriorTable:
    """Every month the same weight per species (species given by index into CLASSES)."""
    rows = tuple((CLASSES[int(k[1:])], (w,) * len(MONTHS), n + 2) for n, (k, w) in enumerate(weights.items()))
    return PriorTable("test.csv", rows)


def test_a_ruled_out_species_does_not_hand_its_frames_to_the_runner_up() -> None:
    # With a low enter score two species can both be above it: the top one is ruled out, and the
    # runner-up, which would qualify on its own score, is not promoted in its place.
    scene = frames(Seg(2, {}), Seg(6, {CLASSES[1]: 0.5, CLASSES[2]: 0.4}), Seg(12, {}))
    low = TrackOptions(scenery=False, enter_score=0.3, exit_score=0.2)
    assert [s["species"] for s in sightings(play(make_tracker(low), scene))] == [CLASSES[1]]
    ruled_out = TrackOptions(scenery=False, enter_score=0.3, exit_score=0.2, priors=_table(c1=0.0))
    assert sightings(play(make_tracker(ruled_out), scene)) == []
    # The same through priors_default: species not in the file take it.
    only_listed = TrackOptions(scenery=False, enter_score=0.3, exit_score=0.2, priors=_table(c2=1.0),
                               priors_default=0.0)
    assert sightings(play(make_tracker(only_listed), scene)) == []


def test_a_low_weight_asks_for_a_higher_score() -> None:
    scene = frames(Seg(2, {}), Seg(10, {CLASSES[1]: 0.8}), Seg(12, {}))
    plain = TrackOptions(scenery=False)
    assert len(sightings(play(make_tracker(plain), scene))) == 1
    # weight 0.3: 0.6 / (0.6 + 0.3 * 0.4) = 0.83 > 0.8, however long the bird stays.
    low = TrackOptions(scenery=False, priors=_table(c1=0.3))
    assert sightings(play(make_tracker(low), scene)) == []
    events = play(make_tracker(low), frames(Seg(2, {}), Seg(10, {CLASSES[1]: 0.95}), Seg(12, {})))
    assert {e.prior for e in events} == {0.3} and len(sightings(events)) == 1


def test_a_lone_still_is_held_to_the_score_only() -> None:
    t = datetime(2026, 5, 1, 6, 0, tzinfo=timezone.utc).timestamp()
    ids = (f"id-{i}" for i in itertools.count())

    def still(score: float) -> list[Prediction]:
        p = np.full(len(CLASSES), (1 - score) / (len(CLASSES) - 1), dtype=np.float32)
        p[1] = score
        frame = Frame("card", 0, np.zeros((4, 4, 3), np.uint8), t, source="/card/a.jpg")
        return [Prediction(frame, p)]

    def run(score: float) -> list:
        tracker = StillsTracker(station="s", class_names=CLASSES, model_id="m@0123456789ab",
                                options=TrackOptions(priors=_table(c1=0.5)), id_factory=lambda: next(ids))
        return [e for p in still(score) for e in tracker.update(p)] + tracker.close()

    assert run(0.7) == []  # weight 0.5 needs 0.75
    assert [e.event for e in run(0.8)] == ["start", "end"]


def test_weight_one_changes_nothing() -> None:
    scene = frames(Seg(2, {}), Seg(3, {CLASSES[1]: 0.9}), Seg(12, {}), Seg(5, {CLASSES[3]: 0.7}), Seg(12, {}))
    plain = play(make_tracker(TrackOptions(scenery=False)), scene)
    ones = play(make_tracker(TrackOptions(scenery=False, priors=_table(c1=1.0, c3=1.0))), scene)
    assert [(e.species, e.event, e.started_at, e.frames) for e in plain] == \
        [(e.species, e.event, e.started_at, e.frames) for e in ones]
