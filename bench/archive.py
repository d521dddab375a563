"""Images/s of `birdstream classify` on an archive: decoding in N worker processes vs in-process.

Generates a folder of 1080p JPEG stills and a folder of 1080p H.264 clips, then runs the classify
command in this process (classify_main, the planted model unless --weights: decoding dominates) with
`--workers 0` (the reference: decoding in the classifying process) and each N of --workers,
alternating the modes round by round so all see the same machine load, and prints images/s (frames
classified per wall second, start-up of the worker processes included) with median and spread, and
each mode's ratio against the reference measured in the same run.

usage: PYTHONPATH=. python bench/archive.py [--stills 120] [--clips 4] [--clip-s 8] [--workers 1,2] [--rounds 3] [--ray]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# birdstream and torch are imported in main(): a spawned worker re-imports this file, and must not pay for them.

SAMPLE_FPS = 2.0


def make_stills(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=1920x1080:rate=1:duration={count}", "-q:v", "3", str(folder / "IMG_%04d.jpg")],
                   check=True)


def make_clips(folder: Path, count: int, seconds: float) -> None:
    folder.mkdir(parents=True)
    for i in range(count):
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"testsrc2=size=1920x1080:rate=25:duration={seconds}", "-c:v", "libx264",
                        "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "50", str(folder / f"CLIP_{i:03d}.mp4")],
                       check=True)


def run_once(config, folder: Path, out: Path, workers: int | str) -> float:
    """One classify run; workers "ray" runs it with --ray on a local Ray (started and stopped in the run)."""
    from birdstream.station.offline import classify_main

    ray = "" if workers == "ray" else None
    args = SimpleNamespace(inputs=[folder], out=out, summary=None, sample_fps=SAMPLE_FPS, quiet=True, resume=False,
                           workers=0 if ray is not None else workers, ray=ray, hwaccel=None, hwaccel_device=None,
                           keyframes_only=False)
    start = time.perf_counter()
    code = classify_main(args, config)
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"classify exited {code} on {folder}")
    return wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stills", type=int, default=120)
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--clip-s", type=float, default=8.0)
    ap.add_argument("--workers", default="1,2", help="worker counts to compare with in-process (default 1,2)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ray", action="store_true", help="also --ray on a local Ray (2 CPUs; its start-up included)")
    ap.add_argument("--weights", help="a Birder .pt to classify with (default: the planted test model)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    from birdstream.config import default_config
    from tests.support.planted import make_planted_checkpoint

    modes: list[int | str] = [0, *(int(n) for n in args.workers.split(","))] + (["ray"] if args.ray else [])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        weights = Path(args.weights) if args.weights else make_planted_checkpoint(root / "planted.pt")
        config = default_config()
        config = config.model_copy(update={"model": config.model.model_copy(
            update={"weights": str(weights), "device": args.device})})
        make_stills(root / "stills", args.stills)
        make_clips(root / "clips", args.clips, args.clip_s)
        sets = {"1080p stills": (root / "stills", args.stills),
                "1080p clips": (root / "clips", int(args.clips * args.clip_s * SAMPLE_FPS))}
        print(f"{len(modes)} modes x {args.rounds} rounds, alternating; images = frames classified")
        for name, (folder, images) in sets.items():
            run_once(config, folder, root / "warm.jsonl", modes[-1])  # warm up: page cache, imports
            walls: dict[int | str, list[float]] = {m: [] for m in modes}
            for _ in range(args.rounds):
                for m in modes:
                    walls[m].append(run_once(config, folder, root / "out.jsonl", m))
            ref = images / statistics.median(walls[0])
            for m in modes:
                rates = [images / w for w in walls[m]]
                med = statistics.median(rates)
                label = "in-process (reference)" if m == 0 else "--ray (local)" if m == "ray" else f"--workers {m}"
                print(f"{name:13s} {label:24s} {med:8.1f} images/s (spread {min(rates):.1f}-{max(rates):.1f})"
                      f"  ratio {med / ref:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
