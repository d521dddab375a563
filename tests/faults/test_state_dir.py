"""The state folder belongs to one daemon, and what it writes there is readable by its owner only."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.daemon import Daemon, stream_entry
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.slow  # real daemon processes


def test_a_second_daemon_on_the_same_state_dir_exits_naming_the_folder_and_the_holder(
        daemons: Callable[..., Daemon], broker: Mosquitto, visits: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared-state"
    streams = [stream_entry("cam", visits, realtime=True, loop=True)]
    first = daemons(streams, name="first", mqtt_port=broker.port, extra={"state_dir": str(shared)})
    second = daemons(streams, name="second", mqtt_port=broker.port, extra={"state_dir": str(shared)})
    with first.start():
        second.start(wait_ready=False)
        rc = second.wait(60)
        assert rc != 0
        lines = [line for line in second.log_text().splitlines() if line.strip()]
        assert len(lines) == 1, lines  # one line, no traceback
        assert str(shared) in lines[0] and f"pid {first.pid}" in lines[0], lines[0]
        assert "Traceback" not in second.log_text()
        assert first.running
        assert first.terminate() == 0
    # The lock goes with its holder, also when it is killed: the next start on the folder works.
    again = daemons(streams, name="again", mqtt_port=broker.port, extra={"state_dir": str(shared)})
    with again.start():
        again.kill()
    with again.start():
        assert again.terminate() == 0


def test_state_files_are_owner_only_without_systemd(
        daemons: Callable[..., Daemon], broker: Mosquitto, visits: Path) -> None:
    daemon = daemons([stream_entry("cam", visits, realtime=True, loop=True)], mqtt_port=broker.port)
    old = os.umask(0o022)  # a login shell's usual umask, inherited by the daemon
    try:
        daemon.start()
    finally:
        os.umask(old)
    with daemon:
        daemon.wait_events(lambda evs: any(e["event"] == "end" for e in evs), timeout=90)
        assert daemon.terminate() == 0
    state = daemon.state_dir
    made = [p for p in state.rglob("*") if p.name != "birdstream.lock"] + [state / "birdstream.lock"]
    assert {"sightings.jsonl", "outbox.sqlite3", "mqtt-client-id"} <= {p.name for p in made}
    for path in made:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path.relative_to(state)} is {oct(mode)}"



def test_under_systemd_the_units_umask_rules(daemons: Callable[..., Daemon], broker: Mosquitto,
                                             visits: Path) -> None:
    # systemd sets INVOCATION_ID for every unit; the unit's UMask=0027 lets the service group read.
    daemon = daemons([stream_entry("cam", visits)], mqtt_port=broker.port, env={"INVOCATION_ID": "0" * 32})
    old = os.umask(0o027)
    try:
        daemon.start()
    finally:
        os.umask(old)
    with daemon:
        daemon.wait_events(lambda evs: any(e["event"] == "end" for e in evs), timeout=90)
        assert daemon.terminate() == 0
    assert stat.S_IMODE(daemon.jsonl_path.stat().st_mode) == 0o640
