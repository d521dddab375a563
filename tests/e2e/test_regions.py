"""Localise, then classify: small birds found on full-resolution crops, one sighting per bird, with a box.

Real 1080p videos made by the test, the planted checkpoint (its class follows the colour of the
object, and it needs the object to cover about 6 % of what it sees), the real classify driver.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from prometheus_client import REGISTRY

from birdstream.config import config_from_dict
from birdstream.engine.classifier import Classifier
from birdstream.ingest.files import iter_frames
from birdstream.ingest.reader import StreamReader
from birdstream.messages import Prediction, SightingEvent
from birdstream.publish.snapshots import scene_path
from birdstream.station.live import LivePipeline
from birdstream.station.offline import OfflineRun
from birdstream.track.tracker import SightingTracker
from birdstream.station import wiring
from tests.e2e.conftest import BLUE, RED
from tests.support.daemon import wait_until
from tests.support.planted import PLANTED_COLOURS
from tests.support.video import Box, make_still, make_video

GREEN = PLANTED_COLOURS["Green Bee-eater"]
HD = (1920, 1080)
BIRD_PX = 50  # 2500 of 2 073 600 pixels: 0.12 % of the frame


def flight(rgb: tuple[int, int, int], x0: int, y: int, dx: int, *, start: float = 1.0, end: float = 7.0,
           step: float = 0.2, size: int = BIRD_PX) -> list[Box]:
    """A square bird moving dx pixels every `step` seconds from (x0, y), visible from start to end."""
    boxes, t, x = [], start, x0
    while t < end - 1e-9:
        boxes.append(Box(rgb, (int(x), y, size, size), t, min(end, t + step)))
        t, x = t + step, x + dx
    return boxes


def run(video: Path, tmp: Path, planted: Path, regions: dict | None = None) -> list[SightingEvent]:
    config = config_from_dict({"regions": regions or {}}, base_dir=tmp, require_streams=False)
    return list(OfflineRun(Classifier.load(str(planted), "cpu", "fp32"), config, sample_fps=5).events(video))


def by_sighting(events: Sequence[SightingEvent]) -> dict[str, list[SightingEvent]]:
    out: dict[str, list[SightingEvent]] = {}
    for event in events:
        out.setdefault(event.id, []).append(event)
    return out


def covers(box: Sequence[float] | None, x_px: tuple[float, float], y_px: float) -> bool:
    """The box (fractions of HD) overlaps the bird's horizontal path and holds its centre line."""
    assert box is not None
    x, y, w, h = box[0] * HD[0], box[1] * HD[1], box[2] * HD[0], box[3] * HD[1]
    return x <= x_px[1] and x + w >= x_px[0] and y <= y_px <= y + h


