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
