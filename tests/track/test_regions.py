"""Per-region tracks: association by overlap and distance, one sighting per bird, the same species once."""

from __future__ import annotations

import numpy as np

from birdstream.messages import Frame, Prediction, Region, SightingEvent
from birdstream.track.regions import RegionTracker
from tests.support.options import track_options
from tests.track.scenes import CLASSES, T0, probs

W, H = 1920, 1080
EMPTY = probs()


def region(x: int, y: int, size: int = 50, motion: float = 0.5) -> Region:
    return Region(box=(x / W, y / H, size / W, size / H), pixels=(x, y, size, size),
                  image=np.zeros((8, 8, 3), np.uint8), motion=motion)


def feed(tracker: RegionTracker, samples: list[list[tuple[Region, str]]], fps: float = 2.0) -> list[SightingEvent]:
    """One frame per sample: its regions with the species each crop shows; the whole frame is empty."""
    events: list[SightingEvent] = []
    for i, sample in enumerate(samples):
        frame = Frame(stream_id="cam", seq=i, image=np.zeros((8, 8, 3), np.uint8), captured_at=T0 + i / fps,
                      motion=0.001, regions=tuple(r for r, _ in sample))
        events += tracker.update(Prediction(frame, EMPTY, tuple(probs({s: 0.9}) for _, s in sample)))
    return events + tracker.close()


def tracker() -> RegionTracker:
    return RegionTracker(station="s", stream_id="cam", class_names=CLASSES, model_id="m@000000000000",
                         options=track_options(smoothing_s=0.0, min_frames=2))


def sightings(events: list[SightingEvent]) -> dict[str, list[SightingEvent]]:
    out: dict[str, list[SightingEvent]] = {}
    for e in events:
        out.setdefault(e.id, []).append(e)
    return out


def test_a_bird_hopping_across_the_view_is_one_sighting_with_its_box() -> None:
    # Hops of 1.5 box sizes between samples: no overlap, but near enough to be the same bird.
    samples = [[(region(300 + 75 * i, 500), "House Sparrow")] for i in range(10)]
    t = tracker()
    events = feed(t, samples)
    (story,) = sightings(events).values()
    assert [e.event for e in story][0] == "start" and story[-1].event == "end"
    assert story[-1].frames == 10 and story[-1].box is not None and story[-1].box[1] == 500 / H


def test_two_species_at_once_are_two_overlapping_sightings() -> None:
    samples = [[(region(200 + 20 * i, 600), "House Sparrow"), (region(1600 - 20 * i, 300), "Common Myna")]
               for i in range(8)]
    found = {s[0].species: s for s in sightings(feed(tracker(), samples)).values()}
    assert sorted(found) == ["Common Myna", "House Sparrow"]
    sparrow, myna = found["House Sparrow"], found["Common Myna"]
    assert sparrow[-1].box[0] < 0.5 < myna[-1].box[0]
    assert sparrow[0].started_at < myna[-1].ended_at and myna[0].started_at < sparrow[-1].ended_at


def test_the_same_species_in_two_places_is_one_sighting_until_it_ends() -> None:
    both = [[(region(200, 600), "House Sparrow"), (region(1600, 300), "House Sparrow")] for _ in range(6)]
    right_only = [[(region(1600, 300), "House Sparrow")] for _ in range(30)]  # the left one flew off
    events = feed(tracker(), both + right_only)
    stories = list(sightings(events).values())
    # One sighting while both were there; the left one's ended (end_after_s), then the right one started.
    assert [s[0].box[0] < 0.5 for s in stories] == [True, False]
    assert stories[1][0].started_at >= stories[0][-1].ended_at
