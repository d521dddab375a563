"""The sightings store: rebuilt from the JSONL log equal to the live one, damaged files, age bound."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from birdstream.errors import PublishError
from birdstream.publish.store import FILE_NAME, StoreOptions, StoreWriter, rebuild, rebuild_locked
from birdstream.publish.store_query import Filter, StoreReader
from tests.support.cli import birdstream_env
from tests.web.conftest import sighting_events, write_jsonl


def rows(state_dir: Path) -> list[tuple]:
    db = sqlite3.connect(state_dir / FILE_NAME)
    try:
        return (db.execute("SELECT * FROM sightings ORDER BY id").fetchall()
                + db.execute("SELECT * FROM events ORDER BY id, seq").fetchall())
    finally:
        db.close()


def fill(state_dir: Path, events: list[dict]) -> None:
    """What the daemon does: every event to the JSONL log and to the store."""
    write_jsonl(state_dir, events)
    writer = StoreWriter(state_dir, StoreOptions(max_age_days=None))
    writer.start()
    for event in events:
        writer.submit(event)
    assert writer.close(30)


def test_the_store_rebuilt_from_the_log_equals_the_live_one(tmp_path: Path) -> None:
    state = tmp_path / "state"
    now = time.time()
    events = [e for i in range(20) for e in sighting_events(now - 3600 + 30 * i, box=[0.1, 0.1, 0.2, 0.2] if i % 2
                                                               else None)]
    fill(state, events)
    reader = StoreReader(state)
    sid = reader.sightings(Filter(), 1)[0][0]["id"]
    assert reader.review(sid, "relabel", "House Sparrow")["species"] == "House Sparrow"
    reader.close()
    live = rows(state)
    assert len(live) == 20 + len(events)
    with open(state / "sightings.jsonl", "a") as fh:
        fh.write('{"half a line of a killed writer"\n{"id": "no other fields"}\n')
    result = subprocess.run([sys.executable, "-m", "birdstream", "store", "rebuild", "-c", str(_config(tmp_path))],
                            env=birdstream_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"{len(events)} event(s), 1 review(s)" in result.stdout
    assert rows(state) == live


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"station: garden\nstate_dir: {tmp_path / 'state'}\nstreams: []\n")
    return path


def test_a_damaged_or_missing_store_is_rebuilt_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    fill(state, sighting_events(time.time() - 60))
    live = rows(state)
    (state / FILE_NAME).write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        Path(f"{state / FILE_NAME}{suffix}").unlink(missing_ok=True)
    writer = StoreWriter(state, StoreOptions())
    writer.start()
    writer.close(5)
    assert rows(state) == live and (state / (FILE_NAME + ".damaged")).exists()
    assert any("is damaged" in r.getMessage() and "rebuilding" in r.getMessage() for r in caplog.records)
    (state / FILE_NAME).unlink()
    writer = StoreWriter(state, StoreOptions())
    writer.start()
    writer.close(5)
    assert rows(state) == live


def test_sightings_older_than_max_age_leave_the_store(tmp_path: Path) -> None:
    state = tmp_path / "state"
    now = time.time()
    old, new = sighting_events(now - 10 * 86400), sighting_events(now - 3600)
    fill(state, old + new)
    writer = StoreWriter(state, StoreOptions(max_age_days=7))
    writer.start()
    assert writer.close(5)
    assert {r[0] for r in rows(state) if len(r) > 3} == {new[0]["id"]}


def test_a_rebuild_is_refused_while_a_daemon_holds_the_store(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    writer = StoreWriter(state, StoreOptions())
    try:
        with pytest.raises(PublishError, match="in use by a running daemon"):
            rebuild_locked(state)
    finally:
        writer.close(5)
    assert rebuild(state) == (0, 0)
    with pytest.raises(PublishError, match="no such folder"):
        rebuild_locked(tmp_path / "nope")


def test_events_a_killed_run_logged_but_did_not_store_are_caught_up_at_start(tmp_path: Path) -> None:
    state = tmp_path / "state"
    now = time.time()
    stored, lost = sighting_events(now - 600), sighting_events(now - 300, n_updates=2)
    fill(state, stored + lost[:2])
    write_jsonl(state, lost[2:])  # in the log, not in the store: the run was killed between the two
    writer = StoreWriter(state, StoreOptions())
    writer.start()
    assert writer.close(5)
    s = StoreReader(state).sighting(lost[0]["id"])
    assert s is not None and s["ended_at"] is not None and s["events"] == lost
    assert len(rows(state)) == 2 + len(stored) + len(lost)


def test_a_stalled_store_never_holds_up_the_log(tmp_path: Path) -> None:
    from birdstream.messages import SightingEvent
    from birdstream.publish import Publisher
    from tests.support.daemon import read_jsonl, wait_until
    from tests.support.options import jsonl_options, outbox_options, snapshot_options

    state = tmp_path / "state"
    publisher = Publisher(station="garden", state_dir=state, mqtt=None, jsonl=jsonl_options(),
                          snapshots=snapshot_options(enabled=False), outbox=outbox_options(), store=StoreOptions())
    publisher.start()
    try:
        assert publisher.store is not None and publisher.store.ready.wait(30)
        blocker = sqlite3.connect(state / FILE_NAME, timeout=1)
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the store: its writer must wait
        now = time.time()
        for i in range(5):
            publisher.publish(SightingEvent(id=f"s{i}", seq=0, event="start", station="garden", stream="cam",
                                            species="Indian Roller", score=0.9, top=(("Indian Roller", 0.9),),
                                            started_at=now, updated_at=now, ended_at=None, frames=2, model="m@0"))
        wait_until(lambda: len(read_jsonl(state / "sightings.jsonl")) == 5, 5, "the log written while the store waits")
        assert blocker.execute("SELECT COUNT(*) FROM sightings").fetchone()[0] == 0
        blocker.rollback()
        blocker.close()
        wait_until(lambda: len(rows(state)) == 10, 30, "the store catching up once free")
    finally:
        publisher.close(5)


def test_a_rebuild_reads_the_rotated_logs_too(tmp_path: Path) -> None:
    state = tmp_path / "state"
    now = time.time()
    events = sighting_events(now - 900, n_updates=4) + sighting_events(now - 600)
    fill(state, events)
    live = rows(state)
    lines = (state / "sightings.jsonl").read_text().splitlines(keepends=True)
    # As JsonlLog rotates: .2 is the oldest, .1 newer, sightings.jsonl the newest.
    (state / "sightings.jsonl.2").write_text("".join(lines[:3]))
    (state / "sightings.jsonl.1").write_text("".join(lines[3:6]))
    (state / "sightings.jsonl").write_text("".join(lines[6:]))
    assert rebuild(state) == (len(events), 0)
    assert rows(state) == live
