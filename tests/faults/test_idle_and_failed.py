"""Health judged by what a source does: an idle folder stays healthy, a stream that gave up does not;
a restart does not classify (and publish) a watched folder's old files again."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from tests.faults.conftest import BLUE, RED
from tests.support.daemon import Daemon, stream_entry, wait_until

pytestmark = pytest.mark.slow  # real daemon processes

FAST_TICKS = {"WATCHDOG_USEC": "3000000"}  # the supervisor ticks every second


def still(path: Path, colour: tuple[int, int, int] | None, when: float = 1_700_000_000) -> Path:
    """A 320x240 still (a bird of `colour`, or an empty scene), written as an uploader does."""
    image = Image.new("RGB", (320, 240), (128, 128, 128))
    if colour is not None:
        image.paste(colour, (110, 70, 210, 160))
    part = path.with_name(f".{path.name}.part")
    image.save(part, format="JPEG")
    os.utime(part, (when, when))
    part.rename(path)
    return path


def health(daemon: Daemon) -> dict:
    """The health file; reads the notify socket too, as systemd does (a full one blocks the daemon)."""
    if daemon.notify is not None:
        daemon.notify.drain()
    try:
        return json.loads((daemon.state_dir / "health.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def test_an_idle_watched_folder_and_a_slow_sampler_stay_healthy(
        daemons: Callable[..., Daemon], tmp_path: Path, visits: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    still(uploads / "IMG_0001.JPG", None)
    daemon = daemons([stream_entry("trap", uploads, watch=True),
                      stream_entry("slow", visits, realtime=True, loop=True, sample_fps=0.01)],
                     extra={"service": {"watchdog_stale_s": 3}}, env=FAST_TICKS)
    with daemon.start():
        started = time.time()
        # Far past watchdog_stale_s with no upload and no sampled frame of the slow stream.
        snap = wait_until(lambda: (h := health(daemon)) and h["time"] > started + 9 and h, 60, "9 s of ticks")
        assert snap["healthy"], snap["reasons"]
        assert snap["streams"]["trap"]["state"] == "running"
        assert daemon.terminate() == 0
    assert "unhealthy" not in daemon.log_text()


def test_a_stream_failed_longer_than_the_limit_makes_the_daemon_unhealthy(
        daemons: Callable[..., Daemon], tmp_path: Path, visits: Path) -> None:
    garbage = tmp_path / "broken.mp4"
    garbage.write_bytes(b"\x00garbage" * 100)
    daemon = daemons([stream_entry("broken", garbage), stream_entry("ok", visits, realtime=True, loop=True)],
                     extra={"service": {"stream_failed_unhealthy_s": 2}}, env=FAST_TICKS)
    with daemon.start():
        snap = wait_until(lambda: (h := health(daemon)) and not h["healthy"] and h, 30, "unhealthy")
        assert snap["streams"]["broken"]["state"] == "failed"
        assert any(r.startswith("stream broken: failed for") and str(garbage) in r for r in snap["reasons"])
        assert snap["streams"]["ok"]["state"] == "running"
        assert daemon.terminate() == 0


def test_a_restart_does_not_publish_the_old_files_of_a_watched_folder_again(
        daemons: Callable[..., Daemon], tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    (uploads / "cam1").mkdir(parents=True)
    still(uploads / "cam1" / "IMG_0001.JPG", None, 1_700_000_000)
    still(uploads / "cam1" / "IMG_0002.JPG", BLUE, 1_700_000_100)
    daemon = daemons([stream_entry("trap", uploads, watch=True)])
    with daemon.start():
        first = daemon.wait_events(lambda evs: any(e["event"] == "end" for e in evs), 60, "the blue still's sighting")
        assert daemon.terminate() == 0
    assert [(e["event"], e["species"]) for e in first] == [("start", "Indian Roller"), ("end", "Indian Roller")]
    with daemon.start():
        still(uploads / "cam1" / "IMG_0003.JPG", RED, 1_700_000_900)
        daemon.wait_events(lambda evs: any(e["event"] == "end" and e["species"] == "Scarlet Tanager" for e in evs),
                           60, "the new still's sighting")
        assert daemon.terminate() == 0
    second = daemon.events()[len(first):]
    assert [(e["event"], e["species"]) for e in second] == [("start", "Scarlet Tanager"), ("end", "Scarlet Tanager")]
    assert "2 file(s) classified by an earlier run are not read again" in daemon.log_text()
    assert "Traceback" not in daemon.log_text(all_runs=True)
