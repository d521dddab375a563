"""Images/s through the real engine with trackers, for bench/gpu.py's end-to-end row.

The daemon's path without decoding: producer threads put uint8 frames into blocking mailboxes
(always a frame ready), the engine stacks them into its pinned buffers, launches each batch
(copy on a side stream, forward on the compute stream, softmax, probabilities back) and hands the
predictions to the tracker thread, which updates one tracker per stream.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from birdstream.engine import Engine
from birdstream.messages import Frame, SightingEvent
from birdstream.station.tracking import TrackerThread
from birdstream.track.router import MediaTracker
from tests.support.options import track_options


def through_engine(classifier: Any, frames: np.ndarray, *, streams: int, max_batch: int, seconds: float,
                   deadline: float | None = None) -> dict[str, float]:
    """Tracked images/s over ``seconds`` (after one second of warm-up), with the mean batch size."""
    events: list[SightingEvent] = []
    tracking = TrackerThread(events.extend)
    tracking.start()
    for i in range(streams):
        sid = f"cam{i}"
        tracking.add(sid, MediaTracker(station="bench", class_names=classifier.class_names, model_id="bench@0",
                                       options=track_options(), stream_of=lambda frame, sid=sid: sid))
    engine = Engine(classifier, max_batch=max_batch, max_wait_ms=20, max_age_s=600,
                    on_predictions=tracking.submit)
    boxes = [engine.mailbox(f"cam{i}", blocking=True) for i in range(streams)]
    stop = threading.Event()

    def produce(i: int) -> None:
        sid, box, seq = f"cam{i}", boxes[i], 0
        while not stop.is_set():
            if not box.put(Frame(sid, seq, frames[(seq * streams + i) % len(frames)], 1e9 + seq * 0.5, motion=0.05)):
                return
            seq += 1

    threads = [threading.Thread(target=produce, args=(i,), daemon=True) for i in range(streams)]
    engine.start()
    for t in threads:
        t.start()
    try:
        stop.wait(1.0)  # warm-up: producers running, batches full
        n0, b0, t0 = tracking.updates, engine.batches, time.perf_counter()
        end = t0 + seconds if deadline is None else min(t0 + seconds, deadline)
        while time.perf_counter() < end and engine.error is None:
            stop.wait(0.05)
        n1, b1, t1 = tracking.updates, engine.batches, time.perf_counter()
    finally:
        stop.set()
        engine.stop()
        engine.join(60)
        tracking.stop(60)
        for t in threads:
            t.join(10)
    if engine.error is not None:
        raise engine.error
    return {"ips": (n1 - n0) / (t1 - t0), "mean_batch": (n1 - n0) / max(1, b1 - b0), "seconds": t1 - t0}
