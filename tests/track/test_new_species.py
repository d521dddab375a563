"""The station's memory of species: first_at_station, the new_species rule, the file in state_dir."""

from __future__ import annotations

import json
from pathlib import Path

from birdstream.publish.species_seen import FILE_NAME, SpeciesSeen
from tests.support.options import track_options as TrackOptions
from tests.track.scenes import Seg, frames, make_tracker, play, sightings

NO_SCENERY = TrackOptions(scenery=False)


def _visit(seconds: float) -> list:
    return frames(Seg(2, {}), Seg(seconds, {"Eurasian Hoopoe": 0.95}), Seg(15, {}))


def test_the_first_sighting_of_a_species_is_flagged_once_and_remembered_in_state_dir(tmp_path: Path) -> None:
    seen = SpeciesSeen(tmp_path)
    events = play(make_tracker(NO_SCENERY, seen=seen), _visit(4) + frames(Seg(4, {"Eurasian Hoopoe": 0.95}),
                                                                          start=20))
    firsts = [(e.seq, e.first_at_station) for e in events]
    by_id = {e.id: e.first_at_station for e in events}
    assert list(by_id.values()) == [True, False], firsts  # every event of the first sighting, none of the second
    data = json.loads((tmp_path / FILE_NAME).read_text())
    assert list(data["species"]) == ["Eurasian Hoopoe"]
    again = play(make_tracker(NO_SCENERY, seen=SpeciesSeen(tmp_path)), _visit(4))
    assert again and not any(e.first_at_station for e in again)


def test_new_species_need_more_frames_and_a_known_species_does_not(tmp_path: Path) -> None:
    strict = TrackOptions(scenery=False, new_species_min_frames=10)  # 5 s at 2 fps
    seen = SpeciesSeen(tmp_path)
    assert sightings(play(make_tracker(strict, seen=seen), _visit(3))) == []
    long = sightings(play(make_tracker(strict, seen=seen), _visit(8)))
    assert [s["species"] for s in long] == ["Eurasian Hoopoe"]
    # Now known: a short visit is enough again.
    assert [s["species"] for s in sightings(play(make_tracker(strict, seen=seen), _visit(3)))] == ["Eurasian Hoopoe"]


def test_a_missing_or_damaged_file_is_rebuilt_from_the_sightings_log(tmp_path: Path, caplog) -> None:
    start = {"event": "start", "species": "House Sparrow", "started_at": "2026-05-01T06:00:00.000Z"}
    (tmp_path / "sightings.jsonl.1").write_text(json.dumps(start) + "\n")
    (tmp_path / "sightings.jsonl").write_text(json.dumps({**start, "species": "Laughing Dove"}) + "\n{cut")
    seen = SpeciesSeen(tmp_path)
    assert "House Sparrow" in seen and "Laughing Dove" in seen and len(seen) == 2
    (tmp_path / FILE_NAME).write_text("{not json")
    with caplog.at_level("WARNING"):
        again = SpeciesSeen(tmp_path)
    assert len(again) == 2
    assert [r.getMessage() for r in caplog.records if FILE_NAME in r.getMessage()][0].count("\n") == 0


def test_the_rebuilt_memory_is_written_so_the_log_is_read_once(tmp_path: Path) -> None:
    start = {"event": "start", "species": "House Sparrow", "started_at": "2026-05-01T06:00:00.000Z"}
    (tmp_path / "sightings.jsonl").write_text(json.dumps(start) + "\n")
    SpeciesSeen(tmp_path)
    (tmp_path / "sightings.jsonl").unlink()
    assert "House Sparrow" in SpeciesSeen(tmp_path)
