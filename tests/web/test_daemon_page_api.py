"""The API of section 6 on a real `birdstream run`: planted model, generated video, real mosquitto."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

import pytest

from tests.e2e.conftest import RED
from tests.support.daemon import Daemon, stream_entry, wait_until
from tests.support.mosquitto import Mosquitto, free_port, retained_messages
from tests.support.planted import make_planted_checkpoint
from tests.support.video import Box, make_video
from tests.web.conftest import get_json, http


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_planted_checkpoint(tmp_path_factory.mktemp("model") / "planted.pt")


def store_rows(state_dir: Path) -> list[tuple]:
    db = sqlite3.connect(state_dir / "sightings.sqlite3")
    try:
        return db.execute("SELECT * FROM sightings ORDER BY id").fetchall()
    finally:
        db.close()


@pytest.mark.slow
def test_the_daemon_serves_its_sightings_reviews_and_snapshots(tmp_path: Path, planted: Path) -> None:
    video = make_video(tmp_path / "red.mp4", duration_s=8, fps=10, objects=[Box(RED, (110, 70, 100, 90), 1.0, 6.0)])
    port = free_port()
    with Mosquitto(tmp_path / "broker") as broker:
        daemon = Daemon(tmp_path / "d", planted, [stream_entry("cam", video, sample_fps=4)], mqtt_port=broker.port,
                        extra={"http": {"enabled": True, "port": port}})
        base = f"http://127.0.0.1:{port}"
        with daemon.start():
            jsonl = daemon.wait_events(lambda evs: any(e["event"] == "end" for e in evs), timeout=120)
            sid = jsonl[0]["id"]
            page = wait_until(lambda: (p := get_json(base + "/api/sightings")[1])["sightings"]
                              and p["sightings"][0]["ended_at"] and p, 30, "the ended sighting in the store")
            s = page["sightings"][0]
            assert (s["id"], s["species"], s["stream"], s["station"]) == (sid, "Scarlet Tanager", "cam", "test")
            status, headers, jpeg = http(base + s["snapshot_url"])
            assert status == 200 and headers["content-type"] == "image/jpeg" and jpeg[:2] == b"\xff\xd8"
            one = get_json(f"{base}/api/sightings/{sid}")[1]
            assert one["events"] == [e for e in jsonl if e["id"] == sid]
            streams = get_json(base + "/api/streams")[1]["streams"]
            assert [x["stream"] for x in streams] == ["cam"] and streams[0]["state"] in ("running", "stopped")
            assert get_json(base + "/api/species")[1]["species"][0]["count"] == 1
            status, _, body = http(f"{base}/api/sightings/{sid}/review", {"verdict": "false"})
            assert status == 200 and json.loads(body)["review"] == "false"
            assert get_json(base + "/api/species")[1]["species"] == []
            topic = f"birdstream/test/cam/review/{sid}"
            retained = wait_until(lambda: retained_messages(broker.port, [topic]), 20, "the retained review")
            assert json.loads(retained[topic]) == {"id": sid, "verdict": "false", "species": "Scarlet Tanager",
                                                   "label": "Scarlet Tanager", "station": "test"}
            assert get_json(base + "/healthz")[0] in (200, 503) and "birdstream_" in http(base + "/metrics")[2].decode()
            # An open live page (its event stream) does not hold up the daemon's stop.
            page = socket.create_connection(("127.0.0.1", port), timeout=20)
            page.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"text/event-stream" in page.recv(4096)
            assert daemon.terminate(timeout=30) == 0
            page.close()
        live = store_rows(daemon.state_dir)
        # The review survives a restart; a store lost between runs comes back from the log, review included.
        (daemon.state_dir / "sightings.sqlite3").unlink()
        with daemon.start():
            # The store is rebuilt from the log beside the start, not before it: wait for the sighting.
            s = wait_until(lambda: _found(f"{base}/api/sightings/{sid}"), timeout=60, what="the rebuilt store to answer")
            assert s["review"] == "false"
            assert daemon.terminate() == 0
        # (the second run reads the file again: its new sightings are not compared)
        assert [r for r in store_rows(daemon.state_dir) if r[0] == sid] == [r for r in live if r[0] == sid]
        assert "Traceback" not in daemon.log_text(all_runs=True)


def _found(url: str) -> dict | None:
    """The JSON of a 200 answer, else None (still being rebuilt)."""
    status, body = get_json(url)
    return body if status == 200 else None
