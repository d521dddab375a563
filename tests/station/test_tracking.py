"""The tracker thread: the engine's batches are tracked off the inference thread, in order, and
nothing handed over is lost at stop."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from birdstream.messages import Frame, Prediction, SightingEvent
from birdstream.station.tracking import TrackerThread
from tests.track.scenes import Seg, frames, make_tracker, play

SCENE = (Seg(4), Seg(12, {"Eurasian Hoopoe": 0.9}, motion=0.05), Seg(6), Seg(10, {"Laughing Dove": 0.85}, motion=0.05))


def _batches(items: list[tuple[float, Frame, np.ndarray]], size: int) -> list[list[Prediction]]:
    preds = [Prediction(frame=f, probs=p) for _, f, p in items]
    return [preds[i : i + size] for i in range(0, len(preds), size)]


class Sink:
    def __init__(self) -> None:
        self.events: list[SightingEvent] = []
        self.threads: set[str] = set()

    def __call__(self, events: list[SightingEvent]) -> None:
        self.threads.add(threading.current_thread().name)
        self.events.extend(events)


def test_events_match_the_tracker_fed_inline_and_stop_loses_nothing() -> None:
    items = frames(*SCENE)
    expected = play(make_tracker(), items, tick_every=1e9)  # no ticks: updates, then close at the end
    sink = Sink()
    tracking = TrackerThread(sink, max_batches=2)  # a small queue: the submitter waits, loses nothing
    tracking.start()
    tracking.add("feeder", make_tracker())
    for batch in _batches(items, 5):
        tracking.submit(batch)
    assert tracking.stop(10)  # runs every queued batch, then ends the open sighting
    assert sink.events == expected
    assert [e.event for e in expected].count("end") == 2
    assert sink.threads == {"track"}
    assert tracking.updates == len(items)


def test_a_stream_closed_after_its_predictions_ends_after_them() -> None:
    items = frames(Seg(2), Seg(10, {"Eurasian Hoopoe": 0.9}, motion=0.05))
    sink = Sink()
    tracking = TrackerThread(sink)
    tracking.start()
    try:
        tracking.add("feeder", make_tracker())
        for batch in _batches(items, 4):
            tracking.submit(batch)
        tracking.close_stream("feeder")  # queued behind the batches: it sees every frame first
        kinds = [e.event for e in sink.events]
        assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("end") == 1
        assert sink.events[-1].ended_at == items[-1][1].captured_at  # the last frame handed over counted
        assert [e.seq for e in sink.events] == list(range(len(sink.events)))
    finally:
        tracking.stop(10)


def test_a_failing_tracker_stops_the_thread_and_the_next_hand_over_says_so() -> None:
    class Broken:
        def update(self, pred: Prediction) -> list[SightingEvent]:
            raise ValueError("tracker bug")

        def tick(self, now: float | None = None) -> list[SightingEvent]:
            return []

        def close(self, now: float | None = None) -> list[SightingEvent]:
            return []

    tracking = TrackerThread(Sink())
    tracking.start()
    tracking.add("feeder", Broken())
    _, frame, p = frames(Seg(1))[0]
    tracking.submit([Prediction(frame, p)])
    assert tracking.stop(10)
    assert isinstance(tracking.error, ValueError)
    with pytest.raises(RuntimeError, match="tracker thread failed: tracker bug"):
        tracking.submit([Prediction(frame, p)])
