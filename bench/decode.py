"""Decode + sample cost of ingest against FFmpeg's bare decode, measured in the same run.

Generates a ~10 s 1080p H.264 file (25 fps, a key frame every 2 s like a typical camera), then
times (best of N, interleaved so all rows see the same machine load):
  reference: ffmpeg -threads 1 -i FILE -f null -         (decode every frame, nothing else)
  ingest:    iter_frames(sample_fps=2, decode_threads=1)  (decode every frame, convert 2 per s to 384x384)
  key frames: iter_frames(keyframes_only=True, ...)       (decode key frames only, convert each)
              and FFmpeg's own key-frame-only decode (-skip_frame nokey) for comparison
  hwaccel:   iter_frames(hwaccel=cuda, ...)               (only where a cuda device opens; else skipped)
and prints each against the reference. Target for ingest: <= 1.2.

usage: python bench/decode.py [--seconds 10] [--runs 3] [--keep FILE] [--hwaccel cuda]
"""

from __future__ import annotations

import argparse
import logging
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from birdstream.ingest import iter_frames  # noqa: E402
from birdstream.ingest.hwaccel import HwDecoder  # noqa: E402
from tests.support.options import source_spec  # noqa: E402


def make_clip(path: Path, seconds: float) -> None:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=25:duration={seconds}",
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "50", str(path)],
        check=True,
    )


def measure(fn) -> tuple[float, float]:
    """(wall, cpu) seconds of one call; cpu counts this process and its finished children."""
    def cpu() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    w, c = time.perf_counter(), cpu()
    fn()
    return time.perf_counter() - w, cpu() - c


def hw_problem(kind: str) -> str | None:
    """Why the hardware row cannot run here, or None when the device opens."""
    hw = HwDecoder(kind, None, stream="bench", label="bench")
    logging.disable(logging.WARNING)  # the reason is printed below instead
    try:
        if hw.accel() is not None:
            return None
    finally:
        logging.disable(logging.NOTSET)
    return next(iter(hw.reasons.values()), "not available")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="use/keep this clip instead of a temporary one")
    ap.add_argument("--hwaccel", default="cuda", help="device type of the hardware row (default cuda)")
    args = ap.parse_args()
    if shutil.which("ffmpeg") is None:
        print("ffmpeg not found", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        clip = args.keep or Path(tmp) / "bench_1080p.mp4"
        if not clip.exists():
            make_clip(clip, args.seconds)

        def ffmpeg(*extra: str) -> None:
            subprocess.run(["ffmpeg", "-v", "error", "-threads", "1", *extra, "-i", str(clip), "-f", "null", "-"],
                           check=True)

        sampled: dict[str, int] = {}

        def ingest(name: str, **kw) -> None:
            spec = source_spec(id=f"bench-{name}", url=str(clip), sample_fps=2, decode_threads=1, **kw)
            sampled[name] = sum(1 for _ in iter_frames(spec, (384, 384)))

        hw_skip = hw_problem(args.hwaccel)
        rows = {
            "ffmpeg -threads 1 decode": lambda: ffmpeg(),
            "ingest decode+sample 2/s": lambda: ingest("all"),
            "ffmpeg key frames only": lambda: ffmpeg("-skip_frame", "nokey"),
            "ingest key frames only": lambda: ingest("key", keyframes_only=True),
        }
        if hw_skip is None:
            rows[f"ingest hwaccel {args.hwaccel} 2/s"] = lambda: ingest("hw", hwaccel=args.hwaccel)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
        for _ in range(args.runs):  # interleaved, so every row sees the same machine load
            for name, fn in rows.items():
                times[name].append(measure(fn))
        best = {name: (min(t[0] for t in ts), min(t[1] for t in ts)) for name, ts in times.items()}
        ref_wall, ref_cpu = best["ffmpeg -threads 1 decode"]
        print(f"clip: {clip.name} 1920x1080 H.264, {args.seconds:g} s at 25 fps, key frame every 2 s; "
              f"sampled: all {sampled['all']}, key frames {sampled['key']}")
        for name, (wall, cpu) in best.items():
            print(f"{name:<28}: wall {wall:.3f} s, cpu {cpu:.3f} s  "
                  f"(x{wall / ref_wall:.3f} wall, x{cpu / ref_cpu:.3f} cpu of the ffmpeg decode; best of {args.runs})")
        if hw_skip is not None:
            print(f"ingest hwaccel {args.hwaccel}: skipped ({hw_skip})")
        our_wall, our_cpu = best["ingest decode+sample 2/s"]
        key_wall, key_cpu = best["ingest key frames only"]
        print(f"ratio ingest/ffmpeg: wall {our_wall / ref_wall:.3f}, cpu {our_cpu / ref_cpu:.3f} (target <= 1.2)")
        print(f"ratio key-frames-only/ffmpeg: wall {key_wall / ref_wall:.3f}, cpu {key_cpu / ref_cpu:.3f}; "
              f"key-frames-only/ingest: cpu {key_cpu / our_cpu:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
