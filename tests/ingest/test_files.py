"""Reading generated video files: sampling (CFR, VFR, key frames), roi, rotation, size changes, times."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from birdstream.ingest import iter_frames
from tests.ingest.conftest import CREATED, RED
from tests.support.video import Box, concat_ts, make_video
from tests.support.options import source_spec


def frames(path: Path, size=(32, 32), want_full: bool = False, **kw):
    return list(iter_frames(source_spec(id="t", url=str(path), **kw), size, want_full=want_full))


def test_cfr_sampling_rate_and_times(clip: Path) -> None:
    got = frames(clip, sample_fps=2)
    assert [f.media_time for f in got] == pytest.approx([0.0, 0.5, 1.0, 1.5], abs=1e-3)
    assert [f.seq for f in got] == [0, 1, 2, 3]
    assert all(f.source == str(clip) and f.image.shape == (32, 32, 3) and f.image.dtype == np.uint8
               for f in got)
    # file time (container creation_time) + media time
    assert [f.captured_at for f in got] == pytest.approx([CREATED.timestamp() + t for t in (0, .5, 1, 1.5)])
    assert frames(clip, sample_fps=0).__len__() == 20  # 0 = every frame


def test_vfr_sampling_uses_presentation_time(media: Path) -> None:
    times = [0.0, 0.05, 0.2, 0.3, 0.35, 0.55, 0.6, 0.65, 0.8, 0.9, 0.95, 1.15, 1.2, 1.25, 1.9]
    path = make_video(media / "vfr.mkv", times=times, fps=10, size=(64, 48))
    got = [round(f.media_time, 3) for f in frames(path, sample_fps=4)]
    assert got == [0.0, 0.3, 0.55, 0.8, 1.15, 1.25, 1.9]


def test_keyframes_only(media: Path) -> None:
    path = make_video(media / "gop.mp4", duration_s=2.0, fps=10, size=(64, 48), gop=5)
    got = frames(path, sample_fps=0, keyframes_only=True)
    assert [round(f.media_time, 3) for f in got] == [0.0, 0.5, 1.0, 1.5]


def test_roi_crops_in_source_pixels(clip: Path) -> None:
    got = frames(clip, size=(16, 16), sample_fps=1, roi=(100, 40, 40, 40), want_full=True)
    before, after = got[0], got[1]  # box appears at 1.0 s
    assert after.full.shape == (40, 40, 3)
    assert np.abs(after.image.astype(int) - RED).max() <= 30  # the red box (YUV 4:2:0 round trip)
    assert np.abs(before.image.astype(int) - RED).mean() > 60
    assert after.motion > 0.9 and before.motion == 0.0


def test_motion_is_always_set_and_tells_arrival(clip: Path) -> None:
    got = frames(clip, sample_fps=2)
    motion = [f.motion for f in got]
    assert motion[0] == 0.0 and motion[1] < 0.01  # scenery
    assert motion[2] > 0.05  # the box arrives at 1.0 s
    assert not any(f.keepalive for f in got)  # gate off for files: everything goes through


def test_resolution_change_mid_stream(media: Path) -> None:
    a = make_video(media / "big.ts", duration_s=1.0, fps=10, size=(160, 120))
    b = make_video(media / "small.ts", duration_s=1.0, fps=10, size=(96, 64), seed=3)
    path = concat_ts([a, b], media / "switch.ts")
    got = frames(path, size=(24, 24), sample_fps=2, want_full=True)
    assert [f.full.shape[:2] for f in got] == [(120, 160)] * 2 + [(64, 96)] * 2
    times = [f.media_time for f in got]
    assert all(y > x for x, y in zip(times, times[1:]))  # timestamps reset; media time goes on
    assert all(f.image.shape == (24, 24, 3) for f in got)


def test_rotated_odd_size_video(media: Path) -> None:
    path = make_video(media / "rot.mp4", duration_s=0.5, fps=10, size=(161, 121), noise=False,
                      objects=[Box(RED, (0, 0, 40, 20))], rotate=90)
    got = frames(path, size=(24, 24), sample_fps=0, want_full=True)
    full = got[0].full
    assert full.shape == (161, 121, 3)  # displayed upright: 121 wide, 161 high
    # counter-clockwise quarter turn: the top-left box ends at the bottom-left, 20 wide, 40 high
    assert np.abs(full[-30, 5].astype(int) - RED).max() < 40
    assert np.abs(full[5, 5].astype(int) - RED).max() > 100
    img = got[0].image  # the model-size picture is upright too
    assert np.abs(img[-2, 1].astype(int) - RED).max() < 40
    assert np.abs(img[1, 1].astype(int) - RED).max() > 100


def test_file_without_creation_time_uses_mtime(media: Path) -> None:
    path = make_video(media / "nometa.mp4", duration_s=1.0, fps=10, size=(64, 48))
    os.utime(path, (1_700_000_000, 1_700_000_000))
    got = frames(path, sample_fps=1)
    assert got[0].captured_at == pytest.approx(1_700_000_000.0)
    assert got[0].media_time == 0.0


def test_mjpeg_avi(media: Path) -> None:
    path = make_video(media / "trap.avi", duration_s=1.0, fps=10, size=(64, 48), codec="mjpeg")
    assert len(frames(path, sample_fps=2)) == 2


@pytest.mark.parametrize("name", ["06:00.mp4", "file:x.mp4", "http:clip.mp4", "ü ñ #1?.mp4"])
def test_odd_file_names_given_relative(clip: Path, tmp_path: Path, monkeypatch, name: str) -> None:
    (tmp_path / name).write_bytes(clip.read_bytes())
    monkeypatch.chdir(tmp_path)
    frames = list(iter_frames(source_spec(id="t", url=name, sample_fps=2), (16, 16)))
    assert len(frames) == 4 and frames[0].source == name
