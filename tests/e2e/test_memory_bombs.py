"""One pixel limit for every decode path, and a bounded picture kept for snapshots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from birdstream.ingest import iter_frames
from tests.support.options import source_spec
from birdstream.ingest.convert import FULL_MAX_SIDE
from tests.support.cli import birdstream_env
from tests.support.video import make_still, make_video

# Runs `birdstream classify` in a child and reports the child's peak memory (ru_maxrss, KiB).
PEAK = """
import json, resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"rc": r.returncode, "stderr": r.stderr,
                  "peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def test_a_16000_by_16000_video_is_refused_with_one_line_before_decoding(tmp_path: Path, planted: Path) -> None:
    bomb = tmp_path / "bomb.avi"  # 1.5 MB on disk, 768 MB per decoded picture, more as RGB
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=gray:s=16000x16000:d=0.04",
                    "-frames:v", "1", "-c:v", "mjpeg", "-q:v", "31", str(bomb)], check=True, timeout=120)
    out = subprocess.run([sys.executable, "-c", PEAK, sys.executable, "-m", "birdstream", "classify", "--model",
                          str(planted), str(bomb)], capture_output=True, text=True, env=birdstream_env(),
                         timeout=300, check=True)
    result = json.loads(out.stdout)
    assert result["rc"] == 1
    errors = [line for line in result["stderr"].splitlines() if not line.startswith("[")]
    assert errors == [f"birdstream: error: {bomb}: image too large - 16000x16000 pixels, limit 120000000"]
    assert result["peak_mib"] < 1200, result  # torch and the model; no picture of the bomb (was 2.3 GB)


def test_the_picture_kept_for_snapshots_is_bounded(tmp_path: Path) -> None:
    still = make_still(tmp_path / "big.jpg", size=(4000, 3000))
    clip = make_video(tmp_path / "big.mp4", duration_s=0.5, fps=2, size=(2560, 1440))
    spec = source_spec("s", str(still))
    [frame] = list(iter_frames(spec, (32, 32), want_full=True))
    assert frame.full is not None and frame.full.shape == (1440, FULL_MAX_SIDE, 3)
    frames = list(iter_frames(source_spec("v", str(clip)), (32, 32), want_full=True))
    assert frames and all(f.full is not None and f.full.shape == (1080, FULL_MAX_SIDE, 3) for f in frames)
