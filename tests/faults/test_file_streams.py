"""A file stream read as fast as it goes is offline material: the daemon classifies all of it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.conftest import BIRD, BLUE, RED
from tests.support.daemon import Daemon, sightings_by_id, stream_entry
from tests.support.video import Box, make_video

pytestmark = pytest.mark.slow  # real daemon processes

STREAMS, VISITS = 3, 6


def per_stream(events: list[dict]) -> dict[str, list[list[dict]]]:
    out: dict[str, list[list[dict]]] = {}
    for evs in sightings_by_id(events).values():
        out.setdefault(evs[0]["stream"], []).append(evs)
    return out


def test_every_visit_in_files_read_at_full_speed_is_found_whatever_the_load(
        daemons: Callable[..., Daemon], tmp_path: Path) -> None:
    visits = [Box(RED if i % 2 else BLUE, BIRD, 1.0 + 4.0 * i, 2.5 + 4.0 * i) for i in range(VISITS)]
    clip = make_video(tmp_path / "card.mp4", duration_s=25, fps=10, objects=visits)
    # A classifier that waits long for full batches: a reader racing ahead must wait, not drop.
    daemon = daemons([stream_entry(f"card{i}", clip, sample_fps=10) for i in range(STREAMS)],
                     extra={"model": {"max_batch": 64, "max_wait_ms": 1000}})

    def all_found(events: list[dict]) -> bool:
        found = per_stream(events)
        return len(found) == STREAMS and all(
            len(s) == VISITS and all(evs[-1]["event"] == "end" for evs in s) for s in found.values())

    with daemon.start():
        daemon.wait_events(all_found, timeout=60, what=f"{VISITS} sightings in each of {STREAMS} files")
        assert daemon.terminate() == 0
    for sightings in per_stream(daemon.events()).values():
        species = [evs[0]["species"] for evs in sorted(sightings, key=lambda evs: evs[0]["media_start_s"])]
        assert species == ["Indian Roller", "Scarlet Tanager"] * (VISITS // 2)
