"""SIGTERM in the middle of sightings; the state folder failing under a running daemon."""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.test_restarts import payload, received_events
from tests.support.daemon import Daemon, event_keys, sightings_by_id, stream_entry
from tests.support.mosquitto import Mosquitto, Subscriber

pytestmark = pytest.mark.slow  # real daemon processes


def test_sigterm_during_sightings_ends_every_one_in_the_log_and_on_mqtt(
        daemons: Callable[..., Daemon], broker: Mosquitto, long_stay: Path, visits: Path) -> None:
    with Subscriber(broker.port, ["birdstream/test/+/sighting"]) as sub:
        daemon = daemons([
            stream_entry("stay1", long_stay, realtime=True, sample_fps=4),
            stream_entry("stay2", long_stay, realtime=True, sample_fps=4),
            stream_entry("visits", visits, realtime=True, loop=True, sample_fps=4),
        ], mqtt_port=broker.port)
        with daemon.start():
            for stream in ("stay1", "stay2", "visits"):
                sub.wait_for(lambda m, s=stream: m.topic == f"birdstream/test/{s}/sighting"
                             and payload(m)["event"] == "start", timeout=60)
            open_now = {sid for sid, evs in sightings_by_id(daemon.events()).items() if evs[-1]["event"] != "end"}
            assert len(open_now) >= 2
            assert daemon.terminate() == 0
    log = daemon.events()
    for sid, evs in sightings_by_id(log).items():
        assert evs[0]["event"] == "start" and evs[-1]["event"] == "end", (sid, [e["event"] for e in evs])
        assert evs[-1]["ended_at"] is not None
    assert event_keys(received_events(sub)) == event_keys(log)
    ended_on_mqtt = {e["id"] for e in received_events(sub) if e["event"] == "end"}
    assert open_now <= ended_on_mqtt
    assert "Traceback" not in daemon.log_text()


def test_state_dir_writes_failing_mid_run_are_one_error_line_and_mqtt_goes_on(
        daemons: Callable[..., Daemon], broker: Mosquitto, visits: Path) -> None:
    """A process file-size limit makes every write past the current size fail, also for root."""
    with Subscriber(broker.port, ["birdstream/test/+/sighting"]) as sub:
        daemon = daemons([stream_entry("cam", visits, realtime=True, loop=True, sample_fps=4)],
                         mqtt_port=broker.port)
        with daemon.start():
            daemon.wait_events(lambda evs: any(e["event"] == "end" for e in evs), timeout=60)
            size = daemon.jsonl_path.stat().st_size
            resource.prlimit(daemon.pid, resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))  # soft limit
            logged = len(daemon.events())
            before = len(sub.on_topic("birdstream/test/cam/sighting"))
            # Sightings keep arriving on MQTT after the log stopped growing.
            sub.wait_until(lambda msgs: sum(json.loads(m.payload)["event"] == "end" for m in msgs[before:]) >= 2,
                           timeout=60)
            assert daemon.running
            line = daemon.wait_log("jsonl sink: write failed", timeout=10)
            assert "File too large" in line and str(daemon.jsonl_path) in line, line
            assert "sending them from memory" in daemon.wait_log("outbox", timeout=10)
            assert len(daemon.events()) == logged
            # The disk comes back: the log takes lines again and the outbox stores again.
            unlimited = resource.RLIM_INFINITY
            resource.prlimit(daemon.pid, resource.RLIMIT_FSIZE, (unlimited, unlimited))
            daemon.wait_events(lambda evs: len(evs) > logged, timeout=60, what="the log grows again")
            daemon.wait_log("stores messages again", timeout=30)
            assert daemon.terminate() == 0
    log = daemon.log_text()
    assert "Traceback" not in log
    assert log.count("jsonl sink: write failed") == 1 and log.count("snapshot of sighting") <= 1, log


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs: a real file system that fills up (mounting needs CAP_SYS_ADMIN; else skipped)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill_up(folder: Path) -> Path:
    """Write a file until the file system is full (ENOSPC); returns it (delete it to free the space)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as err:
        assert err.errno == errno.ENOSPC, err
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_under_the_state_dir_is_one_error_line_and_mqtt_goes_on(
        daemons: Callable[..., Daemon], broker: Mosquitto, visits: Path, small_disk: Path) -> None:
    with Subscriber(broker.port, ["birdstream/test/+/sighting"]) as sub:
        daemon = daemons([stream_entry("cam", visits, realtime=True, loop=True, sample_fps=4)],
                         mqtt_port=broker.port, extra={"state_dir": str(small_disk / "state")})
        with daemon.start():
            daemon.wait_events(lambda evs: any(e["event"] == "end" for e in evs), timeout=60)
            filler = fill_up(small_disk)
            before = len(sub.on_topic("birdstream/test/cam/sighting"))
            line = daemon.wait_log("jsonl sink: write failed", timeout=60)
            assert "No space left on device" in line and str(daemon.jsonl_path) in line, line
            logged = len(daemon.events())
            sub.wait_until(lambda msgs: sum(json.loads(m.payload)["event"] == "end" for m in msgs[before:]) >= 2,
                           timeout=60)
            assert daemon.running
            filler.unlink()  # space again: the log takes lines again
            daemon.wait_events(lambda evs: len(evs) > logged, timeout=60, what="the log grows again")
            assert daemon.terminate() == 0
    log = daemon.log_text()
    assert "Traceback" not in log
    assert log.count("jsonl sink: write failed") == 1, log
