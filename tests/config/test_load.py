"""Loading valid configs: defaults, path resolution, environment, secrets, redaction, schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from birdstream.config import (
    DEFAULT_WEIGHTS,
    Config,
    ConfigError,
    StreamConfig,
    config_from_dict,
    find_config,
    json_schema,
    load_config,
    redacted,
    to_yaml,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "config.yaml"


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_minimal_config_gets_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(write(tmp_path, "streams:\n  - {id: feeder, url: rtsp://cam/s}\n"))
    assert config.station == "station"
    assert config.state_dir == tmp_path / "state"
    assert config.health_path == tmp_path / "state" / "health.json"
    assert config.model.weights == DEFAULT_WEIGHTS
    assert config.model.cache_dir == Path("~/.cache/birdstream").expanduser()
    stream = config.stream("feeder")
    assert (stream.url, stream.sample_fps, stream.rtsp_transport, stream.motion.enabled) == (
        "rtsp://cam/s", 2.0, "tcp", None)
    assert (config.sightings.enter_score, config.sightings.exit_score) == (0.6, 0.4)
    assert (config.mqtt.protocol, config.http.enabled, config.http.host, config.http.port) == (
        "5", False, "127.0.0.1", 9108)
    with pytest.raises(Exception):
        config.station = "other"  # type: ignore[misc]  # frozen


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    config = load_config(write(folder, """
state_dir: state
model: {weights: models/bird.pt, cache_dir: cache}
streams:
  - {id: clip, url: clips/a.mp4}
  - {id: cam, url: "rtsps://cam:322/live"}
  - {id: usb, url: /dev/video0}
service: {health_file: run/health.json}
"""))
    assert config.state_dir == folder / "state"
    assert config.model.weights == str(folder / "models" / "bird.pt")
    assert config.model.cache_dir == folder / "cache"
    assert [s.url for s in config.streams] == [str(folder / "clips" / "a.mp4"), "rtsps://cam:322/live", "/dev/video0"]
    assert config.health_path == folder / "run" / "health.json"


def test_environment_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/birdstream:/var/lib/other")
    monkeypatch.setenv("CACHE_DIRECTORY", "/var/cache/birdstream")
    config = load_config(write(tmp_path, "streams:\n  - {id: a, url: rtsp://cam/s}\n"))
    assert config.state_dir == Path("/var/lib/birdstream")
    assert config.model.cache_dir == Path("/var/cache/birdstream")
    # a key written in the file wins over the environment
    config = load_config(write(tmp_path, "state_dir: /srv/bs\nstreams:\n  - {id: a, url: rtsp://cam/s}\n"))
    assert config.state_dir == Path("/srv/bs")


def test_find_config_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_config("given.yaml") == Path("given.yaml")
    write(tmp_path, "x: 1\n")
    assert find_config(None) == Path("config.yaml")
    monkeypatch.setenv("BIRDSTREAM_CONFIG", "/etc/other.yaml")
    assert find_config(None) == Path("/etc/other.yaml")


def test_stream_password_file_is_injected_and_redacted(tmp_path: Path) -> None:
    write(tmp_path, "p@ss:w/rd\n", "feeder_pw")
    write(tmp_path, "brokersecret\n", "mqtt_pw")
    config = load_config(write(tmp_path, """
streams:
  - {id: feeder, url: "rtsp://viewer@10.0.0.5:554/stream1", password_file: feeder_pw}
  - {id: inline, url: "rtsp://admin@10.0.0.6/s"}
