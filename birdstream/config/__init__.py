"""Configuration: frozen, validated models and the one loader of config.yaml, env and secret files."""

from __future__ import annotations

from birdstream.config.loader import (
    config_from_dict,
    default_config,
    find_config,
    json_schema,
    load_config,
    redacted,
    to_yaml,
)
from birdstream.config.base import DEFAULT_WEIGHTS
from birdstream.config.models import (
    Config,
    HttpConfig,
    LogConfig,
    ModelConfig,
    MotionConfig,
    MqttConfig,
    OutboxConfig,
    ServiceConfig,
    SightingsConfig,
    SnapshotsConfig,
    StreamConfig,
    TlsConfig,
    V4l2Config,
)
from birdstream.errors import ConfigError

__all__ = [
    "DEFAULT_WEIGHTS", "Config", "ConfigError", "HttpConfig", "LogConfig", "ModelConfig", "MotionConfig",
    "MqttConfig", "OutboxConfig", "ServiceConfig", "SightingsConfig", "SnapshotsConfig", "StreamConfig",
    "TlsConfig", "V4l2Config", "config_from_dict", "default_config", "find_config", "json_schema",
    "load_config", "redacted", "to_yaml",
]
