"""Random prediction sequences: every started sighting ends exactly once; seq and (id, seq) stay sound."""

from __future__ import annotations

import numpy as np
import pytest

from birdstream.messages import Frame, Prediction
from tests.track.scenes import CLASSES, T0, make_tracker
from tests.support.options import track_options


def random_run(seed: int) -> list:
    rng = np.random.default_rng(seed)
    opts = track_options(
        min_frames=int(rng.integers(1, 4)),
        smoothing_s=float(rng.choice([0.0, 0.5, 1.0, 3.0])),
        end_after_s=float(rng.choice([1.0, 5.0, 10.0])),
        update_min_delta=float(rng.choice([0.0, 0.02, 0.1])),
        update_every_s=float(rng.choice([0.0, 2.0])),
        scenery=bool(rng.integers(0, 2)),
        still_limit_s=float(rng.choice([0.0, 20.0])),
    )
    tracker = make_tracker(opts)
    events = []
    t = 0.0
    favourite = int(rng.integers(len(CLASSES)))
    for seq in range(int(rng.integers(50, 400))):
        t += float(rng.choice([0.0, 0.1, 0.5, 1.0, 3.0, 12.0], p=[0.05, 0.3, 0.4, 0.15, 0.07, 0.03]))
        if rng.random() < 0.05:
            favourite = int(rng.integers(len(CLASSES)))
        p = rng.dirichlet(np.full(len(CLASSES), 0.3))
        if rng.random() < 0.7:
            p = 0.3 * p + 0.7 * np.eye(len(CLASSES))[favourite]
        motion = rng.choice([None, 0.0, 0.002, 0.05, 0.5])
        frame = Frame("feeder", seq, np.zeros((2, 2, 3), np.uint8), T0 + t, media_time=t, motion=motion,
                      keepalive=bool(rng.random() < 0.1))
        events += tracker.update(Prediction(frame, p.astype(np.float32)))
        if rng.random() < 0.2:
            events += tracker.tick(T0 + t + float(rng.uniform(0, 15)))
    events += tracker.close()
    return events


@pytest.mark.parametrize("seed", range(40))
def test_random_sequences_keep_the_sighting_rules(seed):
    events = random_run(seed)
    pairs = [(e.id, e.seq) for e in events]
    assert len(pairs) == len(set(pairs))
    by_id: dict[str, list] = {}
    for e in events:
        by_id.setdefault(e.id, []).append(e)
    open_ids = []
    for e in events:  # at most one sighting open per stream at a time
        if e.event == "start":
            assert not open_ids, (open_ids, e.id)
            open_ids.append(e.id)
        elif e.event == "end":
            assert open_ids == [e.id]
            open_ids.clear()
        else:
            assert open_ids == [e.id]
    assert not open_ids
    for evs in by_id.values():
        kinds = [e.event for e in evs]
        assert kinds[0] == "start" and kinds[-1] == "end"
        assert kinds.count("start") == 1 and kinds.count("end") == 1
        assert [e.seq for e in evs] == list(range(len(evs)))
        end = evs[-1]
        assert end.started_at <= end.ended_at
        assert all(e.started_at == end.started_at and e.species == end.species for e in evs)
        assert [e.frames for e in evs] == sorted(e.frames for e in evs) and end.frames >= 1
        assert [e.updated_at for e in evs] == sorted(e.updated_at for e in evs)
        assert all(0.0 <= e.score <= 1.0 + 1e-9 for e in evs)


def test_random_sequences_do_produce_sightings():
    assert sum(1 for seed in range(40) for e in random_run(seed) if e.event == "start") > 40
