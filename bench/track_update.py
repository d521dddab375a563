"""Tracker cost per prediction at the real model's 735 classes, as a ratio to a numpy softmax of the
same vector measured in the same run (the work the engine already does per frame).

Alternating rounds (tracker, then reference) on a shared machine; prints the median and the spread.

Run from the repository root: python -m bench.track_update [frames] [rounds]
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from birdstream.messages import Frame, Prediction
from birdstream.track import SightingTracker
from tests.support.options import track_options


def _predictions(n: int) -> tuple[list[Prediction], np.ndarray]:
    rng = np.random.default_rng(0)
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
    return preds, logits


def main(n: int = 5000, rounds: int = 7) -> None:
    """Alternating rounds: a chunk of tracker updates, then as many softmaxes (the order swapped
    every round), so load from other work on a shared machine hits both alike."""
    preds, logits = _predictions(n)
    classes = [f"species {i:03d}" for i in range(735)]
    tracker = SightingTracker(station="b", stream_id="bench", class_names=classes, model_id="m@0",
                              options=track_options())
    for p in preds[:500]:  # warm up, then a fresh tracker: the frames start again at the same time
        tracker.update(p)
    tracker = SightingTracker(station="b", stream_id="bench", class_names=classes, model_id="m@0",
                              options=track_options())
    events, chunk = 0, max(1, n // max(1, rounds))
    per_track, per_ref, ratios = [], [], []
    for r, start in enumerate(range(0, n, chunk)):
        part = preds[start : start + chunk]
        timings = {}
        for what in (("track", "ref") if r % 2 == 0 else ("ref", "track")):
            t0 = time.perf_counter()
            if what == "track":
                for p in part:
                    events += len(tracker.update(p))
            else:
                for i in range(start, start + len(part)):
                    x = logits[i % 64]
                    e = np.exp(x - x.max())
                    e /= e.sum()
            timings[what] = (time.perf_counter() - t0) / len(part)
        per_track.append(timings["track"])
        per_ref.append(timings["ref"])
        ratios.append(timings["track"] / timings["ref"])
    q = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else [ratios[0]] * 3
    print(f"tracker update: {statistics.median(per_track) * 1e6:.1f} us/prediction (median of {len(ratios)} rounds), "
          f"{events} events")
    print(f"reference softmax(735): {statistics.median(per_ref) * 1e6:.1f} us")
    print(f"ratio tracker/softmax: {statistics.median(ratios):.2f} [quartiles {q[0]:.2f}-{q[2]:.2f}, rounds {min(ratios):.2f}-{max(ratios):.2f}]")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
