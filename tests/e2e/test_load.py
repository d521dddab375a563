"""Eight realtime file streams through the real readers, engine and trackers on this small machine."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

from birdstream.config import config_from_dict
from birdstream.engine.classifier import Classifier
from birdstream.station.live import LivePipeline
from tests.e2e.conftest import RED, Collect
from tests.support.daemon import wait_until
from tests.support.video import Box, make_video

STREAMS = 8


class SlowClassifier:
    """The real classifier, taking at least `seconds` per batch: a station whose model is slower than its cameras."""

    def __init__(self, inner: Classifier, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds
        self.class_names, self.input_size, self.model_id = inner.class_names, inner.input_size, inner.model_id

    def __call__(self, images):
        start = time.monotonic()
        out = self.inner(images)
        time.sleep(max(0.0, self.seconds - (time.monotonic() - start)))
        return out


def test_eight_realtime_streams_share_the_engine_with_bounded_memory(tmp_path: Path, planted: Path) -> None:
    video = make_video(tmp_path / "cam.mp4", duration_s=4, fps=25, objects=[Box(RED, (110, 70, 100, 90), 1.0, 3.0)])
    config = config_from_dict({
        "station": "load", "state_dir": str(tmp_path / "state"),
        "model": {"weights": str(planted), "max_batch": 4, "max_wait_ms": 10},
        "streams": [{"id": f"cam{i}", "url": str(video), "realtime": True, "loop": True, "sample_fps": 25}
                    for i in range(STREAMS)],
        "mqtt": {"enabled": False},
    }, base_dir=tmp_path)
    # 8 x 25 frames/s offered, at most 4 frames per 50 ms classified: most frames must be dropped.
    classifier = SlowClassifier(Classifier.load(str(planted), "cpu", "fp32"), 0.05)
    sink = Collect()
    pipeline = LivePipeline(config, classifier, sink)
    pipeline.start()
    try:
        engine = pipeline.engine
        boxes = {f"cam{i}": engine.mailbox(f"cam{i}") for i in range(STREAMS)}
        wait_until(lambda: all(b.classified >= 10 for b in boxes.values()), 120, "every stream classified")
        tracemalloc.start()
        before, _ = tracemalloc.get_traced_memory()
        first = {k: b.classified for k, b in boxes.items()}
        wait_until(lambda: all(b.classified - first[k] >= 20 for k, b in boxes.items()), 120,
                   "every stream keeps getting its share")
        after, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        served = {k: b.classified - first[k] for k, b in boxes.items()}
        mean = sum(served.values()) / len(served)
        assert all(mean / 3 <= n <= mean * 3 for n in served.values()), served
        assert all(b.max_depth <= engine.mailbox_capacity for b in boxes.values())
        # Python memory is flat while thousands of frames pass: nothing piles up anywhere.
        assert after - before < 8 * 2**20, after - before


        def started() -> set[str]:
            with sink.lock:
                return {e.stream for e in sink.events if e.event == "start"}

        wait_until(lambda: started() == set(boxes), 120, "a sighting on every stream")
    finally:
        pipeline.stop()
    for stream_id, box in boxes.items():
        assert box.put_count == box.classified + box.dropped, stream_id
        assert box.drops.get("overflow", 0) > box.classified, (stream_id, box.drops)
    statuses = {s.stream_id: s for s in pipeline.statuses()}
    assert sum(s.dropped for s in statuses.values()) >= sum(b.dropped for b in boxes.values())
    ended = {e.id for e in sink.events if e.event == "end"}
    assert {e.id for e in sink.events if e.event == "start"} <= ended
