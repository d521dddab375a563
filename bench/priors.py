"""Cost of occurrence priors in the tracker: time per prediction with a priors table over all 735
classes (every weight below 1, so the month lookup and per-month thresholds run on every frame)
as a ratio to the same tracker without priors, measured in the same run (alternating rounds after
a warm-up; median and spread of the ratio).

Run from the repository root: python -m bench.priors [frames] [rounds]
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from birdstream.messages import Frame, Prediction
from birdstream.track import SightingTracker
from birdstream.track.priors import PriorTable
from tests.support.options import track_options


def _predictions(n: int, classes: int) -> list[Prediction]:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(64, classes)).astype(np.float32)
    logits[:32, 7] += 8.0  # half the frames show one species clearly: starts, updates, ends happen
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    image = np.zeros((8, 8, 3), np.uint8)
    out = []
    for i in range(n):
        empty = (i // 40) % 2
        frame = Frame("bench", i, image, 1.78e9 + i * 0.5, motion=0.0 if empty else 0.05)
        out.append(Prediction(frame, probs[empty * 32 + i % 32]))
    return out


def _run(options: TrackOptions, classes: list[str], preds: list[Prediction]) -> float:
    tracker = SightingTracker(station="b", stream_id="bench", class_names=classes, model_id="m@0", options=options)
    t0 = time.perf_counter()
    for p in preds:
        tracker.update(p)
    return (time.perf_counter() - t0) / len(preds)


def main(n: int = 5000, rounds: int = 7) -> None:
    classes = [f"species {i:03d}" for i in range(735)]
    rng = np.random.default_rng(1)
    rows = tuple((name, tuple(float(w) for w in rng.uniform(0.2, 0.99, 12)), i + 2) for i, name in enumerate(classes))
    with_priors = track_options(priors=PriorTable("bench.csv", rows), timezone="Asia/Muscat")
    plain = track_options()
    preds = _predictions(n, len(classes))
    _run(plain, classes, preds[:500])
    _run(with_priors, classes, preds[:500])
    ratios, base, prior = [], [], []
    for r in range(rounds):
        order = (plain, with_priors) if r % 2 == 0 else (with_priors, plain)
        times = {id(o): _run(o, classes, preds) for o in order}
        base.append(times[id(plain)])
        prior.append(times[id(with_priors)])
        ratios.append(times[id(with_priors)] / times[id(plain)])
    print(f"tracker without priors: {statistics.median(base) * 1e6:.1f} us/prediction")
    print(f"tracker with priors:    {statistics.median(prior) * 1e6:.1f} us/prediction")
    print(f"ratio with/without: {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}, "
          f"{rounds} rounds of {n} predictions, 735 classes)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
