"""Batching efficiency of the Engine: images/s through mailboxes + the inference thread with N
camera threads, against the bare batched forward of the same Classifier, measured in the same run.

    python bench/engine.py                       # CPU, mid-size config (6 layers, 224x224)
    python bench/engine.py --config full --seconds 20
    python bench/engine.py --device cuda --config full --max-batch 32

Prints one line per stream count and mode with the median ratio engine/reference over paired
rounds (target >= 0.9).
`offline` producers use blocking mailboxes (always a frame ready: the engine's own overhead);
`live` producers are paced cameras that outrun the model by 2x and use latest-wins mailboxes,
so each camera contributes at most its mailbox capacity (+ arrivals within max_wait) per batch.
`--crops 0,3` repeats each line with frames carrying that many region crops (counted as images):
the engine's images/s with crops against without, on the same streams.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from birdstream.engine import Engine  # noqa: E402
from birdstream.engine.classifier import Classifier  # noqa: E402
from birdstream.messages import Frame, Region  # noqa: E402

CONFIGS = {
    # name: (Birder config overrides, input size)
    "tiny": ({"num_layers": 2}, 96),
    "mid": ({"num_layers": 6}, 224),
    "full": ({}, 384),
}
NUM_CLASSES = 735


def write_checkpoint(path: Path, config: dict, size: int) -> Path:
    """A Birder-format checkpoint with random weights for the given config."""
    from birdstream.model.checkpoint import VIT_PARALLEL_S16_18X2_LS_AVG
    from birdstream.model.vit_parallel import ViTParallel, ViTParallelConfig

    torch.manual_seed(0)
    cfg = ViTParallelConfig.from_birder({**VIT_PARALLEL_S16_18X2_LS_AVG, **config})
    net = ViTParallel(NUM_CLASSES, (size, size), cfg)
    torch.save(
        {
            "state": net.state_dict(),
            "task": "image_classification",
            "birder_version": "0.8.4",
            "signature": {
                "inputs": [{"data_shape": [0, 3, size, size]}],
                "outputs": [{"data_shape": [0, NUM_CLASSES]}],
            },
            "class_to_idx": {f"species_{i:03d}": i for i in range(NUM_CLASSES)},
            "rgb_stats": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
            "config": config,
        },
        path,
    )
    return path


def reference(clf: Classifier, frames: np.ndarray, seconds: float) -> float:
    """Images/s of the classifier called directly with full batches.

    Called on a thread of its own like the engine's: torch's CPU thread pool behaves differently
    on the main thread, which would make the comparison unfair.
    """
    result: list[float] = []

    def run() -> None:
        clf(frames)
        n, t0 = 0, time.perf_counter()
        while True:
            clf(frames)
            n += len(frames)
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds and n >= 3 * len(frames):
                result.append(n / elapsed)
                return

    t = threading.Thread(target=run, name="reference")
    t.start()
    t.join()
    return result[0]


def through_engine(
    clf: Classifier, images: np.ndarray, streams: int, mode: str, args: argparse.Namespace, ref_rate: float,
    crops: int = 0,
) -> dict:
    """Images/s delivered by the Engine fed by `streams` producer threads."""
    deliveries: list[tuple[float, int]] = []
    done = threading.Event()

    def on_predictions(preds: list) -> None:
        deliveries.append((time.perf_counter(), sum(1 + len(p.region_probs) for p in preds)))
        if deliveries[-1][0] - deliveries[0][0] >= args.seconds and len(deliveries) >= 4:
            done.set()

    engine = Engine(
        clf, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_age_s=60, on_predictions=on_predictions
    )
    boxes = [engine.mailbox(f"cam{i}", blocking=mode == "offline") for i in range(streams)]
    period = streams * (1 + crops) / (2.0 * ref_rate)  # live: together the cameras outrun the model by 2x

    def produce(i: int) -> None:
        seq = 0
        next_at = time.perf_counter()
        while not done.is_set():
            regions = tuple(Region(box=(0.1, 0.1, 0.1, 0.1), pixels=(10, 10, 10, 10), image=images[(seq + k + 1) % len(images)])
                            for k in range(crops))
            frame = Frame(stream_id=f"cam{i}", seq=seq, image=images[seq % len(images)], captured_at=time.time(),
                          regions=regions)
            if not boxes[i].put(frame):
                return
            seq += 1
            if mode == "live":
                next_at += period
                delay = next_at - time.perf_counter()
                if delay > 0:
                    done.wait(delay)

    threads = [threading.Thread(target=produce, args=(i,), daemon=True) for i in range(streams)]
    engine.start()
    for t in threads:
        t.start()
    done.wait(args.seconds * 20 + 60)
    engine.stop()
    engine.join(60)
    for t in threads:
        t.join(10)
    if engine.error is not None:
        raise engine.error
    (t_first, _), (t_last, _) = deliveries[0], deliveries[-1]
    frames = sum(n for _, n in deliveries[1:])  # the first batch only marks the start
    return {
        "rate": frames / (t_last - t_first),
        "mean_batch": sum(n for _, n in deliveries) / len(deliveries),
        "dropped": sum(b.drops["overflow"] + b.drops["stale"] for b in boxes),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--precision", default="auto", help="auto | fp32 | fp16 | bf16")
    ap.add_argument("--config", choices=sorted(CONFIGS), default="mid")
    ap.add_argument("--weights", help="a Birder .pt instead of a random-weight --config")
    ap.add_argument("--streams", default="1,4,8")
    ap.add_argument("--modes", default="offline,live")
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--max-wait-ms", type=float, default=50.0)
    ap.add_argument("--seconds", type=float, default=5.0, help="measuring time per line")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--rounds", type=int, default=3, help="paired reference/engine rounds per line (median ratio)")
    ap.add_argument("--crops", default="0", help="region crops per frame, e.g. 0,3 (each a line)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        if args.weights:
            weights, desc = Path(args.weights), args.weights
        else:
            overrides, size = CONFIGS[args.config]
            weights = write_checkpoint(Path(tmp) / f"{args.config}.pt", overrides, size)
            desc = f"{args.config} config {overrides or 'registered'} at {size}x{size}, {NUM_CLASSES} classes"
        clf = Classifier.load(weights, device=args.device, precision=args.precision)
    h, w = clf.input_size
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(8, h, w, 3), dtype=np.uint8)
    batch = np.stack([images[i % len(images)] for i in range(args.max_batch)])
    clf.warm_up(args.max_batch)
    print(
        f"model: {desc}; device {clf.device}, {str(clf.dtype).removeprefix('torch.')}, "
        f"torch threads {torch.get_num_threads()}, max_batch {args.max_batch}, max_wait_ms {args.max_wait_ms:g}"
    )
    lines = [(s, m, c) for s in [int(s) for s in args.streams.split(",")] for m in args.modes.split(",")
             for c in [int(c) for c in args.crops.split(",")]]
    for streams, mode, crops in lines:
        if True:
            # Paired short rounds, median ratio: on a shared host others' load hits both sides alike.
            refs, runs = [], []
            for _ in range(max(1, args.rounds)):
                refs.append(reference(clf, batch, args.seconds))
                runs.append(through_engine(clf, images, streams, mode, args, refs[-1], crops))
            ratios = sorted(r["rate"] / f for r, f in zip(runs, refs))
            ratio = statistics.median(ratios)
            ref = statistics.median(refs)
            got = {
                "rate": statistics.median(r["rate"] for r in runs),
                "mean_batch": statistics.mean(r["mean_batch"] for r in runs),
                "dropped": sum(r["dropped"] for r in runs),
            }
            print(
                f"streams={streams:<2d} mode={mode:<7s} crops={crops} engine {got['rate']:8.2f} img/s  "
                f"reference {ref:8.2f} img/s  ratio {ratio:5.3f} (rounds {ratios[0]:.2f}..{ratios[-1]:.2f})  "
                f"mean batch {got['mean_batch']:5.1f}  dropped {got['dropped']}"
            )


if __name__ == "__main__":
    main()
