"""Broken and hostile inputs: one clear error line naming the thing; healthy streams keep going."""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from birdstream.errors import SourceError
from birdstream.ingest import StreamError, StreamReader, iter_frames
from tests.support.video import corrupt_copy, make_audio_only, make_video, truncate_copy, write_bytes
from tests.support.options import source_spec


def read_all(path: Path | str, **kw):
    return list(iter_frames(source_spec(id="t", url=str(path), **kw), (32, 32)))


def one_line_error(path: Path | str, kind: str, **kw) -> str:
    with pytest.raises(SourceError) as info:
        read_all(path, **kw)
    err = info.value
    msg = str(err)
    assert "\n" not in msg and str(path) in msg, msg
    assert isinstance(err, StreamError) and err.kind == kind, msg
    return msg


@pytest.fixture(scope="module")
def good(media: Path) -> Path:
    return make_video(media / "good.mp4", duration_s=2.0, fps=10, size=(96, 64), gop=5)


def test_missing_file(media: Path) -> None:
    assert "not found" in one_line_error(media / "nope.mp4", "not_found")


def test_zero_byte_file(media: Path) -> None:
    assert "not a readable video" in one_line_error(write_bytes(media / "empty.mp4", b""), "not_video")


def test_random_bytes(media: Path) -> None:
    data = np.random.default_rng(5).integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    one_line_error(write_bytes(media / "garbage.mp4", data), "not_video")


def test_audio_only(media: Path) -> None:
    msg = one_line_error(make_audio_only(media / "audio.m4a"), "not_video")
    assert "no video stream" in msg


def test_truncated_mp4(media: Path, good: Path) -> None:
    # MP4 writes its index (moov) last: a cut file has none and cannot be read at all
    msg = one_line_error(truncate_copy(good, media / "trunc.mp4", 0.6), "not_video")
    assert "Errno" not in msg


def test_truncated_ts_gives_the_frames_before_the_cut(media: Path) -> None:
    ts = make_video(media / "good.ts", duration_s=2.0, fps=10, size=(96, 64), gop=5)
    got = read_all(truncate_copy(ts, media / "trunc.ts", 0.5), sample_fps=0)
    assert 3 <= len(got) < 20


def test_mid_file_corruption_skips_and_goes_on(media: Path, caplog) -> None:
    ts = make_video(media / "c.ts", duration_s=3.0, fps=10, size=(96, 64), gop=5)
    bad = corrupt_copy(ts, media / "corrupt.ts", start=0.4, length=0.1)
    with caplog.at_level(logging.WARNING):
        got = read_all(bad, sample_fps=0)
    times = [f.media_time for f in got]
    assert times[0] == 0.0 and times[-1] > 2.5  # frames after the damage still arrive
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and str(bad) in warnings[0] and "damaged data" in warnings[0]


def test_decompression_bomb_png(media: Path) -> None:
    path = media / "bomb.png"
    w = h = 60_000  # 3.6 gigapixels claimed by a few hundred bytes

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b"")
    msg = one_line_error(write_bytes(path, png), "too_large")
    assert "image too large" in msg


def test_huge_image_is_read_cheaply_or_refused_by_limit(media: Path) -> None:
    path = media / "huge.jpg"
    Image.new("RGB", (8000, 6000), (30, 200, 40)).save(path, quality=80)
    got = read_all(path)
    assert len(got) == 1 and got[0].image.shape == (32, 32, 3)
    assert np.abs(got[0].image.astype(int) - (30, 200, 40)).max() < 10
    msg = one_line_error(path, "too_large", max_image_pixels=10_000_000)
    assert "8000x6000" in msg


def test_not_an_image(media: Path) -> None:
    one_line_error(write_bytes(media / "fake.jpg", b"this is text"), "not_video")


def test_unknown_scheme() -> None:
    with pytest.raises(SourceError, match="unsupported URL scheme 'gopher'"):
        read_all("gopher://host/x")


def test_missing_camera_device() -> None:
    one_line_error("/dev/video97", "not_found")


def test_bad_reader_fails_alone_while_healthy_one_delivers(media: Path, good: Path, collector,
                                                           readers, caplog) -> None:
    from tests.ingest.conftest import Collector

    garbage = write_bytes(media / "bad.mp4", b"\x00\x01garbage" * 100)
    bad_out = Collector()
    bad = StreamReader(source_spec(id="bad", url=str(garbage)), input_size=(16, 16),
                       emit=bad_out.emit, on_status=bad_out.on_status)
    ok = StreamReader(source_spec(id="ok", url=str(good), loop=True, sample_fps=10), input_size=(16, 16),
                      emit=collector.emit, on_status=collector.on_status)
    readers += [bad, ok]
    with caplog.at_level(logging.WARNING):
        bad.start()
        ok.start()
        bad_out.wait(lambda: "failed" in bad_out.states, what="bad stream failing")
        n = len(collector.frames)
        collector.wait(lambda: len(collector.frames) >= n + 30, what="healthy stream frames")
    assert bad.status.state == "failed" and "not a readable video" in bad.status.error
    assert ok.status.state == "running" and ok.status.error is None
    lines = [r.getMessage() for r in caplog.records if "bad" in r.getMessage()]
    assert len(lines) == 1 and str(garbage) in lines[0]


def test_reader_with_unknown_scheme_fails_with_one_line(collector, readers, caplog) -> None:
    r = StreamReader(source_spec(id="x", url="ftp://u:pw@h/a.mp4"), input_size=(8, 8),
                     emit=collector.emit, on_status=collector.on_status)
    readers.append(r)
    with caplog.at_level(logging.WARNING):
        r.start()
        assert r.join(5)
    assert collector.states == ["failed"] and "unsupported URL scheme" in r.status.error
    assert [rec.getMessage() for rec in caplog.records] == [r.status.error]
    assert "pw" not in r.status.error


def test_reader_with_missing_camera_keeps_retrying(collector, readers) -> None:
    r = StreamReader(source_spec(id="usb", url="/dev/video97", backoff_min_s=0.05, backoff_max_s=0.1),
                     input_size=(8, 8), emit=collector.emit, on_status=collector.on_status)
    readers.append(r)
    r.start()
    collector.wait(lambda: r.status.reconnects >= 2, what="retries")
    assert collector.states == ["reconnecting"] and "not found" in r.status.error
    r.stop()
    assert r.join(1.0)


@pytest.mark.timeout(60)
def test_a_fifo_is_refused_at_once_not_waited_on(media: Path, good: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    assert "not a regular file" in one_line_error(fifo, "not_video")
    os.mkfifo(tmp_path / "pipe.jpg")
    assert "not a regular file" in one_line_error(tmp_path / "pipe.jpg", "not_video")
    # in a folder, a FIFO (even with a media name) is no media file; the real clip is still read
    (tmp_path / "card").mkdir()
    os.mkfifo(tmp_path / "card" / "a.jpg")
    os.mkfifo(tmp_path / "card" / "b.mp4")
    (tmp_path / "card" / "c.mp4").write_bytes(good.read_bytes())
    frames = read_all(tmp_path / "card")
    assert frames and {Path(f.source).name for f in frames} == {"c.mp4"}


def test_a_folder_without_media_says_so(tmp_path: Path, caplog) -> None:
    (tmp_path / "notes.txt").write_text("no pictures here")
    (tmp_path / "IMG_0001.CR2").write_bytes(b"raw")
    caplog.set_level(logging.WARNING, logger="birdstream.ingest")
    assert read_all(tmp_path) == []
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path}: no video or image files in this folder (nothing classified)"]
