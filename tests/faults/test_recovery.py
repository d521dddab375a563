"""The ends a killed run owes, read from the tail of sightings.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

from birdstream.publish.recovery import closing_events
from tests.support.sightings import sighting


def test_only_sightings_without_an_end_get_one_with_the_next_seq(tmp_path: Path) -> None:
    done = [e.to_payload() for e in sighting(3, stream="a")]
    cut = [e.to_payload() for e in sighting(3, stream="b")][:2]  # start, update: the run died here
    other = [e.to_payload() for e in sighting(3, stream="c", station="elsewhere")][:1]
    log = tmp_path / "sightings.jsonl"
    lines = [json.dumps(e) for e in done[:1] + cut[:1] + other + done[1:] + cut[1:]]
    log.write_text("\n".join(lines) + "\nnot json\n" + '{"schema": 1, "id": "half', encoding="utf-8")
    (end,) = closing_events(log, "garden")
    assert end.id == cut[0]["id"] and end.event == "end" and end.seq == 2 and end.stream == "b"
    assert end.to_payload()["ended_at"] == cut[1]["updated_at"] == end.to_payload()["updated_at"]
    assert end.to_payload()["started_at"] == cut[0]["started_at"] and end.species == cut[0]["species"]
    assert closing_events(tmp_path / "missing.jsonl", "garden") == []


def test_the_outbox_supplies_the_events_the_log_lost(tmp_path: Path) -> None:
    """A power cut took the log's last lines; the outbox still holds them: the later event counts."""
    from tests.support.options import outbox_options
    from birdstream.publish.outbox import OutMessage, Outbox

    open_one = [e.to_payload() for e in sighting(3, stream="a")][:2]
    ended = [e.to_payload() for e in sighting(3, stream="b")]
    log = tmp_path / "sightings.jsonl"
    log.write_text(json.dumps(ended[0]) + "\n", encoding="utf-8")  # the rest never reached the disk
    box = Outbox(tmp_path / "outbox.sqlite3", outbox_options())
    box.put([OutMessage(f"birdstream/garden/{e['stream']}/sighting", json.dumps(e).encode())
             for e in (open_one + ended[1:])])
    box.put([OutMessage("birdstream/garden/a/status", b'{"state": "running"}', True, "status/a")])
    box.close()
    (end,) = closing_events(log, "garden", tmp_path / "outbox.sqlite3")
    assert end.id == open_one[0]["id"] and end.seq == 2 and end.to_payload()["ended_at"] == open_one[1]["updated_at"]
    # The log alone knows only b's start and would end b again (b ended) and never end a.
    assert [e.id for e in closing_events(log, "garden")] == [ended[0]["id"]]


def test_log_lines_are_fsynced_before_the_outbox_by_default() -> None:
    from birdstream.config import default_config
    from birdstream.station import wiring

    config = default_config()
    assert wiring.publisher(config).jsonl_options.fsync is True
    off = config.model_copy(update={"log": config.log.model_copy(update={"fsync": False})})
    assert wiring.publisher(off).jsonl_options.fsync is False
