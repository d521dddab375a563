"""Images/s through the engine and the trackers with an instant stand-in classifier: the CPU cost of
everything around the model (mailboxes, gather, stack, hand-over, tracker updates, events).

    python -m bench.pipeline                      # 64 streams, 7 alternating rounds of 3 s
    python -m bench.pipeline --streams 8,64 --seconds 2 --rounds 5
    git archive 250df1c | tar -x -C /tmp/before   # the tree before the tracker thread, then:
    python -m bench.pipeline --reference-tree /tmp/before   # its inline pipeline vs this tree's threaded one

Two ways of running the trackers, measured in alternating rounds of the same run:
  inline   the trackers updated on the inference thread under one lock (the live pipeline before the
           tracker thread: the reference)
  threaded the engine hands each batch to the tracker thread (station/tracking.py), as the daemon does
Each stream is a producer thread with a blocking mailbox (always a frame ready), so the figure is the
pipeline's capacity. Prints img/s per mode (median and spread), the process CPU time per image (less
sensitive to other load on a shared machine) and the median ratio threaded/inline. With
--reference-tree, the inline rounds run the engine and trackers of another checkout (e.g. the commit
before a change) and every round is a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from birdstream.engine import Engine
from birdstream.messages import Frame, Prediction, SightingEvent
try:
    from tests.support.options import track_options  # every value from the config's defaults
except ImportError:  # a --reference-tree from before the option types lost their own defaults
    from birdstream.track import TrackOptions as track_options
from birdstream.track.router import MediaTracker

NUM_CLASSES = 735


class InstantClassifier:
    """Returns rows of a fixed table at once: half show one species clearly, half an empty scene."""

    def __init__(self, size: int) -> None:
        self.class_names = [f"species {i:03d}" for i in range(NUM_CLASSES)]
        self.input_size = (size, size)
        rng = np.random.default_rng(0)
        logits = rng.normal(size=(256, NUM_CLASSES)).astype(np.float32)
        logits[:128, 7] += 8.0
        e = np.exp(logits - logits.max(1, keepdims=True))
        self._table = np.concatenate([e / e.sum(1, keepdims=True)] * 2)
        self._at = 0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        n = images.shape[0]
        self._at = (self._at + n) % 256
        return self._table[self._at : self._at + n]


def _tracker(clf: InstantClassifier, stream_id: str) -> MediaTracker:
    return MediaTracker(station="bench", class_names=clf.class_names, model_id="instant@0",
                        options=track_options(), stream_of=lambda frame: stream_id)


def run_round(mode: str, streams: int, seconds: float, args: argparse.Namespace) -> dict[str, float]:
    clf = InstantClassifier(args.size)
    events: list[SightingEvent] = []
    emit = events.extend
    trackers = {f"cam{i}": _tracker(clf, f"cam{i}") for i in range(streams)}
    counted = [0]
    lock = threading.Lock()

    if mode == "threaded":
        from birdstream.station.tracking import TrackerThread  # absent from a --reference-tree before it

        tracking = TrackerThread(emit)
        tracking.start()
        for sid, tracker in trackers.items():
            tracking.add(sid, tracker)
        on_predictions = tracking.submit
    else:
        tracking = None

        def on_predictions(preds: list[Prediction]) -> None:
            out: list[SightingEvent] = []
            with lock:
                for p in preds:
                    out += trackers[p.frame.stream_id].update(p)
                counted[0] += len(preds)
                emit(out)

    engine = Engine(clf, max_batch=args.max_batch, max_wait_ms=50, max_age_s=60, on_predictions=on_predictions)
    boxes = [engine.mailbox(f"cam{i}", blocking=True) for i in range(streams)]
    image = np.zeros((args.size, args.size, 3), np.uint8)
    stop = threading.Event()

    def produce(i: int) -> None:
        sid, box, seq = f"cam{i}", boxes[i], 0
        while not stop.is_set():
            if not box.put(Frame(sid, seq, image, 1e9 + seq * 0.5, motion=0.05 if (seq // 40) % 2 else 0.0)):
                return
            seq += 1

    threads = [threading.Thread(target=produce, args=(i,), daemon=True) for i in range(streams)]
    engine.start()
    for t in threads:
        t.start()

    def tracked() -> int:
        return tracking.updates if tracking is not None else counted[0]

    time.sleep(1.0)  # warm up: every producer running, every tracker made, batches full
    n0, t0, c0 = tracked(), time.perf_counter(), time.process_time()
    time.sleep(seconds)
    n1, t1, c1 = tracked(), time.perf_counter(), time.process_time()
    stop.set()
    engine.stop()
    engine.join(30)
    if tracking is not None:
        tracking.stop()
    for t in threads:
        t.join(10)
    if engine.error is not None:
        raise engine.error
    return {"rate": (n1 - n0) / (t1 - t0), "cpu_us": (c1 - c0) / max(1, n1 - n0) * 1e6, "events": len(events)}


def _round(mode: str, streams: int, args: argparse.Namespace) -> dict[str, float]:
    """One round here, or in a fresh process (inline ones on the reference tree) with --reference-tree."""
    if not args.reference_tree:
        return run_round(mode, streams, args.seconds, args)
    here = Path(__file__).resolve().parents[1]
    tree = args.reference_tree if mode == "inline" else str(here)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tree, str(here)])}
    cmd = [sys.executable, "-m", "bench.pipeline", "--one", mode, "--streams", str(streams), "--seconds",
           str(args.seconds), "--max-batch", str(args.max_batch), "--size", str(args.size)]
    done = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", default="64")
    ap.add_argument("--seconds", type=float, default=3.0, help="measuring time per round")
    ap.add_argument("--rounds", type=int, default=7, help="alternating rounds per mode")
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=32, help="image side (the stand-in reads nothing)")
    ap.add_argument("--reference-tree", help="a checkout whose engine and trackers run the inline rounds")
    ap.add_argument("--one", choices=["inline", "threaded"], help=argparse.SUPPRESS)  # one round, JSON out
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_round(args.one, int(args.streams), args.seconds, args)))
        return
    ref = f" (inline rounds: {args.reference_tree})" if args.reference_tree else ""
    print(f"instant classifier, {NUM_CLASSES} classes, images {args.size}x{args.size}, "
          f"max_batch {args.max_batch}{ref}")
    for streams in [int(s) for s in args.streams.split(",")]:
        rates: dict[str, list[float]] = {"inline": [], "threaded": []}
        cpu: dict[str, list[float]] = {"inline": [], "threaded": []}
        ratios = []
        for _ in range(max(1, args.rounds)):
            pair = {mode: _round(mode, streams, args) for mode in ("inline", "threaded")}
            for mode, got in pair.items():
                rates[mode].append(got["rate"])
                cpu[mode].append(got["cpu_us"])
            ratios.append(pair["threaded"]["rate"] / pair["inline"]["rate"])
        for mode, got in rates.items():
            print(f"streams={streams:<3d} {mode:<8s} {statistics.median(got):9.0f} img/s "
                  f"(rounds {min(got):.0f}..{max(got):.0f}), process CPU {statistics.median(cpu[mode]):.1f} us/img "
                  f"(rounds {min(cpu[mode]):.1f}..{max(cpu[mode]):.1f})")
        print(f"streams={streams:<3d} ratio threaded/inline {statistics.median(ratios):.2f} "
              f"(rounds {min(ratios):.2f}..{max(ratios):.2f})")


if __name__ == "__main__":
    main()