@pytest.fixture(scope="module")
def small_bird(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("small")
    return make_video(tmp / "small.mp4", duration_s=8, fps=10, size=HD, objects=flight(RED, 300, 500, 20))


def test_a_small_moving_bird_in_1080p_is_found_with_its_box(tmp_path: Path, planted: Path, small_bird: Path) -> None:
    events = run(small_bird, tmp_path, planted)
    sightings = by_sighting(events)
    assert len(sightings) == 1, [(e.event, e.species) for e in events]
    (story,) = sightings.values()
    assert [e.event for e in story][0] == "start" and story[-1].event == "end"
    assert {e.species for e in story} == {"Scarlet Tanager"}
    box = story[-1].box
    assert covers(box, (300, 300 + 30 * 20 + BIRD_PX), 500 + BIRD_PX / 2), box
    assert box[2] * box[3] < 0.02  # a bird-sized box, not the frame
    assert 1.0 <= story[0].media_start_s <= 2.5 and 6.0 <= story[-1].media_end_s <= 8.0


def test_without_regions_the_same_small_bird_is_missed(tmp_path: Path, planted: Path, small_bird: Path) -> None:
    assert run(small_bird, tmp_path, planted, {"enabled": False}) == []


def test_two_birds_on_two_sides_are_two_overlapping_sightings_with_their_boxes(tmp_path: Path, planted: Path) -> None:
    video = make_video(tmp_path / "two.mp4", duration_s=8, fps=10, size=HD,
                       objects=flight(RED, 200, 600, 15) + flight(BLUE, 1600, 300, -15, start=1.4), seed=3)
    sightings = by_sighting(run(video, tmp_path, planted))
    species = {story[0].species: story for story in sightings.values()}
    assert sorted(species) == ["Indian Roller", "Scarlet Tanager"], [s[0].species for s in sightings.values()]
    red, blue = species["Scarlet Tanager"], species["Indian Roller"]
    assert covers(red[-1].box, (200, 200 + 30 * 15 + BIRD_PX), 600 + BIRD_PX / 2)
    assert covers(blue[-1].box, (1600 - 30 * 15, 1600 + BIRD_PX), 300 + BIRD_PX / 2)
    assert red[-1].box[0] < 0.5 < blue[-1].box[0]
    # They overlap in time: each started before the other ended.
    assert red[0].started_at < blue[-1].ended_at and blue[0].started_at < red[-1].ended_at


def test_a_static_object_from_the_start_beside_a_moving_bird_gives_only_the_bird(tmp_path: Path, planted: Path) -> None:
    # The static one covers 8 % of the frame: the whole frame alone would call it a Green Bee-eater.
    still = Box(GREEN, (1300, 600, 480, 360), 0.0)
    video = make_video(tmp_path / "scenery.mp4", duration_s=9, fps=10, size=HD,
                       objects=[still, *flight(RED, 200, 200, 20, start=2.0, end=8.0)], seed=5)
    events = run(video, tmp_path, planted)
    assert {e.species for e in events} == {"Scarlet Tanager"}, [(e.event, e.species, e.box) for e in events]
    assert all(e.box is not None and e.box[0] < 0.5 for e in events)


def test_regions_disabled_gives_the_whole_frame_events_exactly(tmp_path: Path, planted: Path) -> None:
    video = make_video(tmp_path / "whole.mp4", duration_s=8, fps=10,
                       objects=[Box(RED, (110, 70, 100, 90), 1.0, 3.5), Box(BLUE, (60, 40, 120, 100), 4.0, 7.0)])
    classifier = Classifier.load(str(planted), "cpu", "fp32")
    config = config_from_dict({"regions": {"enabled": False}}, base_dir=tmp_path, require_streams=False)
    events = list(OfflineRun(classifier, config, sample_fps=5).events(video))
    # Today's path by hand: whole frames only, straight into one SightingTracker.
    spec = wiring.classify_spec(video, sample_fps=5)
    tracker = SightingTracker(station=config.station, stream_id=video.name, class_names=classifier.class_names,
                              model_id=classifier.model_id,
                              options=wiring.track_options(config.sightings, classifier.class_names, 5))
    expected: list[SightingEvent] = []
    for frame in iter_frames(spec, classifier.input_size):
        assert frame.regions == ()
        expected += tracker.update(Prediction(frame, classifier(frame.image[None])[0]))
    expected += tracker.close()

    def key(e: SightingEvent) -> tuple:
        return (e.event, e.species, e.seq, e.started_at, e.updated_at, e.ended_at, e.frames,
                e.media_start_s, e.media_end_s, e.box)

    assert len(expected) >= 4  # two sightings, each at least a start and an end
    assert [key(e) for e in events] == [key(e) for e in expected]
    # Scores too (batched there, one by one here: float sums may differ in the last bits).
    assert all(abs(a.score - b.score) < 1e-5 for a, b in zip(events, expected))
    assert all(e.to_payload()["box"] is None for e in events)


def test_whole_frame_scenes_are_still_found_with_regions_on(tmp_path: Path, planted: Path) -> None:
    """A bird filling a large part of the view is judged on the whole frame (box null), as before."""
    video = make_video(tmp_path / "big.mp4", duration_s=6, fps=10, objects=[Box(RED, (60, 40, 200, 160), 1.0, 4.5)])
    events = run(video, tmp_path, planted)
    assert {e.species for e in events} == {"Scarlet Tanager"}
    assert len(by_sighting(events)) == 1
    assert all(e.box is None for e in events)
    whole = run(video, tmp_path, planted, {"enabled": False})
    assert [(e.event, e.media_start_s, e.media_end_s, e.frames) for e in events] == \
        [(e.event, e.media_start_s, e.media_end_s, e.frames) for e in whole]


def test_the_daemon_publishes_boxes_and_keeps_the_crop_and_the_boxed_scene(tmp_path: Path, planted: Path,
                                                                           small_bird: Path) -> None:

    state = tmp_path / "state"
    config = config_from_dict({
        "station": "garden", "state_dir": str(state), "model": {"weights": str(planted)},
        "streams": [{"id": "feeder", "url": str(small_bird), "sample_fps": 5}],
        "mqtt": {"enabled": False}, "snapshots": {"enabled": True},
    }, base_dir=tmp_path)
    publisher = wiring.publisher(config)
    publisher.start()
    pipeline = LivePipeline(config, Classifier.load(str(planted), "cpu", "fp32"), publisher)
    pipeline.start()
    log = state / "sightings.jsonl"
    try:
        wait_until(lambda: log.exists() and '"end"' in log.read_text(), 120, "the small bird's sighting ended")
    finally:
        pipeline.stop()
        publisher.close()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert {e["species"] for e in events} == {"Scarlet Tanager"} and len({e["id"] for e in events}) == 1
    end = events[-1]
    assert end["event"] == "end" and covers(end["box"], (300, 300 + 30 * 20 + BIRD_PX), 500 + BIRD_PX / 2)
    crop = np.asarray(Image.open(state / end["snapshot"]))
    scene = np.asarray(Image.open(state / scene_path(end["snapshot"])))
    assert crop.shape[0] == crop.shape[1] and crop.shape[0] < 400  # the bird's crop, not the frame
    assert (crop[..., 0] > 200).mean() > 0.03 and (crop[..., 1] < 80).mean() > 0.03  # red is in it
    assert scene.shape[:2] == (1080, 1920)
    x, y, w, h = (round(v * s) for v, s in zip(end["box"], (1920, 1080, 1920, 1080)))
    edge = scene[max(0, y - 2), x + w // 2]  # the drawn frame just above the box: yellow
    assert edge[0] > 200 and edge[1] > 180 and edge[2] < 90, edge


def test_a_burst_of_stills_finds_the_small_bird_in_what_differs_and_a_lone_still_uses_the_whole_frame(
        tmp_path: Path, planted: Path) -> None:
    t0 = datetime(2024, 5, 1, 6, 0, 0)
    burst, lone = tmp_path / "card" / "burst", tmp_path / "card" / "lone"
    burst.mkdir(parents=True)
    lone.mkdir(parents=True)
    for i in range(4):  # the same view, the bird a little further on in each photo
        make_still(burst / f"IMG_{i}.jpg", size=HD, objects=[Box(RED, (700 + 120 * i, 400, BIRD_PX, BIRD_PX))],
                   taken_at=t0 + timedelta(seconds=i))
    make_still(lone / "IMG_9.jpg", size=HD, objects=[Box(RED, (700, 400, BIRD_PX, BIRD_PX))],
               taken_at=t0 + timedelta(hours=1))
    events = run(tmp_path / "card", tmp_path, planted)
    sightings = by_sighting(events)
    assert len(sightings) == 1, [(e.event, e.stream, e.species) for e in events]
    (story,) = sightings.values()
    assert story[0].stream == "burst/IMG_0.jpg" and {e.species for e in story} == {"Scarlet Tanager"}
    assert covers(story[-1].box, (700 + 120, 700 + 120 * 3 + BIRD_PX), 400 + BIRD_PX / 2), story[-1].box
    # Without regions the same small bird is too small for the whole photo, in the burst or alone.
    assert run(tmp_path / "card", tmp_path, planted, {"enabled": False}) == []


@pytest.fixture(scope="module")
def lights_on(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bird crossing a 1080p view; at 3 s the whole view turns bright (washed out by a floodlight)."""
    lights = Box((225, 225, 225), (0, 0, *HD), 3.0)
    return make_video(tmp_path_factory.mktemp("lights") / "lights.mp4", duration_s=8, fps=10, size=HD,
                      objects=[lights, *flight(RED, 300, 500, 20, start=1.0, end=8.0)], seed=7)


def test_lights_on_does_not_flood_the_engine_and_the_bird_is_still_found(tmp_path: Path, planted: Path,
                                                                         lights_on: Path) -> None:
    video = lights_on
    config = config_from_dict({"regions": {"max_regions": 2}}, base_dir=tmp_path, require_streams=False)
    spec = wiring.classify_spec(video, sample_fps=5, regions=wiring.region_options(config))
    crops = {round(f.media_time, 1): [r.motion for r in f.regions] for f in iter_frames(spec, (96, 96))}
    assert max(len(m) for m in crops.values()) <= 2  # capped, whatever moves
    # The jump itself proposes nothing new (the background starts again; a region already held stays).
    assert all(m == 0 for m in crops[3.0])
    assert any(m > 0 for t, ms in crops.items() if t > 4.0 for m in ms)  # the bird is found again after it
    events = run(video, tmp_path, planted, {"max_regions": 2})
    assert {e.species for e in events} == {"Scarlet Tanager"} and all(e.box is not None for e in events)


def test_region_crops_and_recalibrations_are_counted_per_stream(tmp_path: Path, lights_on: Path) -> None:
    config = config_from_dict({"streams": [{"id": "floodlit", "url": str(lights_on), "sample_fps": 5}]},
                              base_dir=tmp_path)
    stream = config.streams[0]
    frames: list = []
    reader = StreamReader(wiring.source_spec(stream, regions=wiring.region_options(config, stream)),
                          input_size=(96, 96), emit=frames.append, on_status=lambda status: None)
    reader.start()
    assert reader.join(60)

    def value(name: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"stream": "floodlit"})

    assert value("birdstream_ingest_regions_total") == sum(len(f.regions) for f in frames) > 0
    assert value("birdstream_ingest_region_recalibrations_total") == 1
