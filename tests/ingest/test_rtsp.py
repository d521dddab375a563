"""Against a real GStreamer RTSP server: frames, recovery after a restart, error classes, secrets."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import pytest

from birdstream.errors import SourceError
from birdstream.ingest import StreamError, StreamReader, iter_frames
from tests.support.rtsp import RtspServer, free_port, gi_available
from tests.support.options import source_spec

pytestmark = pytest.mark.skipif(not gi_available(), reason="system python3 lacks GStreamer RTSP bindings")

PASSWORD = "Sup3r-s3cret"


@pytest.fixture
def server(rtsp_video: Path):
    srv = RtspServer(rtsp_video).start()
    try:
        yield srv
    finally:
        srv.kill()


def reader(url: str, collector, readers, **kw) -> StreamReader:
    opts = {"sample_fps": 5, "backoff_min_s": 0.2, "backoff_max_s": 1.0, "open_timeout_s": 10,
            "read_timeout_s": 5, **kw}
    spec = source_spec(id="cam", url=url, **opts)
    r = StreamReader(spec, input_size=(32, 32), emit=collector.emit, on_status=collector.on_status)
    readers.append(r)
    r.start()
    return r


def test_frames_arrive_with_wall_clock_times(server: RtspServer, collector, readers) -> None:
    before = time.time()
    r = reader(server.url, collector, readers, motion_gate=False)
    collector.wait(lambda: len(collector.frames) >= 5, what="5 frames")
    f = collector.frames[0]
    assert f.media_time is None and f.source is None and f.motion is not None
    assert before <= f.captured_at <= time.time()
    assert r.status.state == "running" and r.status.frames_in >= 5
    assert threading.current_thread().name != r._thread.name and r._thread.name == "ingest:cam"


def test_recovers_after_server_restart(server: RtspServer, collector, readers) -> None:
    # Motion gate on (the live default): a still scene sends only keep-alives, yet the state
    # follows decoding, not what the gate lets through.
    r = reader(server.url, collector, readers, keepalive_s=60)
    collector.wait(lambda: len(collector.frames) >= 1, what="first frame")
    server.kill()
    collector.wait(lambda: "reconnecting" in collector.states, what="reconnecting")
    decoded = r.status.frames_in
    server.start()
    collector.wait(lambda: collector.states[-1] == "running", timeout=30, what="running again")
    collector.wait(lambda: r.status.frames_in > decoded + 3, what="decoding again")
    assert len(collector.frames) == 1 and r.counters["gated"] > 0
    assert collector.states[:3] == ["running", "reconnecting", "running"]
    assert r.status.reconnects >= 1 and r.status.error is None


def test_udp_transport(server: RtspServer, collector, readers) -> None:
    reader(server.url, collector, readers, transport="udp", motion_gate=False)
    collector.wait(lambda: len(collector.frames) >= 3, what="frames over UDP")


def test_wrong_path_is_not_found(server: RtspServer, collector, readers) -> None:
    r = reader(server.url_with(mount="/nothing-here"), collector, readers)
    collector.wait(lambda: "reconnecting" in collector.states, what="an error")
    assert "not found" in r.status.error
    with pytest.raises(StreamError) as info:
        next(iter_frames(source_spec(id="x", url=server.url_with(mount="/nothing-here")), (8, 8)))
    assert info.value.kind == "not_found"


def test_wrong_port_is_unreachable(collector, readers) -> None:
    url = f"rtsp://127.0.0.1:{free_port()}/stream"
    r = reader(url, collector, readers)
    collector.wait(lambda: "reconnecting" in collector.states, what="an error")
    assert "unreachable" in r.status.error
    # retries do not repeat the status: one change, then quiet while the reconnect count grows
    collector.wait(lambda: r.status.reconnects >= 3, what="three retries")
    assert collector.states == ["reconnecting"]


def test_wrong_credentials_are_auth_failed_and_never_logged(rtsp_video: Path, collector, readers,
                                                            caplog) -> None:
    with caplog.at_level(logging.DEBUG), RtspServer(rtsp_video, user="admin", password=PASSWORD) as srv:
        bad = srv.url_with("admin", "Wr0ng-" + PASSWORD)
        r = reader(bad, collector, readers)
        collector.wait(lambda: "reconnecting" in collector.states, what="an error")
        assert "authentication failed" in r.status.error
        with pytest.raises(SourceError) as info:
            next(iter_frames(source_spec(id="x", url=bad), (8, 8)))
        assert info.value.kind == "auth"
        good = StreamReader(source_spec(id="good", url=srv.url), input_size=(8, 8),
                            emit=collector.emit, on_status=collector.on_status)
        readers.append(good)
        good.start()
        collector.wait(lambda: any(f.stream_id == "good" for f in collector.frames), what="frames")
        r.stop()
        good.stop()
        assert r.join(5) and good.join(5)
    text = "\n".join(r.getMessage() for r in caplog.records) + str(info.value)
    text += "".join(str(s) for s in collector.statuses)
    assert "authentication failed" in text
    assert PASSWORD not in text and "admin:" not in text


def test_stop_is_prompt_while_a_connect_hangs(collector, readers) -> None:
    with socket.socket() as blackhole:  # accepts connections, never answers
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(8)
        url = f"rtsp://127.0.0.1:{blackhole.getsockname()[1]}/stream"
        blackhole.settimeout(10)
        r = reader(url, collector, readers)
        conn, _ = blackhole.accept()  # the reader is connected and waits for an answer
        with conn:
            conn.recv(100)  # its request arrived: it is inside FFmpeg's blocking read
            r.stop()
            assert r.join(1.0), "reader still blocked 1 s after stop()"
        assert r.status.state == "stopped"


def test_live_motion_gate_holds_back_a_still_scene(server: RtspServer, collector, readers) -> None:
    r = reader(server.url, collector, readers, keepalive_s=0.5)
    collector.wait(lambda: len(collector.frames) >= 3, what="keep-alive frames")
    assert all(f.keepalive for f in collector.frames)  # a plain, unmoving scene: only keep-alives
    assert all(f.motion == 0.0 for f in collector.frames)
    assert r.counters["gated"] > 0
    seqs = [f.seq for f in collector.frames]
    assert seqs == sorted(seqs) and seqs[1] - seqs[0] > 1  # seq counts every sampled frame


def test_frozen_server_times_out_and_recovers(server: RtspServer, collector, readers) -> None:
    import os
    import signal

    r = reader(server.url, collector, readers, motion_gate=False, read_timeout_s=1.0, stall_s=2.0)
    collector.wait(lambda: len(collector.frames) >= 3, what="first frames")
    os.kill(server.proc.pid, signal.SIGSTOP)  # connection stays open, nothing arrives
    try:
        collector.wait(lambda: "reconnecting" in collector.states, what="a timeout")
        assert "timed out" in r.status.error or "stalled" in r.status.error
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    n = len(collector.frames)
    collector.wait(lambda: collector.states[-1] == "running" and len(collector.frames) > n + 2,
                   timeout=30, what="running again")


def test_stop_while_emit_blocks(server: RtspServer, readers) -> None:
    got = []

    def emit(frame) -> None:  # offline-style backpressure that honours the reader's stop event
        got.append(frame)
        r.stop_event.wait()

    r = StreamReader(source_spec(id="cam", url=server.url, motion_gate=False), input_size=(8, 8),
                     emit=emit, on_status=lambda s: None)
    readers.append(r)
    r.start()
    deadline = time.monotonic() + 20
    while not got and time.monotonic() < deadline:
        time.sleep(0.02)
    assert got, "no frame"
    r.stop()
    assert r.join(1.0)
