"""Stage options as production builds them: from a default config through station.wiring.

The stage option types have no defaults of their own for config keys, so a test that needs, say,
TrackOptions with one value changed writes ``track_options(enter_score=0.5)`` and gets every other
value from the config models, exactly as the daemon would.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any

from birdstream.config import Config, StreamConfig, config_from_dict
from birdstream.ingest.spec import SourceSpec
from birdstream.publish import JsonlOptions, MqttOptions, OutboxOptions, SnapshotOptions
from birdstream.station import wiring
from birdstream.track.options import TrackOptions


@functools.cache
def default_config() -> Config:
    """Every key at its default, no stream."""
    return config_from_dict({}, base_dir=Path.cwd(), require_streams=False)


def track_options(**changes: Any) -> TrackOptions:
    return dataclasses.replace(wiring.track_options(default_config().sightings), **changes)


def source_spec(id: str, url: str | os.PathLike, **changes: Any) -> SourceSpec:
    """A stream entry with only id and url set; unvalidated, so tests can hand it bad URLs."""
    stream = StreamConfig.model_construct(id=id, url=str(url))
    return dataclasses.replace(wiring.source_spec(stream), **changes)


def mqtt_options(**changes: Any) -> MqttOptions:
    return dataclasses.replace(wiring.mqtt_options(default_config().mqtt), **changes)


def jsonl_options(**changes: Any) -> JsonlOptions:
    return dataclasses.replace(wiring.jsonl_options(default_config()), **changes)


def snapshot_options(**changes: Any) -> SnapshotOptions:
    return dataclasses.replace(wiring.snapshot_options(default_config()), **changes)


def outbox_options(**changes: Any) -> OutboxOptions:
    return dataclasses.replace(wiring.outbox_options(default_config()), **changes)
