"""Prometheus metrics of the tracker, defined once."""

from __future__ import annotations

from prometheus_client import Counter

SIGHTING_EVENTS = Counter(
    "birdstream_sighting_events_total",
    "Sighting events produced by the tracker",
    ["stream", "event"],
)
HELD_BACK = Counter(
    "birdstream_track_held_back_total",
    "Frames whose top species was above its enter score but could not start a sighting",
    ["stream", "reason"],
)
SCENERY_ENDED = Counter(
    "birdstream_track_scenery_ended_total",
    "Sightings ended because nothing moved for still_limit_s (treated as scenery from then on)",
    ["stream"],
)
BAD_PREDICTIONS = Counter(
    "birdstream_track_bad_predictions_total",
    "Predictions dropped by the tracker (wrong length or not finite)",
    ["stream"],
)
CLOCK_JUMPS = Counter(
    "birdstream_track_clock_jumps_total",
    "Times a stream's frame times went back by more than end_after_s (the wall clock was set back)",
    ["stream"],
)
