"""Camera-trap folders (EXIF order, watch mode) and file streams on the reader thread (pace, loop)."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path

import pytest

from birdstream.ingest import StreamReader, iter_frames, list_media
from tests.support.video import make_still, make_video
from tests.support.options import source_spec


@pytest.fixture
def card(tmp_path: Path) -> Path:
    """Stills whose EXIF order differs from name and mtime order, one without EXIF, and clips."""
    d = tmp_path / "DCIM" / "100MEDIA"
    d.mkdir(parents=True)
    make_still(d / "IMG_0001.JPG", taken_at=datetime(2024, 5, 1, 7, 0, 0), mtime=1_000, size=(64, 48))
    make_still(d / "IMG_0002.JPG", taken_at=datetime(2024, 5, 1, 6, 0, 0), mtime=3_000, size=(64, 48))
    make_still(d / "IMG_0003.png", mtime=1_714_550_000, size=(64, 48))  # no EXIF: 2024-05-01 07:53:20Z
    make_video(d / "VID_0005.mp4", duration_s=1.0, fps=10, size=(64, 48))
    make_video(d / "VID_0004.avi", duration_s=1.0, fps=10, size=(64, 48), codec="mjpeg")
    (d / "notes.txt").write_text("not media")
    return tmp_path


def test_folder_order_exif_then_mtime_then_clips(card: Path) -> None:
    d = card / "DCIM" / "100MEDIA"
    assert [p.name for p in list_media(card)] == [
        "IMG_0002.JPG", "IMG_0001.JPG", "IMG_0003.png", "VID_0004.avi", "VID_0005.mp4"]
    frames = list(iter_frames(source_spec(id="card", url=str(card), sample_fps=2), (16, 16)))
    sources = [Path(f.source).name for f in frames]
    assert sources == ["IMG_0002.JPG", "IMG_0001.JPG", "IMG_0003.png"] + ["VID_0004.avi"] * 2 + ["VID_0005.mp4"] * 2
    stills = frames[:3]
    assert [f.captured_at for f in stills] == [datetime(2024, 5, 1, 6).timestamp(),
                                               datetime(2024, 5, 1, 7).timestamp(), 1_714_550_000]
    assert all(f.media_time is None for f in stills)
    assert [f.media_time for f in frames[3:]] == pytest.approx([0.0, 0.5, 0.0, 0.5])  # per clip
    assert [f.seq for f in frames] == list(range(7))
    assert str(d) in frames[0].source


def test_unreadable_file_in_a_folder_is_reported_and_skipped(card: Path) -> None:
    (card / "DCIM" / "100MEDIA" / "VID_0004b.mp4").write_bytes(b"broken")
    errors = []
    frames = list(iter_frames(source_spec(id="card", url=str(card)), (16, 16), on_error=errors.append))
    assert len(frames) == 7 and len(errors) == 1 and "VID_0004b.mp4" in str(errors[0])


def test_watch_mode_picks_up_a_new_file(tmp_path: Path, collector, readers) -> None:
    make_still(tmp_path / "a.jpg", mtime=time.time() - 60)
    spec = source_spec(id="trap", url=str(tmp_path), watch=True, watch_interval_s=0.1)
    r = StreamReader(spec, input_size=(16, 16), emit=collector.emit, on_status=collector.on_status)
    readers.append(r)
    r.start()
    collector.wait(lambda: len(collector.frames) == 1, what="the first still")
    make_video(tmp_path / "new.mp4", duration_s=1.0, fps=10, size=(64, 48))
    collector.wait(lambda: len(collector.frames) == 3, what="frames of the new clip")
    assert Path(collector.frames[-1].source).name == "new.mp4"
    assert r.status.state == "running"


def test_file_stream_ends_stopped(clip: Path, collector, readers) -> None:
    r = StreamReader(source_spec(id="f", url=str(clip)), input_size=(16, 16), emit=collector.emit,
                     on_status=collector.on_status)
    readers.append(r)
    r.start()
    collector.wait(lambda: "stopped" in collector.states, what="end of file")
    assert r.join(5)
    assert [f.media_time for f in collector.frames] == pytest.approx([0.0, 0.5, 1.0, 1.5])
    assert collector.states == ["running", "stopped"]
    assert r.status.frames_in == 20 and r.status.frames_sampled == 4


def test_loop_keeps_media_time_increasing(clip: Path, collector, readers) -> None:
    r = StreamReader(source_spec(id="f", url=str(clip), loop=True, sample_fps=2), input_size=(16, 16),
                     emit=collector.emit, on_status=collector.on_status)
    readers.append(r)
    r.start()
    collector.wait(lambda: len(collector.frames) >= 12, what="three passes")
    r.stop()
    assert r.join(1.0)
    times = [f.media_time for f in collector.frames[:12]]
    assert times == pytest.approx([0.5 * i for i in range(12)], abs=0.01)  # 2 s clip, 4 per pass
    assert r.status.state == "stopped"


def test_realtime_paces_by_media_time(clip: Path, collector, readers) -> None:
    r = StreamReader(source_spec(id="f", url=str(clip), realtime=True, loop=True, sample_fps=10),
                     input_size=(16, 16), emit=collector.emit, on_status=collector.on_status)
    readers.append(r)
    r.start()
    collector.wait(lambda: len(collector.frames) >= 16, timeout=30, what="paced frames")
    r.stop()
    assert r.join(1.0)
    # Paced like a camera: media time never runs ahead of the time spent delivering it. Unpaced,
    # 1.5 s of media would arrive within milliseconds. (A one-sided bound: slowness cannot fail it.)
    media_span = collector.frames[15].media_time - collector.frames[0].media_time
    wall_span = collector.arrivals[15] - collector.arrivals[0]
    assert media_span == pytest.approx(1.5, abs=0.01)
    assert wall_span >= media_span - 0.5
    assert [f.seq for f in collector.frames] == list(range(len(collector.frames)))


def test_prometheus_counters(clip: Path, collector, readers) -> None:
    from prometheus_client import REGISTRY

    r = StreamReader(source_spec(id="metrics-test", url=str(clip), motion_gate=True, keepalive_s=100),
                     input_size=(16, 16), emit=collector.emit, on_status=collector.on_status)
    readers.append(r)
    r.start()
    assert r.join(10)

    def value(name: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"stream": "metrics-test"})

    assert value("birdstream_ingest_frames_decoded_total") == 20
    assert value("birdstream_ingest_frames_sampled_total") == 4
    # gate on: the first frame (keep-alive) and the box (arrived at 1.0 s, still there at 1.5 s,
    # not yet absorbed by the slow background) pass; the still scene at 0.5 s waits
    assert value("birdstream_ingest_frames_emitted_total") == 3
    assert value("birdstream_ingest_frames_gated_total") == 1
    assert REGISTRY.get_sample_value("birdstream_ingest_state",
                                     {"stream": "metrics-test", "state": "stopped"}) == 1.0


def test_folder_watcher_forgets_deleted_files(tmp_path: Path) -> None:
    from birdstream.ingest.media import FolderWatcher

    old = [tmp_path / f"old{i}.jpg" for i in range(3)]
    for path in old:
        path.write_bytes(b"x")
    watcher = FolderWatcher(tmp_path, set(old))
    growing = tmp_path / "growing.jpg"
    growing.write_bytes(b"x")
    assert watcher.poll() == []  # not yet known to be complete
    for path in [*old, growing]:
        path.unlink()
    assert watcher.poll() == []
    assert watcher.seen == set() and watcher._sizes == {}
    again = tmp_path / "old0.jpg"  # a new file may reuse a deleted file's name
    again.write_bytes(b"y")
    os.utime(again, (time.time() - 5, time.time() - 5))
    watcher.poll()
    assert watcher.poll() == [again]


def test_a_playing_file_is_healthy_although_its_frames_carry_an_old_date(clip: Path, collector, readers) -> None:
    from birdstream.service.supervisor import Supervisor

    # clip's frames carry its creation time (2024): the health check must judge arrival, not that
    r = StreamReader(source_spec(id="f", url=str(clip), realtime=True, loop=True, sample_fps=2), input_size=(16, 16),
                     emit=collector.emit, on_status=collector.on_status)
    readers.append(r)
    started = time.time()
    r.start()
    collector.wait(lambda: len(collector.frames) >= 2, timeout=30, what="frames")
    assert collector.frames[0].captured_at < started - 86400
    supervisor = Supervisor(health_file=None, stale_s=5.0)
    supervisor.watch_streams(lambda: [r.status])
    snap = supervisor.tick()
    assert snap.healthy, snap.reasons
    assert r.status.last_frame_at is not None and r.status.last_frame_at >= started


def test_a_link_out_of_the_folder_is_not_read(tmp_path: Path, caplog) -> None:
    from birdstream.ingest.media import FolderWatcher

    card, outside = tmp_path / "card", tmp_path / "private"
    card.mkdir()
    outside.mkdir()
    make_still(card / "IMG_0001.JPG", mtime=1_000, size=(64, 48))
    make_still(outside / "secret.jpg", mtime=1_000, size=(64, 48))
    (card / "IMG_0002.JPG").symlink_to(outside / "secret.jpg")
    (card / "IMG_0003.JPG").symlink_to(card / "IMG_0001.JPG")  # a link inside the folder is fine
    (card / "more").symlink_to(outside, target_is_directory=True)
    with caplog.at_level("WARNING"):
        assert list_media(card) == [card / "IMG_0001.JPG", card / "IMG_0003.JPG"]
    assert [r.getMessage() for r in caplog.records] == [f"{card / 'IMG_0002.JPG'}: a link out of the folder; not read"]
    frames = list(iter_frames(source_spec("c", str(card)), (32, 32)))
    assert [Path(f.source).name for f in frames] == ["IMG_0001.JPG", "IMG_0003.JPG"]

    watcher = FolderWatcher(card, set(list_media(card)))
    (card / "IMG_0004.JPG").symlink_to(outside / "secret.jpg")  # an upload that is a link out
    assert watcher.poll() == [] and watcher.poll() == []
