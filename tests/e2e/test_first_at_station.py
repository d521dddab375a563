"""first_at_station across a real daemon restart: the station remembers its species in state_dir."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import RED
from tests.e2e.test_classify import BIRD
from tests.support.daemon import Daemon, stream_entry
from tests.support.video import Box, make_video


def _ends(events: list[dict]) -> list[dict]:
    return [e for e in events if e["event"] == "end"]


def test_first_at_station_survives_a_restart(tmp_path: Path, planted: Path) -> None:
    video = make_video(tmp_path / "visit.mp4", duration_s=6, fps=10, objects=[Box(RED, BIRD, 1.0, 5.0)])
    with Daemon(tmp_path / "d", planted, [stream_entry("cam", video)]) as d:
        d.start()
        d.wait_events(lambda evs: len(_ends(evs)) >= 1, timeout=120)
        assert d.terminate() == 0
        d.start()
        d.wait_events(lambda evs: len(_ends(evs)) >= 2, timeout=120)
        assert d.terminate() == 0
    events = d.events()
    flags = {e["id"]: (e["species"], e["first_at_station"]) for e in events}
    assert list(flags.values()) == [("Scarlet Tanager", True), ("Scarlet Tanager", False)], events
    assert all(e["first_at_station"] == flags[e["id"]][1] and e["prior"] == 1.0 for e in events)
