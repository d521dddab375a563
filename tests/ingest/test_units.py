"""Pure parts of ingest: URL redaction, source kinds, sampling by time, media clock, motion gate."""

from __future__ import annotations

import numpy as np
import pytest

from birdstream.errors import SourceError
from birdstream.ingest import redact_text, redact_url, source_kind
from birdstream.ingest.reader import Backoff
from birdstream.ingest.sampling import MediaClock, MotionGate, Sampler
from tests.support.options import source_spec


@pytest.mark.parametrize("url, expected", [
    ("rtsp://admin:s3cret@10.0.0.5:554/stream1", "rtsp://***@10.0.0.5:554/stream1"),
    ("rtsp://admin@10.0.0.5/s", "rtsp://***@10.0.0.5/s"),
    ("http://cam/video.mjpg?user=admin&password=s3cret", "http://cam/video.mjpg?user=admin&password=***"),
    ("https://u:p%40ss@cam.local/live.m3u8", "https://***@cam.local/live.m3u8"),
    ("rtsp://10.0.0.5/stream1", "rtsp://10.0.0.5/stream1"),
    # a password with an unencoded / ? or # hides the userinfo from URL parsers; it is still secret
    ("rtsp://admin:ab/c9@10.0.0.5/s", "rtsp://***@10.0.0.5/s"),
    ("rtsp://admin:a?b#c@cam:554/s?token=t", "rtsp://***@cam:554/s?token=***"),
    ("http://cam:8080/snap?mail=a@b.org", "http://cam:8080/snap?mail=a@b.org"),
    ("http://[::1]:80/a@b", "http://[::1]:80/a@b"),
    ("/data/clip.mp4", "/data/clip.mp4"),
])
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_text_finds_urls_in_messages() -> None:
    msg = "Server returned 401 Unauthorized: 'rtsp://admin:s3cret@10.0.0.5/x'"
    assert "s3cret" not in redact_text(msg)
    assert "rtsp://***@10.0.0.5/x" in redact_text(msg)


def test_redact_text_removes_a_password_with_a_space() -> None:
    # A space ends what a URL pattern sees; the old text kept "rtsp://admin:my" and "secret@".
    assert redact_text("cannot open rtsp://admin:my secret@cam:554/s; retrying") == \
        "cannot open rtsp://***@cam:554/s; retrying"


def test_redact_text_keeps_the_punctuation_after_a_url() -> None:
    msg = "stream cam (rtsp://v:pw@10.0.0.5/s?token=abc): unreachable; see http://u:p@h/a?key=k."
    assert redact_text(msg) == "stream cam (rtsp://***@10.0.0.5/s?token=***): unreachable; see http://***@h/a?key=***."


def test_source_kinds(tmp_path) -> None:
    assert source_kind("rtsp://h/x") == "rtsp"
    assert source_kind("rtsps://h/x") == "rtsp"
    assert source_kind("https://h/x.m3u8") == "http"
    assert source_kind("rtmp://h/live") == "rtmp"
    assert source_kind("/dev/video0") == "v4l2"
    assert source_kind(str(tmp_path)) == "folder"
    assert source_kind(str(tmp_path / "a.mp4")) == "file"
    assert source_kind(f"file://{tmp_path}") == "folder"
    assert source_spec(id="a", url="rtsp://h/x").gate_enabled
    assert not source_spec(id="a", url=str(tmp_path / "a.mp4")).gate_enabled


def test_unknown_scheme_is_one_clear_line() -> None:
    with pytest.raises(SourceError) as info:
        source_kind("ftp://user:pw@host/clip.mp4")
    msg = str(info.value)
    assert "\n" not in msg and "unsupported URL scheme 'ftp'" in msg and "pw" not in msg


def test_sampler_cfr_takes_one_frame_per_period() -> None:
    s = Sampler(2.0)
    taken = [i / 25 for i in range(250) if s.take(i / 25)]  # 10 s at 25 fps
    assert len(taken) == 20
    assert np.allclose(np.diff(taken), 0.5, atol=0.041)


def test_sampler_vfr_first_frame_after_each_step() -> None:
    times = [0.0, 0.05, 0.2, 0.3, 0.35, 0.55, 0.6, 0.65, 0.8, 0.9, 0.95, 1.15, 1.2, 1.25]
    s = Sampler(4.0)
    assert [t for t in times if s.take(t)] == [0.0, 0.3, 0.55, 0.8, 1.15, 1.25]


def test_sampler_survives_jumps_and_resets() -> None:
    s = Sampler(1.0)
    assert s.take(0.0) and not s.take(0.5) and s.take(1.0)
    assert s.take(100.0)  # forward jump: sample at once, re-anchor
    assert not s.take(100.5) and s.take(101.0)
    assert s.take(3.0)  # timestamps reset backwards: re-anchor
    assert not s.take(3.5) and s.take(4.0)


def test_sampler_zero_fps_takes_everything() -> None:
    s = Sampler(0)
    assert all(s.take(t / 10) for t in range(10))


def test_media_clock_is_continuous_over_resets() -> None:
    clock = MediaClock()
    raw = [10.0, 10.1, 10.2, 10.3, 0.0, 0.1, None, 0.3]
    out = [clock(t) for t in raw]
    assert out[0] == 0.0 and out[3] == pytest.approx(0.3)
    assert all(b > a for a, b in zip(out, out[1:]))
    assert out[4] == pytest.approx(0.3 + clock._step, abs=0.1)
    assert clock.discontinuities == 1
    clock.restart()  # a looping file starts again at 0
    assert clock(0.0) > out[-1]


def test_motion_gate_measures_change_and_keeps_alive() -> None:
    rng = np.random.default_rng(0)
    scene = rng.integers(60, 200, (96, 96, 3), dtype=np.uint8)
    bird = scene.copy()
    bird[24:48, 24:48] = (255, 0, 0)  # 1/16 of the picture
    gate = MotionGate(enabled=True, threshold=0.02, pixel_delta=15, keepalive_s=10.0)
    first = gate.check(scene, 0.0)
    assert first.passed and first.keepalive and first.motion == 0.0
    quiet = gate.check(scene, 1.0)
    assert not quiet.passed and quiet.motion == 0.0
    moved = gate.check(bird, 2.0)
    assert moved.passed and not moved.keepalive and moved.motion == pytest.approx(1 / 16, abs=0.02)
    assert not gate.check(scene, 3.0).passed  # a one-frame visit barely moved the background
    kept = gate.check(scene, 20.0)
    assert kept.passed and kept.keepalive
    off = MotionGate(enabled=False, threshold=0.02, pixel_delta=15, keepalive_s=10.0)
    off.check(scene, 0.0)
    v = off.check(bird, 0.5)
    assert v.passed and v.motion > 0.05  # motion is measured even when the gate is off


def test_backoff_grows_with_jitter_and_resets() -> None:
    import random

    b = Backoff(1.0, 60.0, random.Random(1))
    delays = [b.next() for _ in range(10)]
    assert 0.99 <= delays[0] <= 1.0
    assert all(1.0 <= d <= 60.0 for d in delays) and max(delays) > 30
    assert delays[3] <= 8.0 and delays[3] >= 4.0
    b.reset()
    assert b.next() <= 1.0
