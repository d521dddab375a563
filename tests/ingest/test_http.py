"""http(s) sources against a real local HTTP server: a plain file, an HLS playlist, live MJPEG."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from birdstream.ingest import StreamError, StreamReader, iter_frames
from tests.support.http_media import HttpMediaServer
from tests.support.video import make_video
from tests.support.options import source_spec


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    make_video(root / "clip.mp4", duration_s=2.0, fps=10, size=(96, 64), gop=5)
    ts = make_video(root / "clip.ts", duration_s=3.0, fps=10, size=(96, 64), gop=5)
    subprocess.run([shutil.which("ffmpeg") or "/usr/bin/ffmpeg", "-v", "error", "-i", str(ts), "-c", "copy",
                    "-f", "hls", "-hls_time", "1", "-hls_list_size", "0", "-hls_playlist_type", "vod",
                    str(root / "live.m3u8")], check=True, timeout=60)
    return root


def test_plain_file_over_http_has_media_times_and_ends(site: Path, collector, readers) -> None:
    with HttpMediaServer(site) as srv:
        spec = source_spec(id="web", url=srv.url("clip.mp4"), sample_fps=2)
        r = StreamReader(spec, input_size=(16, 16), emit=collector.emit, on_status=collector.on_status)
        readers.append(r)
        r.start()
        collector.wait(lambda: "stopped" in collector.states, what="end of the file")
    assert [f.media_time for f in collector.frames] == pytest.approx([0.0, 0.5, 1.0, 1.5])


def test_hls_playlist(site: Path) -> None:
    with HttpMediaServer(site) as srv:
        frames = list(iter_frames(source_spec(id="hls", url=srv.url("live.m3u8"), sample_fps=2), (16, 16)))
    assert [f.media_time for f in frames] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])


def test_missing_http_file_is_not_found(site: Path) -> None:
    with HttpMediaServer(site) as srv, pytest.raises(StreamError) as info:
        next(iter_frames(source_spec(id="web", url=srv.url("nope.mp4")), (16, 16)))
    assert info.value.kind == "not_found"


def test_live_mjpeg_camera(site: Path, collector, readers) -> None:
    with HttpMediaServer(site) as srv:
        spec = source_spec(id="mjpeg", url=srv.url("mjpeg"), sample_fps=5, motion_gate=False)
        r = StreamReader(spec, input_size=(16, 16), emit=collector.emit, on_status=collector.on_status)
        readers.append(r)
        r.start()
        collector.wait(lambda: len(collector.frames) >= 4, what="MJPEG frames")
        r.stop()
        assert r.join(1.0)
    f = collector.frames[-1]
    assert f.media_time is None and f.motion > 0.0  # live: wall-clock times; the bar moves
