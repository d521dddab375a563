"""Decode + sample cost of ingest against FFmpeg's bare decode, measured in the same run.

Generates a ~10 s 1080p H.264 file, then times (best of N):
  reference: ffmpeg -threads 1 -i FILE -f null -         (decode every frame, nothing else)
  ingest:    iter_frames(sample_fps=2, decode_threads=1)  (decode every frame, convert 2 per s to 384x384)
and prints ingest / reference. Target: <= 1.2.

usage: python bench/decode.py [--seconds 10] [--runs 3] [--keep FILE]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from birdstream.ingest import SourceSpec, iter_frames  # noqa: E402


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="use/keep this clip instead of a temporary one")
    args = ap.parse_args()
    if shutil.which("ffmpeg") is None:
        print("ffmpeg not found", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        clip = args.keep or Path(tmp) / "bench_1080p.mp4"
        if not clip.exists():
            make_clip(clip, args.seconds)

        def reference() -> None:
            subprocess.run(["ffmpeg", "-v", "error", "-threads", "1", "-i", str(clip), "-f", "null", "-"],
                           check=True)

        sampled = []

        def ingest() -> None:
            spec = SourceSpec(id="bench", url=str(clip), sample_fps=2, decode_threads=1)
            sampled[:] = [f.seq for f in iter_frames(spec, (384, 384))]

        refs, ours = [], []
        for _ in range(args.runs):  # interleaved, so both see the same machine load
            refs.append(measure(reference))
            ours.append(measure(ingest))
        ref_wall, ref_cpu = min(r[0] for r in refs), min(r[1] for r in refs)
        our_wall, our_cpu = min(r[0] for r in ours), min(r[1] for r in ours)
        print(f"clip: {clip.name} 1920x1080 H.264, {args.seconds:g} s at 25 fps; {len(sampled)} frames sampled")
        print(f"ffmpeg -threads 1 decode : wall {ref_wall:.3f} s, cpu {ref_cpu:.3f} s (best of {args.runs})")
        print(f"ingest decode+sample 2/s: wall {our_wall:.3f} s, cpu {our_cpu:.3f} s")
        print(f"ratio ingest/ffmpeg: wall {our_wall / ref_wall:.3f}, cpu {our_cpu / ref_cpu:.3f} (target <= 1.2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
