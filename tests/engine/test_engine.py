"""Engine: batching, the max_wait bound, fairness, drops, offline mode, stop, heartbeat, errors."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from birdstream.engine import Engine
from tests.engine.conftest import (
    AsyncColourClassifier,
    ColourClassifier,
    GatedClassifier,
    make_frame,
    sample,
    wait_until,
)


def test_predictions_carry_frames_and_probabilities(make_engine, colour_classifier, collector) -> None:
    engine = make_engine(colour_classifier, collector)
    classified_before = sample("birdstream_engine_frames_classified_total", stream="e-probs")
    batches_before = sample("birdstream_engine_batch_size_count")
    seconds_before = sample("birdstream_engine_inference_seconds_count")
    engine.start()
    for seq, colour in enumerate(["red", "green", "blue"]):
        engine.mailbox("e-probs", capacity=4).put(make_frame("e-probs", seq, colour))
    assert collector.wait_for(3)
    classified = lambda: sample("birdstream_engine_frames_classified_total", stream="e-probs")  # noqa: E731
    assert wait_until(lambda: classified() == classified_before + 3)
    n_batches = len(colour_classifier.batch_sizes)
    assert sample("birdstream_engine_batch_size_count") - batches_before == n_batches
    assert sample("birdstream_engine_inference_seconds_count") - seconds_before == n_batches
    assert engine.busy_since is None
    names = [colour_classifier.class_names[int(np.argmax(p.probs))] for p in collector.predictions]
    assert names == ["red", "green", "blue"]
    for p in collector.predictions:
        assert p.probs.dtype == np.float32 and p.probs.shape == (3,)
        assert abs(float(p.probs.sum()) - 1.0) < 1e-5


def test_batches_fill_up_to_max_batch(make_engine, colour_classifier, collector) -> None:
    engine = make_engine(colour_classifier, collector, max_batch=5, max_wait_ms=50)
    for s in range(8):
        box = engine.mailbox(f"e-fill-{s}")
        box.put(make_frame(f"e-fill-{s}", 0))
        box.put(make_frame(f"e-fill-{s}", 1))
    engine.start()
    assert collector.wait_for(16)
    # Full batches while frames wait; the remainder goes out once max_wait has passed.
    assert colour_classifier.batch_sizes == [5, 5, 5, 1]
    assert sorted(collector.keys()) == sorted((f"e-fill-{s}", q) for s in range(8) for q in range(2))
    assert engine.drain(5)


def test_a_lone_frame_goes_out_after_max_wait(make_engine, colour_classifier, collector) -> None:
    engine = make_engine(colour_classifier, collector, max_batch=32, max_wait_ms=30)
    engine.start()
    engine.mailbox("e-lone").put(make_frame("e-lone", 0))
    assert collector.wait_for(1)
    assert colour_classifier.batch_sizes == [1]


def test_max_wait_gathers_frames_arriving_while_waiting(make_engine, colour_classifier, collector) -> None:
    engine = make_engine(colour_classifier, collector, max_batch=2, max_wait_ms=60_000)
    engine.start()
    engine.mailbox("e-gather-a").put(make_frame("e-gather-a", 0))
    engine.mailbox("e-gather-b").put(make_frame("e-gather-b", 0))
    # The batch is only full with the second stream's frame; nothing went out before it.
    assert collector.wait_for(2)
    assert colour_classifier.batch_sizes == [2]
    assert {p.frame.stream_id for p in collector.batches[0]} == {"e-gather-a", "e-gather-b"}


def test_round_robin_interleaves_streams(make_engine, colour_classifier, collector) -> None:
    engine = make_engine(colour_classifier, collector, max_batch=1, max_wait_ms=0)
    for s in "abc":
        box = engine.mailbox(f"e-rr-{s}", capacity=3)
        for seq in range(3):
            box.put(make_frame(f"e-rr-{s}", seq))
    engine.start()
    assert collector.wait_for(9)
    assert collector.keys() == [(f"e-rr-{s}", seq) for seq in range(3) for s in "abc"]


def test_busy_stream_does_not_starve_a_quiet_one(make_engine, colour_classifier, collector) -> None:
    engine = make_engine(colour_classifier, collector, max_batch=1, max_wait_ms=0)
    busy = engine.mailbox("e-busy")
    quiet = engine.mailbox("e-quiet")
    engine.start()
    stop = threading.Event()

    def flood() -> None:
        seq = 0
        while not stop.is_set():
            busy.put(make_frame("e-busy", seq))
            seq += 1

    t = threading.Thread(target=flood)
    t.start()
    try:
        for seq in range(20):
            quiet.put(make_frame("e-quiet", seq))
            assert wait_until(lambda: quiet.classified + quiet.dropped > seq)
    finally:
        stop.set()
        t.join(5)
    # Every quiet frame got its turn although the busy camera always had a frame waiting.
    assert quiet.classified == 20
    assert quiet.dropped == 0
    assert busy.dropped > 0
    assert engine.drain(5)
    assert busy.dropped == busy.put_count - busy.classified
    assert busy.drops["overflow"] == busy.dropped


def test_frames_older_than_max_age_are_dropped_and_counted(make_engine, colour_classifier, collector) -> None:
    now = [1000.0]
    engine = make_engine(colour_classifier, collector, max_age_s=5, clock=lambda: now[0])
    before = sample("birdstream_engine_dropped_frames_total", stream="e-stale", reason="stale")
    box = engine.mailbox("e-stale", capacity=4)
    for seq in range(3):
        box.put(make_frame("e-stale", seq))
    now[0] += 6.0  # the frames waited longer than max_age_s
    engine.start()
    assert wait_until(lambda: box.dropped == 3)
    assert box.drops == {"stale": 3}
    assert sample("birdstream_engine_dropped_frames_total", stream="e-stale", reason="stale") - before == 3
    box.put(make_frame("e-stale", 3))
    assert collector.wait_for(1)
    assert collector.keys() == [("e-stale", 3)]


def test_blocking_mode_loses_nothing(make_engine, collector) -> None:
    clf = ColourClassifier()
    engine = make_engine(clf, collector, max_batch=4, max_wait_ms=5, max_age_s=0.0)
    engine.start()
    boxes = [engine.mailbox(f"e-offline-{i}", blocking=True) for i in range(3)]

    def produce(i: int) -> None:
        for seq in range(40):
            assert boxes[i].put(make_frame(f"e-offline-{i}", seq))

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert engine.drain(30)
    assert len(collector.predictions) == 120
    for i in range(3):
        seqs = [seq for sid, seq in collector.keys() if sid == f"e-offline-{i}"]
        assert seqs == list(range(40))
        assert boxes[i].dropped == 0 and boxes[i].max_depth <= boxes[i].capacity == 4


def test_stop_with_drain_classifies_what_is_queued(make_engine, colour_classifier, collector) -> None:
    engine = make_engine(colour_classifier, collector, max_batch=2)
    box = engine.mailbox("e-drain", capacity=5)
    for seq in range(5):
        box.put(make_frame("e-drain", seq))
    engine.start()
    engine.stop(drain=True)
    assert engine.join(10)
    assert collector.keys() == [("e-drain", seq) for seq in range(5)]
    assert box.put(make_frame("e-drain", 5)) is False


def test_stop_returns_promptly_and_releases_blocked_producers(make_engine, collector) -> None:
    clf = GatedClassifier()
    engine = make_engine(clf, collector, max_batch=1, max_wait_ms=60_000, idle_tick_s=30)
    box = engine.mailbox("e-stop", blocking=True, capacity=1)
    results: list[bool] = []
    clf.shut()  # the first frame wedges the classifier: the producer must then block
    engine.start()

    def produce() -> None:
        for seq in range(4):
            results.append(box.put(make_frame("e-stop", seq)))

    t = threading.Thread(target=produce)
    t.start()
    assert clf.entered.wait(5)  # frame 0 is inside the classifier
    assert wait_until(lambda: len(results) == 2)  # frame 1 queued; frame 2 waits for room
    assert not wait_until(lambda: len(results) > 2, timeout=0.1)
    engine.stop()
    t.join(5)
    assert not t.is_alive()
    assert results == [True, True, False, False]  # stop released the producer without waiting on the batch
    clf.open()
    assert engine.join(5)
    assert box.drops == {"shutdown": 1}  # frame 1, never taken
    assert collector.keys() == [("e-stop", 0)]  # the running batch was delivered
    assert engine.error is None


def test_heartbeat_advances_while_idle_and_stops_while_the_classifier_hangs(make_engine, collector) -> None:
    clf = GatedClassifier()
    engine = make_engine(clf, collector, idle_tick_s=0.01)
    engine.start()
    first = engine.heartbeat
    assert wait_until(lambda: engine.heartbeat > first)
    assert engine.busy_since is None
    clf.shut()
    engine.mailbox("e-hang").put(make_frame("e-hang", 0))
    assert clf.entered.wait(5)
    frozen = engine.heartbeat
    assert engine.busy_since is not None
    assert not engine.done.wait(0.2)  # many idle ticks' worth of time
    assert engine.heartbeat == frozen
    clf.open()
    assert wait_until(lambda: engine.heartbeat > frozen)
    assert collector.wait_for(1)
    assert wait_until(lambda: engine.busy_since is None)


def test_internal_error_is_logged_once_and_surfaced(make_engine, colour_classifier, caplog) -> None:
    def broken(preds) -> None:
        raise ValueError("tracker bug")

    engine = make_engine(colour_classifier, broken)
    box = engine.mailbox("e-error", capacity=3)
    engine.start()
    with caplog.at_level(logging.ERROR, logger="birdstream.engine.engine"):
        box.put(make_frame("e-error", 0))
        assert engine.done.wait(10)
    assert isinstance(engine.error, ValueError)
    assert not engine.is_alive()
    records = [r for r in caplog.records if r.exc_info]
    assert len(records) == 1 and "tracker bug" in caplog.text
    assert box.put(make_frame("e-error", 1)) is False


def test_out_of_memory_halves_the_batch_cap_and_loses_nothing(make_engine, collector, caplog) -> None:
    clf = ColourClassifier(memory_limit=3 * 16 * 16 * 3 * 4)  # at most 3 frames per call
    engine = make_engine(clf, collector, max_batch=16, max_wait_ms=10_000)
    before = sample("birdstream_engine_oom_total")
    for s in range(8):
        box = engine.mailbox(f"e-oom-{s}")
        box.put(make_frame(f"e-oom-{s}", 0))
        box.put(make_frame(f"e-oom-{s}", 1))
    with caplog.at_level(logging.WARNING, logger="birdstream.engine.engine"):
        engine.start()
        assert collector.wait_for(16)
    assert engine.batch_cap == 2  # 16 -> 8 -> 4 -> 2
    assert sample("birdstream_engine_oom_total") - before == 3
    assert max(b for b in clf.batch_sizes) <= 3
    assert sum(clf.batch_sizes) == 16
    assert sum("out of memory" in r.getMessage() for r in caplog.records) == 1
    assert engine.error is None


def test_invalid_frames_are_dropped_and_counted(make_engine, colour_classifier, collector) -> None:
    engine = make_engine(colour_classifier, collector)
    box = engine.mailbox("e-invalid", capacity=3)
    box.put(make_frame("e-invalid", 0, size=(8, 8)))
    box.put(make_frame("e-invalid", 1))
    engine.start()
    assert collector.wait_for(1)
    assert wait_until(lambda: box.dropped == 1)
    assert box.drops == {"invalid": 1}
    assert collector.keys() == [("e-invalid", 1)]


def test_remove_stream_drops_pending_frames(make_engine, colour_classifier, collector) -> None:
    engine = make_engine(colour_classifier, collector)
    box = engine.mailbox("e-remove")
    box.put(make_frame("e-remove", 0))
    box.put(make_frame("e-remove", 1))
    engine.remove_stream("e-remove")
    assert box.drops == {"removed": 2}
    assert engine.streams() == []
    assert box.put(make_frame("e-remove", 2)) is False
    assert engine.mailbox("e-remove") is not box


@pytest.mark.parametrize("bad", [0, -1])
def test_rejects_nonsense_max_batch(colour_classifier, bad) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        Engine(colour_classifier, max_batch=bad, on_predictions=lambda p: None)


def test_importing_the_engine_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, birdstream.engine; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_drain_of_one_stream_waits_for_its_frames_only(make_engine, collector) -> None:
    clf = GatedClassifier()
    engine = make_engine(clf, collector, max_batch=1, max_wait_ms=5)
    engine.start()
    other = engine.mailbox("e-drain-other", capacity=1)
    clf.shut()  # hold the loop inside a batch so the other stream's next frame stays queued
    other.put(make_frame("e-drain-other", 0))
    assert clf.entered.wait(5)
    other.put(make_frame("e-drain-other", 1))
    assert not engine.drain(0.05, stream_id="e-drain-other")
    clf.open()
    card = engine.mailbox("e-drain-card", blocking=True)
    for seq in range(10):
        assert card.put(make_frame("e-drain-card", seq))
    assert engine.drain(10, stream_id="e-drain-card")
    assert [seq for sid, seq in collector.keys() if sid == "e-drain-card"] == list(range(10))
    assert engine.drain(0, stream_id="no-such-stream")
    assert engine.drain(10)


def test_out_of_memory_errors_are_recognised() -> None:
    import torch

    from birdstream.engine.calls import is_out_of_memory

    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 8 GB"))
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_an_asynchronous_classifier_gets_the_next_batch_before_the_last_is_collected(make_engine, collector) -> None:
    clf = AsyncColourClassifier()
    engine = make_engine(clf, collector, max_batch=2)
    box = engine.mailbox("e-async", blocking=True, capacity=6)
    colours = ["red", "red", "green", "green", "blue", "blue"]
    for seq, colour in enumerate(colours):
        box.put(make_frame("e-async", seq, colour))
    engine.start()
    assert collector.wait_for(6)
    # Batch k+1 was stacked and launched while batch k ran; batch k was collected after that.
    assert clf.events[:4] == [("submit", 0), ("submit", 1), ("collect", 0), ("submit", 2)]
    assert [e for e in clf.events if e[0] == "collect"] == [("collect", 0), ("collect", 1), ("collect", 2)]
    assert collector.keys() == [("e-async", seq) for seq in range(6)]
    # Read only at collection, each batch still saw its own frames: the two host buffers took turns.
    names = list(clf.class_names)
    assert [names[int(p.probs.argmax())] for p in collector.predictions] == colours
    assert box.classified == 6 and engine.drain(5)


def test_stop_delivers_the_batch_still_on_the_device(make_engine, collector) -> None:
    clf = AsyncColourClassifier()
    engine = make_engine(clf, collector, max_batch=2)
    box = engine.mailbox("e-async-stop", blocking=True, capacity=4)
    clf.gate.clear()
    for seq in range(2):
        box.put(make_frame("e-async-stop", seq))
    engine.start()
    assert clf.collecting.wait(5)  # the batch is launched; collecting it waits on the device
    assert engine.busy_since is not None
    assert not engine.drain(0.05, stream_id="e-async-stop")  # launched is not yet delivered
    engine.stop()
    clf.gate.set()
    assert engine.join(5)
    assert collector.keys() == [("e-async-stop", 0), ("e-async-stop", 1)]
    assert engine.busy_since is None and engine.error is None