mqtt: {username: station1, password_file: mqtt_pw}
"""))
    assert config.streams[0].url == "rtsp://viewer:p%40ss%3Aw%2Frd@10.0.0.5:554/stream1"
    assert config.mqtt.password is not None and config.mqtt.password.get_secret_value() == "brokersecret"
    text = to_yaml(redacted(config))
    for secret in ("p@ss", "p%40ss", "inlinesecret", "brokersecret", "viewer", "admin"):
        assert secret not in text
    view = yaml.safe_load(text)
    assert view["streams"][0]["url"] == "rtsp://***@10.0.0.5:554/stream1"
    assert view["streams"][1]["url"] == "rtsp://***@10.0.0.6/s"
    assert view["mqtt"]["password"] == "***"
    assert "brokersecret" not in repr(config) and "p@ss" not in str(config.mqtt)


def test_password_needs_a_user_in_the_url(tmp_path: Path) -> None:
    write(tmp_path, "pw\n", "pw")
    with pytest.raises(ConfigError, match=r"streams\[0\]\.password_file: the url names no user"):
        load_config(write(tmp_path, "streams:\n  - {id: a, url: 'rtsp://cam/s', password_file: pw}\n"))


def test_systemd_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt_password").write_text("fromcred\n")
    (creds / "stream_feeder_password").write_text("camcred")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    text = "streams:\n  - {id: feeder, url: 'rtsp://user@cam/s'}\nmqtt: {username: u}\n"
    config = load_config(write(tmp_path, text))
    assert config.mqtt.password is not None and config.mqtt.password.get_secret_value() == "fromcred"
    assert config.streams[0].url == "rtsp://user:camcred@cam/s"
    # an empty credential file (the unit's placeholder) means: no password
    (creds / "mqtt_password").write_text("")
    (creds / "stream_feeder_password").write_text("")
    config = load_config(write(tmp_path, text))
    assert config.mqtt.password is None and config.streams[0].url == "rtsp://user@cam/s"


def test_shipped_config_is_valid_and_its_values_are_the_defaults() -> None:
    config = load_config(SHIPPED)
    defaults = config_from_dict({}, base_dir=REPO, require_streams=False)
    for section in Config.model_fields:
        if section not in ("station", "streams", "state_dir"):
            assert getattr(config, section) == getattr(defaults, section), section
    stream = config.streams[0]
    assert stream == StreamConfig(id=stream.id, url=stream.url)


def _keys(model: type, prefix: str = "") -> list[str]:
    from pydantic import BaseModel

    out = []
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        if field.exclude:
            continue
        out.append(name)
        inner = field.annotation
        for candidate in (inner, *getattr(inner, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                out += _keys(candidate)
    return out


def test_shipped_config_documents_every_key() -> None:
    text = SHIPPED.read_text()
    for key in set(_keys(Config)):
        assert re.search(rf"^\s*(#\s*)?(- )?{key}:", text, re.M), f"config.yaml does not mention {key}"


def test_committed_schema_is_current() -> None:
    committed = (REPO / "birdstream" / "schemas" / "config.schema.json").read_text()
    assert committed == json_schema(), "regenerate: birdstream check-config --schema > birdstream/schemas/config.schema.json"


def test_schema_accepts_the_shipped_config_and_rejects_typos() -> None:
    schema = json.loads(json_schema())
    data = yaml.safe_load(SHIPPED.read_text())
    jsonschema.validate(data, schema)
    data["streams"][0]["sampel_fps"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)
    assert "password" not in schema["$defs"]["MqttConfig"]["properties"]  # secrets only via password_file
    assert "password" not in schema["$defs"]["StreamConfig"]["properties"]


def test_lists_and_thresholds(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """
streams:
  - {id: a, url: x.mp4, roi: [10, 20, 300, 200], motion: {enabled: true, threshold: 0.02}}
sightings: {allow: [Columba livia], thresholds: {Columba livia: 0.9}, exit_score: 0.3}
mqtt: {protocol: 3.1.1}
log_level: debug
"""))
    assert config.streams[0].roi == (10, 20, 300, 200)
    assert config.streams[0].motion.enabled is True
    assert config.sightings.allow == ("Columba livia",)
    assert config.sightings.thresholds == {"Columba livia": 0.9}
    assert (config.mqtt.protocol, config.log_level) == ("3.1.1", "DEBUG")


def test_sections_with_every_key_commented_out_are_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """
sightings:
  # enter_score: 0.7
mqtt:
streams:
  - id: a
    url: x.mp4
    motion:
"""))
    assert config.sightings.enter_score == 0.6 and config.mqtt.enabled and config.streams[0].motion.enabled is None
