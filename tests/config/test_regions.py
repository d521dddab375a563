"""The regions: section reaches each stream's ingest: global defaults, a per-stream override, off."""

from __future__ import annotations

from pathlib import Path

from birdstream.config import config_from_dict
from birdstream.station import wiring


def test_regions_are_on_by_default_and_a_stream_can_replace_the_section(tmp_path: Path) -> None:
    config = config_from_dict({
        "regions": {"max_regions": 6, "context": 4},
        "sightings": {"scenery": {"still_limit_s": 120}},
        "streams": [{"id": "feeder", "url": "rtsp://cam/1"},
                    {"id": "pond", "url": "rtsp://cam/2", "regions": {"max_regions": 2}},
                    {"id": "gate", "url": "rtsp://cam/3", "regions": {"enabled": False}}],
    }, base_dir=tmp_path)
    feeder, pond, gate = (wiring.region_options(config, s) for s in config.streams)
    assert feeder is not None and (feeder.max_regions, feeder.context, feeder.hold_s) == (6, 4, 120)
    assert pond is not None and (pond.max_regions, pond.context) == (2, 3)  # the stream's section replaces
    assert gate is None
    spec = wiring.source_spec(config.streams[0], regions=feeder)
    assert spec.regions == feeder
    default = config_from_dict({}, base_dir=tmp_path, require_streams=False)
    assert wiring.region_options(default) is not None  # enabled by default
    off = config_from_dict({"regions": {"enabled": False}}, base_dir=tmp_path, require_streams=False)
    assert wiring.region_options(off) is None
