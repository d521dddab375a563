"""Local sinks and faults: outbox bounds, unwritable state_dir, JSONL rotation, snapshots."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from PIL import Image

from birdstream.errors import PublishError
from birdstream.publish import load_schema, metrics
from birdstream.publish.jsonl import JsonlLog
from birdstream.publish.outbox import Outbox, OutMessage
from birdstream.publish.snapshots import SnapshotStore, relative_path
from tests.support.sightings import gradient_image, make_event, sighting
from tests.support.options import jsonl_options, outbox_options, snapshot_options


def _dropped(reason: str) -> float:
    return metrics.OUTBOX_DROPPED.labels(reason=reason)._value.get()


def test_full_outbox_drops_oldest_counted_and_logged(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="birdstream.publish")
    box = Outbox(tmp_path / "o.sqlite3", outbox_options(max_messages=5))
    before = _dropped("full")
    for i in range(8):
        box.put([OutMessage("t", str(i).encode())])
    assert len(box) == 5
    assert [r.payload for r in box.after(0, 100)] == [b"3", b"4", b"5", b"6", b"7"]
    assert _dropped("full") - before == 3
    assert sum("full" in r.getMessage() and "dropped" in r.getMessage() for r in caplog.records) == 3
    box.close()
    reopened = Outbox(tmp_path / "o.sqlite3", outbox_options(max_messages=5))
    assert len(reopened) == 5 and reopened.after(0, 1)[0].payload == b"3"
    reopened.close()


def test_a_full_disk_fails_the_put_with_its_own_error_and_changes_nothing(tmp_path: Path) -> None:
    import sqlite3

    box = Outbox(tmp_path / "o.sqlite3", outbox_options())
    box.put([OutMessage("s", b"status", True, "status/x")])
    box._db.execute("PRAGMA max_page_count=12")  # SQLite's own "database or disk is full" (SQLITE_FULL)
    failures = 0
    for i in range(50):
        try:  # a small message that fits, then a big one that does not; the first replaces the key's row
            box.put([OutMessage("s", b"status%d" % i, True, "status/x"), OutMessage("t", os.urandom(4000))])
        except sqlite3.OperationalError as err:
            assert "full" in str(err)
            failures += 1
        assert len(box) == box._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    assert failures
    box._db.execute("PRAGMA max_page_count=1000000")  # space again
    box.put([OutMessage("t", b"after")])
    assert len(box) == box._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    assert box.after(0, 1000)[-1].payload == b"after"
    box.close()


def test_outbox_age_limit_and_latest_wins_keys(tmp_path: Path) -> None:
    now = [1000.0]
    box = Outbox(tmp_path / "o.sqlite3", outbox_options(max_age_days=1.0), clock=lambda: now[0])
    box.put([OutMessage("a", b"old")])
    box.put([OutMessage("s", b"status1", True, "status/x"), OutMessage("b", b"mid")])
    box.put([OutMessage("s", b"status2", True, "status/x")])
    assert [r.payload for r in box.after(0, 10)] == [b"old", b"mid", b"status2"]
    before = _dropped("expired")
    now[0] += 2 * 86400
    box.close()
    box = Outbox(tmp_path / "o.sqlite3", outbox_options(max_age_days=1.0), clock=lambda: now[0])
    assert len(box) == 0 and _dropped("expired") - before == 3
    box.close()


def test_outbox_ages_survive_wall_clock_jumps(tmp_path: Path) -> None:
    """NTP stepping a station's clock by months must neither expire the backlog nor keep it for ever."""
    wall, mono = [1_000_000.0], [50.0]
    box = Outbox(tmp_path / "o.sqlite3", outbox_options(max_age_days=1.0), clock=lambda: wall[0],
                 monotonic=lambda: mono[0])
    box.put([OutMessage("a", b"before the jump")])
    wall[0] += 200 * 86400  # the clock jumps 200 days forward; 2 minutes pass
    wall[0] += 120
    mono[0] += 120
    box.put([OutMessage("b", b"after the jump")])
    assert [r.payload for r in box.after(0, 10)] == [b"before the jump", b"after the jump"]
    wall[0] -= 400 * 86400  # and back, 400 days; then a real day and a minute pass
    wall[0] += 86460
    mono[0] += 86460
    box.put([OutMessage("c", b"later")])
    assert [r.payload for r in box.after(0, 10)] == [b"later"]  # the first two are a day old: expired
    box.close()
    # The clock went back while the daemon was stopped: rows from the "future" count from now.
    wall[0] -= 30 * 86400
    box = Outbox(tmp_path / "o.sqlite3", outbox_options(max_age_days=1.0), clock=lambda: wall[0],
                 monotonic=lambda: mono[0])
    wall[0] += 86460
    mono[0] += 86460
    box.put([OutMessage("d", b"a day later")])
    assert [r.payload for r in box.after(0, 10)] == [b"a day later"]
    box.close()


