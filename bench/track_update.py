"""Tracker cost per prediction at the real model's 735 classes, as a ratio to a numpy softmax of the
same vector measured in the same run (the work the engine already does per frame).

Run from the repository root: python -m bench.track_update [frames]
"""

from __future__ import annotations

import sys
import time

import numpy as np

from birdstream.messages import Frame, Prediction
from birdstream.track import SightingTracker
from tests.support.options import track_options


def main(n: int = 20000) -> None:
    rng = np.random.default_rng(0)
    classes = [f"species {i:03d}" for i in range(735)]
    logits = rng.normal(size=(64, 735)).astype(np.float32)
    logits[:32, 7] += 8.0  # half the frames show one species clearly: starts, updates, ends happen
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    image = np.zeros((8, 8, 3), np.uint8)
    preds = []
    for i in range(n):
        empty = (i // 40) % 2  # 20 s of a bird moving, then 20 s of an empty, still scene
        frame = Frame("bench", i, image, 1e9 + i * 0.5, motion=0.0 if empty else 0.05)
        preds.append(Prediction(frame, probs[empty * 32 + i % 32]))
    tracker = SightingTracker(
        station="b", stream_id="bench", class_names=classes, model_id="m@0", options=track_options()
    )
    t0 = time.perf_counter()
    events = 0
    for p in preds:
        events += len(tracker.update(p))
    t_track = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(n):
        x = logits[i % 64]
        e = np.exp(x - x.max())
        e /= e.sum()
    t_ref = time.perf_counter() - t0
    print(f"tracker update: {t_track / n * 1e6:.1f} us/prediction, {events} events")
    print(f"reference softmax(735): {t_ref / n * 1e6:.1f} us")
    print(f"ratio tracker/softmax: {t_track / t_ref:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000)
