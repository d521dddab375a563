"""Frames with region crops: the engine counts images, keeps streams fair and regroups per frame."""

from __future__ import annotations

import dataclasses

import numpy as np

from birdstream.messages import Frame, Region
from tests.engine.conftest import colour_image, make_frame


def with_crops(frame: Frame, *colours: str) -> Frame:
    regions = tuple(Region(box=(0.1 * i, 0.1, 0.05, 0.05), pixels=(10 * i, 10, 5, 5), image=colour_image(c))
                    for i, c in enumerate(colours))
    return dataclasses.replace(frame, regions=regions)


def test_each_crop_is_classified_and_returned_with_its_frame(make_engine, colour_classifier, collector) -> None:
    engine = make_engine(colour_classifier, collector, max_batch=8)
    box = engine.mailbox("r-one", capacity=4)
    box.put(with_crops(make_frame("r-one", 0, "red"), "green", "blue"))
    box.put(make_frame("r-one", 1, "blue"))
    engine.start()
    assert collector.wait_for(2)
    first, second = sorted(collector.predictions, key=lambda p: p.frame.seq)
    names = colour_classifier.class_names
    assert names[int(np.argmax(first.probs))] == "red"
    assert [names[int(np.argmax(p))] for p in first.region_probs] == ["green", "blue"]
    assert names[int(np.argmax(second.probs))] == "blue" and second.region_probs == ()
    assert sum(colour_classifier.batch_sizes) == 4  # images, not frames


def test_batches_count_images_and_streams_stay_fair(make_engine, colour_classifier, collector) -> None:
    engine = make_engine(colour_classifier, collector, max_batch=6, max_wait_ms=20)
    busy, quiet = engine.mailbox("r-busy", capacity=8), engine.mailbox("r-quiet", capacity=8)
    for seq in range(4):  # the busy stream: 1 + 3 crops = 4 images a frame
        busy.put(with_crops(make_frame("r-busy", seq), "green", "green", "blue"))
    quiet.put(make_frame("r-quiet", 0, "blue"))
    engine.start()
    assert collector.wait_for(5)
    assert max(colour_classifier.batch_sizes) <= 6
    assert sum(colour_classifier.batch_sizes) == 4 * 4 + 1
    # The quiet stream's only frame went out in the first batch, not after the busy one's crops.
    assert any(p.frame.stream_id == "r-quiet" for p in collector.batches[0])
    assert all(len(p.region_probs) == 3 for p in collector.predictions if p.frame.stream_id == "r-busy")


def test_a_frame_with_a_bad_crop_is_dropped_and_counted(make_engine, colour_classifier, collector) -> None:
    engine = make_engine(colour_classifier, collector)
    box = engine.mailbox("r-bad", capacity=4)
    bad = dataclasses.replace(make_frame("r-bad", 0), regions=(
        Region(box=(0, 0, 1, 1), pixels=(0, 0, 1, 1), image=np.zeros((8, 8, 3), np.uint8)),))
    box.put(bad)
    box.put(make_frame("r-bad", 1))
    engine.start()
    assert collector.wait_for(1)
    assert engine.drain(5)
    assert [p.frame.seq for p in collector.predictions] == [1]
    assert box.dropped == 1


def test_no_batch_exceeds_the_cap_even_for_a_frame_with_more_crops(make_engine, colour_classifier,
                                                                   collector) -> None:
    """CUDA graphs exist for batches up to max_batch only: a frame is trimmed to fit, and frames whose
    crops do not fit beside others wait for the next batch instead of spinning the gather loop."""
    engine = make_engine(colour_classifier, collector, max_batch=3, max_wait_ms=20)
    big, small = engine.mailbox("r-big", capacity=4), engine.mailbox("r-small", capacity=4)
    big.put(with_crops(make_frame("r-big", 0, "red"), "green", "blue", "green", "blue"))  # 5 images
    small.put(make_frame("r-small", 0, "blue"))
    big.put(with_crops(make_frame("r-big", 1, "red"), "green"))  # 2 images
    engine.start()
    assert collector.wait_for(3)
    assert max(colour_classifier.batch_sizes) <= 3
    trimmed = next(p for p in collector.predictions if p.frame.stream_id == "r-big" and p.frame.seq == 0)
    assert len(trimmed.region_probs) == 2  # 1 + 2 crops fill the cap of 3