def test_outbox_is_wal_and_synchronous_full(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", outbox_options())
    assert box._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert box._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    box.close()
    with pytest.raises(PublishError, match="outbox.synchronous"):
        Outbox(tmp_path / "p.sqlite3", outbox_options(synchronous="OFF"))


def test_unwritable_state_dir_is_a_clear_publish_error(tmp_path: Path, make_publisher) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(PublishError) as err:
        make_publisher(1883, state_dir=blocker / "state")
    assert str(err.value).startswith(f"state_dir {blocker / 'state'}: not writable")
    assert "\n" not in str(err.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file permissions")
def test_read_only_state_dir(tmp_path: Path, make_publisher) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(PublishError, match=f"state_dir {ro}: not writable"):
        make_publisher(1883, state_dir=ro)


def test_jsonl_rotation_keeps_n_files(tmp_path: Path) -> None:
    log = JsonlLog(tmp_path, jsonl_options(max_bytes=100, backups=2))
    for i in range(10):
        log.write(json.dumps({"i": i, "pad": "x" * 30}).encode())
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["sightings.jsonl", "sightings.jsonl.1", "sightings.jsonl.2"]
    newest_first = [tmp_path / "sightings.jsonl", tmp_path / "sightings.jsonl.1", tmp_path / "sightings.jsonl.2"]
    seen = [json.loads(line)["i"] for p in reversed(newest_first) for line in p.read_text().splitlines()]
    assert seen == list(range(10 - len(seen), 10))  # contiguous, oldest dropped
    assert all(p.stat().st_size <= 100 for p in newest_first)


def test_jsonl_after_a_cut_line_starts_on_a_new_line(tmp_path: Path) -> None:
    (tmp_path / "sightings.jsonl").write_bytes(b'{"i": 0}\n{"i": 1, "pa')  # killed mid-write
    log = JsonlLog(tmp_path, jsonl_options())
    log.write(b'{"i": 2}')
    log.close()
    assert (tmp_path / "sightings.jsonl").read_text().splitlines()[-1] == '{"i": 2}'
    log = JsonlLog(tmp_path, jsonl_options())  # an intact file gets no empty line
    log.write(b'{"i": 3}')
    log.close()
    assert (tmp_path / "sightings.jsonl").read_text().splitlines()[-2:] == ['{"i": 2}', '{"i": 3}']


def test_jsonl_without_broker_and_with_schema(tmp_path: Path, make_publisher) -> None:
    pub = make_publisher(None, snapshots=snapshot_options(enabled=False))
    events = list(sighting(3))
    for e in events:
        pub.publish(e)
    assert pub.flush(5) and pub.backlog == 0
    lines = (tmp_path / "state" / "sightings.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in lines] == [e.to_payload() for e in events]
    for x in lines:
        jsonschema.validate(json.loads(x), load_schema())


def test_schema_rejects_malformed_payloads() -> None:
    schema = load_schema()
    good = make_event().to_payload()
    jsonschema.validate(good, schema)
    for bad in ({**good, "event": "begin"}, {**good, "seq": -1}, {k: v for k, v in good.items() if k != "id"},
                {**good, "started_at": "yesterday"}, {**good, "extra": 1}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_snapshot_written_before_the_event_and_rewritten_when_better(tmp_path: Path, make_publisher) -> None:
    pub = make_publisher(None)
    first, second, third = sighting(3, image=None)
    img1, img2 = gradient_image(60, 80, shift=0), gradient_image(60, 80, shift=50)
    pub.publish(first.__class__(**{**_fields(first), "best_image": img1}))
    pub.publish(second)  # no new image: same path kept
    pub.publish(third.__class__(**{**_fields(third), "best_image": img2}))
    assert pub.flush(5)
    lines = [json.loads(x) for x in (tmp_path / "state" / "sightings.jsonl").read_text().splitlines()]
    paths = {x["snapshot"] for x in lines}
    assert paths == {relative_path(first)} and relative_path(first).startswith("snapshots/feeder/2026-05-28/")
    jpg = tmp_path / "state" / relative_path(first)
    with Image.open(jpg) as im:
        assert im.size == (80, 60) and im.format == "JPEG"
        got = np.asarray(im.convert("RGB")).astype(int)
    assert np.abs(got - img2.astype(int)).mean() < np.abs(got - img1.astype(int)).mean()
    assert not list(jpg.parent.glob(".*.tmp"))


def _fields(event) -> dict:
    return {f: getattr(event, f) for f in event.__dataclass_fields__}


def test_snapshot_retention_by_age_and_size(tmp_path: Path) -> None:
    now = [time.time()]
    store = SnapshotStore(tmp_path, snapshot_options(prune_every=1000), clock=lambda: now[0])
    written = []
    for i in range(6):
        event, jpeg = store.save(make_event(image=gradient_image(64, 64, shift=i * 40), started_at=1.78e9 + i))
        assert jpeg is not None
        path = tmp_path / event.snapshot
        os.utime(path, (now[0] - 3600 * (6 - i), now[0] - 3600 * (6 - i)))  # oldest first
        written.append(path)
    os.utime(written[0], (now[0] - 3 * 86400, now[0] - 3 * 86400))
    budget = sum(p.stat().st_size for p in written[3:]) + 10
    before = metrics.SNAPSHOTS_PRUNED.labels(reason="size")._value.get()
    pruner = SnapshotStore(tmp_path, snapshot_options(max_age_days=1, max_total_mb=budget / 1024 / 1024),
                           clock=lambda: now[0])
    assert pruner.prune() == 3
    assert [p.exists() for p in written] == [False, False, False, True, True, True]
    assert metrics.SNAPSHOTS_PRUNED.labels(reason="size")._value.get() - before == 2
