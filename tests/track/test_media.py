"""MediaTracker: one source's live/video frames and stills, each through the tracker that fits."""

from __future__ import annotations

import numpy as np

from birdstream.messages import Frame, Prediction
from birdstream.track.router import MediaTracker
from tests.track.scenes import CLASSES, T0, probs
from tests.support.options import track_options

BIRD = {"Eurasian Hoopoe": 0.95}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def pred(t: float, scores: dict[str, float], *, source: str | None, media: float | None,
         motion: float | None = 0.2) -> Prediction:
    frame = Frame(stream_id="trap", seq=0, image=np.zeros((2, 2, 3), np.uint8), captured_at=T0 + t,
                  media_time=media, source=source, motion=motion)
    return Prediction(frame, probs(scores))


def tracker(clock: Clock) -> MediaTracker:
    return MediaTracker(station="s", class_names=CLASSES, model_id="m@0", options=track_options(smoothing_s=0.5),
                        stream_of=lambda frame: frame.source or "live", clock=clock)


def test_a_lone_still_is_a_sighting_once_no_burst_partner_can_come() -> None:
    clock = Clock()
    t = tracker(clock)
    assert t.update(pred(0, BIRD, source="/card/a.jpg", media=None, motion=0.0)) == []
    clock.now = 5.0
    assert t.tick() == []  # another still may still join a burst
    clock.now = 11.0
    events = t.tick()
    assert [(e.event, e.stream, e.species, e.frames) for e in events] == [
        ("start", "/card/a.jpg", "Eurasian Hoopoe", 1), ("end", "/card/a.jpg", "Eurasian Hoopoe", 1)]


def test_video_files_each_get_their_own_sightings_and_a_still_ends_a_clip() -> None:
    clock = Clock()
    t = tracker(clock)
    events = []
    for i in range(8):  # a bird through clip 1
        events += t.update(pred(i * 0.5, BIRD if i >= 1 else {}, source="/card/1.mp4", media=i * 0.5))
    for i in range(8):  # and again through clip 2, right after
        events += t.update(pred(4 + i * 0.5, BIRD if i >= 1 else {}, source="/card/2.mp4", media=i * 0.5))
    events += t.update(pred(9, {}, source="/card/3.jpg", media=None))
    events += t.close()
    starts = [e for e in events if e.event == "start"]
    ends = [e for e in events if e.event == "end"]
    assert [e.stream for e in starts] == ["/card/1.mp4", "/card/2.mp4"]
    assert {e.id for e in starts} == {e.id for e in ends}
    assert all(e.media_start_s is not None for e in starts)


def test_live_frames_use_one_tracker_and_motion_rules() -> None:
    clock = Clock()
    t = tracker(clock)
    scenery = []
    for i in range(10):  # an unmoving object from the first frame: scenery, no sighting
        scenery += t.update(pred(i * 0.5, BIRD, source=None, media=None, motion=0.0))
    assert scenery == []
