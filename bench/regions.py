"""Cost of region proposals and crops on 1080p, against decoding, measured in the same run.

Generates a ~10 s 1080p H.264 clip (25 fps, key frame every 2 s) of FFmpeg's testsrc2 (moving
shapes and counters: things to propose) and measures:

1. per sampled frame, on one core: RegionProposer.propose (grey, resize to 320 px, background,
   threshold, morphology, components) and propose + crops, each against the reference: PyAV's
   conversion of the same decoded 1080p picture to RGB (what ingest does for every sampled frame
   with regions on). Median of the per-frame times over alternating rounds, and the spread.
2. the whole ingest: iter_frames(sample_fps=2, decode_threads=1) with regions on and off, against
   `ffmpeg -threads 1 -i FILE -f null -` (decode every frame, nothing else); best of N, interleaved.
   Target: regions on within 1.3x of the FFmpeg decode.

usage: python bench/regions.py [--seconds 10] [--runs 3] [--keep FILE]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.decode import make_clip, measure  # noqa: E402
from birdstream.ingest import iter_frames  # noqa: E402
from birdstream.ingest.regions import RegionOptions, RegionProposer  # noqa: E402
from tests.support.options import source_spec  # noqa: E402


def sampled_pictures(clip: Path, every: int = 12) -> list[av.VideoFrame]:
    with av.open(str(clip)) as container:
        return [f for i, f in enumerate(container.decode(video=0)) if i % every == 0]


def per_frame(pictures: list[av.VideoFrame], rounds: int) -> dict[str, list[float]]:
    """Milliseconds per sampled frame of each step, alternating the steps each round."""
    rgbs = [p.to_ndarray(format="rgb24") for p in pictures]
    out: dict[str, list[float]] = {"rgb24 conversion (reference)": [], "propose": [], "propose + crops": []}
    for _ in range(rounds):
        t = time.perf_counter()
        for p in pictures:
            p.to_ndarray(format="rgb24")
        out["rgb24 conversion (reference)"].append((time.perf_counter() - t) * 1000 / len(pictures))
        proposer = RegionProposer(RegionOptions(hold_s=1e9), (384, 384))
        t = time.perf_counter()
        for i, rgb in enumerate(rgbs):
            proposer.propose(rgb, i * 0.5)
        out["propose"].append((time.perf_counter() - t) * 1000 / len(rgbs))
        proposer = RegionProposer(RegionOptions(hold_s=1e9), (384, 384))
        crops = 0
        t = time.perf_counter()
        for i, rgb in enumerate(rgbs):
            crops += len(proposer.crops(rgb, proposer.propose(rgb, i * 0.5)))
        out["propose + crops"].append((time.perf_counter() - t) * 1000 / len(rgbs))
    out["crops per frame"] = [crops / len(rgbs)]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="use/keep this clip instead of a temporary one")
    args = ap.parse_args()
    if shutil.which("ffmpeg") is None:
        print("ffmpeg not found", file=sys.stderr)
        return 1
    cv2.setNumThreads(1)  # one core, as the target says
    with tempfile.TemporaryDirectory() as tmp:
        clip = args.keep or Path(tmp) / "bench_1080p.mp4"
        if not clip.exists():
            make_clip(clip, args.seconds)
        pictures = sampled_pictures(clip)
        per_frame(pictures[:3], 1)  # warm up
        steps = per_frame(pictures, max(5, args.runs * 3))
        ref = statistics.median(steps["rgb24 conversion (reference)"])
        print(f"clip: {clip.name} 1920x1080 H.264, {args.seconds:g} s; {len(pictures)} sampled pictures; "
              f"{steps['crops per frame'][0]:.1f} crops per frame")
        for name in ("rgb24 conversion (reference)", "propose", "propose + crops"):
            ms = steps[name]
            print(f"{name:<30}: median {statistics.median(ms):.2f} ms/frame (spread {min(ms):.2f}-{max(ms):.2f}), "
                  f"x{statistics.median(ms) / ref:.2f} of the rgb24 conversion")

        def ffmpeg() -> None:
            subprocess.run(["ffmpeg", "-v", "error", "-threads", "1", "-i", str(clip), "-f", "null", "-"], check=True)

        def ingest(regions: RegionOptions | None) -> None:
            spec = source_spec("bench", clip, sample_fps=2, decode_threads=1, regions=regions)
            for _ in iter_frames(spec, (384, 384)):
                pass

        rows = {"ffmpeg -threads 1 decode": ffmpeg, "ingest 2/s, regions off": lambda: ingest(None),
                "ingest 2/s, regions on": lambda: ingest(RegionOptions())}
        wall: dict[str, list[float]] = {name: [] for name in rows}
        cpu: dict[str, list[float]] = {name: [] for name in rows}
        ingest(None)  # warm up
        for _ in range(args.runs):  # interleaved: every row sees the same machine load
            for name, fn in rows.items():
                w, c = measure(fn)
                wall[name].append(w)
                cpu[name].append(c)
        ref = "ffmpeg -threads 1 decode"
        for name in rows:
            ws, cs = wall[name], cpu[name]
            print(f"{name:<30}: cpu median {statistics.median(cs):.3f} s (spread {min(cs):.3f}-{max(cs):.3f}), "
                  f"x{statistics.median(cs) / statistics.median(cpu[ref]):.3f} cpu, "
                  f"x{min(ws) / min(wall[ref]):.3f} best wall of the ffmpeg decode")
        on, off = statistics.median(cpu["ingest 2/s, regions on"]), statistics.median(cpu["ingest 2/s, regions off"])
        print(f"ratio regions-on ingest/ffmpeg (cpu, median of {args.runs}): {on / statistics.median(cpu[ref]):.3f} "
              f"(target <= 1.3); regions on/off {on / off:.3f}; "
              f"propose: {statistics.median(steps['propose']):.2f} ms/frame (target < 3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
