"""station.wiring: a default config builds stage options equal to the config's own values.

The config models are the only home of defaults: every stage option that mirrors a config key has no
default of its own, and what the wiring builds from an untouched config is the config's value.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from birdstream.config import Config, StreamConfig, config_from_dict
from birdstream.errors import ConfigError
from birdstream.ingest.spec import SourceSpec
from birdstream.publish import JsonlOptions, MqttOptions, OutboxOptions, SnapshotOptions
from birdstream.station import wiring
from birdstream.track.options import TrackOptions
from tests.support.options import track_options

# stage option field -> where its value lives in the config (the StreamConfig, or the whole Config)
SOURCE = {
    "sample_fps": "sample_fps", "realtime": "realtime", "loop": "loop", "roi": "roi", "transport": "rtsp_transport",
    "keyframes_only": "keyframes_only", "motion_gate": "motion.enabled", "motion_threshold": "motion.threshold",
    "keepalive_s": "motion.keepalive_s", "stall_s": "stall_s", "open_timeout_s": "open_timeout_s",
    "read_timeout_s": "open_timeout_s", "input_format": "v4l2.input_format", "framerate": "v4l2.fps",
    "watch": "watch", "hwaccel": "hwaccel", "hwaccel_device": "hwaccel_device",
}
TRACK = {
    "enter_score": "sightings.enter_score", "exit_score": "sightings.exit_score",
    "min_frames": "sightings.min_frames", "end_after_s": "sightings.end_after_s",
    "smoothing_s": "sightings.smoothing_s", "update_min_delta": "sightings.update_min_delta",
    "update_every_s": "sightings.update_every_s", "top_k": "sightings.top_k", "allow": "sightings.allow",
    "deny": "sightings.deny", "thresholds": "sightings.thresholds", "scenery": "sightings.scenery.enabled",
    "motion_min": "sightings.scenery.motion_min", "motion_window_s": "sightings.scenery.motion_window_s",
    "baseline_margin": "sightings.scenery.margin", "baseline_s": "sightings.scenery.baseline_s",
    "still_limit_s": "sightings.scenery.still_limit_s",
}
MQTT = {
    "host": "mqtt.host", "port": "mqtt.port", "topic_prefix": "mqtt.topic_prefix", "protocol": "mqtt.protocol",
    "client_id": "mqtt.client_id", "username": "mqtt.username", "keepalive_s": "mqtt.keepalive_s",
    "publish_snapshots": "mqtt.publish_snapshots", "discovery": "mqtt.ha_discovery.enabled",
    "discovery_prefix": "mqtt.ha_discovery.prefix",
}
JSONL = {"max_bytes": "log.max_bytes", "backups": "log.backup_count"}
SNAPSHOTS = {"enabled": "snapshots.enabled", "quality": "snapshots.jpeg_quality",
             "max_age_days": "snapshots.max_age_days", "max_total_mb": "snapshots.max_total_mb"}
OUTBOX = {"max_messages": "outbox.max_events", "max_age_days": "outbox.max_age_days"}


def value(root: object, path: str) -> object:
    for name in path.split("."):
        root = getattr(root, name)
    return root


@pytest.fixture()
def config(tmp_path: Path) -> Config:
    return config_from_dict({"streams": [{"id": "cam", "url": "rtsp://cam.local/s"}]}, base_dir=tmp_path)


def built(config: Config) -> list[tuple[object, dict[str, str], object]]:
    stream = config.streams[0]
    return [
        (wiring.source_spec(stream), SOURCE, stream),
        (wiring.track_options(config.sightings), TRACK, config),
        (wiring.mqtt_options(config.mqtt), MQTT, config),
        (wiring.jsonl_options(config), JSONL, config),
        (wiring.snapshot_options(config), SNAPSHOTS, config),
        (wiring.outbox_options(config), OUTBOX, config),
    ]


def test_a_default_config_builds_stage_options_equal_to_the_configs_values(config: Config) -> None:
    for options, mapping, root in built(config):
        for field, path in mapping.items():
            got, want = getattr(options, field), value(root, path)
            if isinstance(want, dict):
                got = dict(got)
            assert got == want, f"{type(options).__name__}.{field} = {got!r}, config {path} = {want!r}"
    # The values that had drifted in copies kept by the stages:
    spec = wiring.source_spec(config.streams[0])
    assert (spec.motion_threshold, spec.stall_s) == (0.005, 10)
    assert wiring.mqtt_options(config.mqtt).discovery is False
    assert wiring.outbox_options(config).max_age_days == 7
    snapshots = wiring.snapshot_options(config)
    assert (snapshots.quality, snapshots.max_total_mb) == (85, 1000)


@pytest.mark.parametrize("kind, mapping", [
    (SourceSpec, SOURCE), (TrackOptions, TRACK), (MqttOptions, MQTT), (JsonlOptions, JSONL),
    (SnapshotOptions, SNAPSHOTS), (OutboxOptions, OUTBOX),
])
def test_stage_options_keep_no_default_of_a_config_key(kind: type, mapping: dict[str, str]) -> None:
    with_default = [f.name for f in dataclasses.fields(kind) if f.name in mapping
                    and (f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING)]
    assert with_default == [], f"{kind.__name__} repeats config defaults: {with_default}"


def test_a_usb_cameras_size_reaches_the_source_spec(config: Config) -> None:
    stream = StreamConfig(id="usb", url="/dev/video0", v4l2={"width": 640, "height": 480, "input_format": "mjpeg"})
    assert wiring.source_spec(stream).video_size == "640x480"
    assert wiring.source_spec(config.streams[0]).video_size is None


def test_exit_score_must_be_below_enter_score_as_in_the_config() -> None:
    with pytest.raises(ConfigError, match=r"sightings\.exit_score: must be lower than enter_score"):
        track_options(enter_score=0.5, exit_score=0.5)
    with pytest.raises(ConfigError, match=r"sightings\.exit_score: must be lower than enter_score"):
        config_from_dict({"sightings": {"enter_score": 0.5, "exit_score": 0.5}}, base_dir=Path("."),
                         require_streams=False)
