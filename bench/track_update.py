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


def _track(preds: list[Prediction]) -> tuple[float, int]:
    classes = [f"species {i:03d}" for i in range(735)]
    tracker = SightingTracker(station="b", stream_id="bench", class_names=classes, model_id="m@0",
                              options=track_options())
    events = 0
    t0 = time.perf_counter()
    for p in preds:
        events += len(tracker.update(p))
    return (time.perf_counter() - t0) / len(preds), events


def _softmax(logits: np.ndarray, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        x = logits[i % 64]
        e = np.exp(x - x.max())
        e /= e.sum()
    return (time.perf_counter() - t0) / n


def main(n: int = 5000, rounds: int = 7) -> None:
    preds, logits = _predictions(n)
    _track(preds[:500])  # warm up
    track, ref, ratios = [], [], []
    events = 0
    for _ in range(rounds):
        t, events = _track(preds)
        r = _softmax(logits, n)
        track.append(t * 1e6)
        ref.append(r * 1e6)
        ratios.append(t / r)
    print(f"tracker update: {statistics.median(track):.1f} us/prediction (rounds {min(track):.1f}..{max(track):.1f}), "
          f"{events} events per round of {n}")
    print(f"reference softmax(735): {statistics.median(ref):.1f} us (rounds {min(ref):.1f}..{max(ref):.1f})")
    print(f"ratio tracker/softmax: {statistics.median(ratios):.2f} (rounds {min(ratios):.2f}..{max(ratios):.2f})")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
