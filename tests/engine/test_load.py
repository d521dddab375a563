"""Load: 8 cameras outrunning the classifier -> bounded memory, fair shares, every drop counted."""

from __future__ import annotations

import threading
import tracemalloc
from collections import Counter

import numpy as np
import pytest

from birdstream.engine import Engine
from birdstream.messages import Frame
from tests.engine.conftest import sample

STREAMS = 8
TARGET_CLASSIFIED = 200  # the run lasts until this many frames went through the classifier


@pytest.mark.slow
def test_eight_fast_cameras_bounded_fair_and_counted(load_classifier) -> None:
    h, w = load_classifier.input_size
    classified: Counter[str] = Counter()
    lock = threading.Lock()
    enough = threading.Event()

    def on_predictions(preds) -> None:
        # Counts only: keeping the frames would make memory grow with the run by design.
        with lock:
            classified.update(p.frame.stream_id for p in preds)
            if sum(classified.values()) >= TARGET_CLASSIFIED:
                enough.set()

    ids = [f"load-{i}" for i in range(STREAMS)]
    dropped_before = {
        s: sum(sample("birdstream_engine_dropped_frames_total", stream=s, reason=r) for r in ("overflow", "stale"))
        for s in ids
    }
    engine = Engine(load_classifier, max_batch=8, max_wait_ms=20, max_age_s=60, on_predictions=on_predictions)
    boxes = [engine.mailbox(s) for s in ids]
    engine.start()
    start_gate = threading.Barrier(STREAMS + 1)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)

    def produce(i: int) -> None:
        start_gate.wait()
        seq = 0
        while not enough.is_set():
            image = base.copy()  # a fresh buffer per frame, as a decoder would hand over
            image[0, 0, 0] = seq % 256
            assert boxes[i].put(Frame(stream_id=ids[i], seq=seq, image=image, captured_at=0.0))
            seq += 1

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(STREAMS)]
    for t in threads:
        t.start()
    tracemalloc.start()
    try:
        start_gate.wait()
        # Memory once the cameras run vs at the end, when they have produced many times more.
        while not enough.is_set() and sum(classified.values()) < TARGET_CLASSIFIED // 10:
            enough.wait(0.005)
        mem_start, _ = tracemalloc.get_traced_memory()
        produced_start = sum(b.put_count for b in boxes)
        assert enough.wait(120)
        mem_end, _ = tracemalloc.get_traced_memory()
        produced_end = sum(b.put_count for b in boxes)
        for t in threads:
            t.join(10)
        assert engine.drain(60)
    finally:
        tracemalloc.stop()
        enough.set()
        engine.stop()
        assert engine.join(10)
    assert engine.error is None

    frame_bytes = h * w * 3
    produced_bytes = (produced_end - produced_start) * frame_bytes
    assert produced_end - produced_start > 4 * STREAMS * 2  # the queues overflowed many times over
    # Bounded: the queues never held more than their capacity, and memory did not grow with
    # the frames produced (at most a few batches' worth of frames in flight).
    assert all(b.max_depth <= b.capacity for b in boxes)
    assert mem_end - mem_start < max(4 * 8 * frame_bytes, produced_bytes // 10)

    total_classified = sum(classified.values())
    mean = total_classified / STREAMS
    for s, box in zip(ids, boxes):
        assert classified[s] == box.classified
        # Every camera gets its share of the classifier.
        assert mean / 2 <= classified[s] <= mean * 2, (s, classified, mean)
        # Every frame is either classified or counted as dropped, also in the metric.
        assert box.dropped == box.put_count - classified[s]
        metric = sum(
            sample("birdstream_engine_dropped_frames_total", stream=s, reason=r) for r in ("overflow", "stale")
        )
        assert metric - dropped_before[s] == box.dropped
    assert sum(b.dropped for b in boxes) > 0, "the cameras did not outrun the classifier"
