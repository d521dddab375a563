"""Reading config.yaml, the environment and secret files into a validated Config.

The only place in birdstream that reads YAML, environment variables or secret files.
"""

from __future__ import annotations

import difflib
import json
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from birdstream.config.base import DEVICE_PATTERN, ID_PATTERN, TOPIC_PATTERN
from birdstream.config.models import Config
from birdstream.errors import ConfigError, first_line
from birdstream.redact import REDACTED, redact_text as redact_url

Loc = tuple[str | int, ...]
SYSTEM_CONFIG = Path("/etc/birdstream/config.yaml")
MQTT_CREDENTIAL = "mqtt_password"


def find_config(explicit: str | os.PathLike[str] | None = None, *, required: bool = True) -> Path | None:
    """The config file: -c, then $BIRDSTREAM_CONFIG, then ./config.yaml, then /etc/birdstream/config.yaml."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get("BIRDSTREAM_CONFIG")
    if env:
        return Path(env)
    for candidate in (Path("config.yaml"), SYSTEM_CONFIG):
        if candidate.is_file():
            return candidate
    if required:
        raise ConfigError("no config file: give -c FILE, set $BIRDSTREAM_CONFIG, "
                          "or create ./config.yaml or /etc/birdstream/config.yaml")
    return None


def load_config(path: str | os.PathLike[str], *, require_streams: bool = True) -> Config:
    """Read, validate and resolve one config file; every problem is one ConfigError line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {_reason(exc)}") from None
    data, lines = _parse_yaml(text, path)
    if data is None:
        raise ConfigError(f"{path}: the file is empty (it needs at least a streams: section)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the top level must be a mapping of keys, not a {type(data).__name__}")
    _reject_inline_secrets(data, path, lines)
    return config_from_dict(data, base_dir=path.parent.absolute(), require_streams=require_streams,
                            source=str(path), lines=lines)


def default_config(*, base_dir: Path | None = None) -> Config:
    """All defaults and no stream (for `classify` without a config file)."""
    return config_from_dict({}, base_dir=base_dir or Path.cwd(), require_streams=False, source="defaults")


def config_from_dict(data: Mapping[str, Any], *, base_dir: Path, require_streams: bool = True,
                     source: str = "config", lines: Mapping[Loc, int] | None = None) -> Config:
    """Validate a parsed config mapping, filling env defaults and secrets."""
    data = dict(data)
    env_state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if "state_dir" not in data:
        data["state_dir"] = str(Path(env_state) if env_state else Path.cwd() / "state")
    if data.get("model") is None or isinstance(data["model"], dict):
        model = dict(data.get("model") or {})
        if model.get("cache_dir") is None:
            model["cache_dir"] = str(_default_cache_dir())
        data["model"] = model
    try:
        config = Config.model_validate(data, context={"base_dir": base_dir, "require_streams": require_streams})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, lines or {})) from None
    return _with_secrets(config, source, lines or {})


def _default_cache_dir() -> Path:
    if os.environ.get("CACHE_DIRECTORY"):
        return Path(os.environ["CACHE_DIRECTORY"].split(":")[0])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "birdstream"
    return Path("~/.cache/birdstream").expanduser()


# --- YAML --------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (YAML would silently keep the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            if isinstance(key, typing.Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(text: str, path: Path) -> tuple[Any, dict[Loc, int]]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: dict[Loc, int] = {}
        _index_lines(node, (), lines)
        return loader.construct_document(node), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {_reason(exc)}") from None
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]


def _index_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    """Record the 1-based line of every key and list item, for error messages."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                sub = (*loc, key_node.value)
                lines[sub] = key_node.start_mark.line + 1
                _index_lines(value_node, sub, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*loc, i)] = item.start_mark.line + 1
            _index_lines(item, (*loc, i), lines)


# --- errors ------------------------------------------------------------------------------------


def key_path(loc: Loc) -> str:
    """('streams', 0, 'sample_fps') -> 'streams[0].sample_fps'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _where(source: str, loc: Loc, lines: Mapping[Loc, int]) -> str:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return f"{source}:{lines[loc[:n]]}"
    return source


_PATTERNS = {
    ID_PATTERN: "may hold only lowercase letters, digits, _ and - ([a-z0-9_-]+)",
    DEVICE_PATTERN: "must be auto, cpu, cuda or cuda:N",
    TOPIC_PATTERN: "must be MQTT topic levels without wildcards (+ #), spaces, or a leading/trailing /",
}


def format_validation_error(exc: ValidationError, source: str, lines: Mapping[Loc, int]) -> str:
    """The first problem as one line: '<file>:<line>: <key path>: <what is wrong>'."""
    errors = exc.errors(include_url=False)
    err = errors[0]
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "birdstream_key":
        ctx = err.get("ctx") or {}
        loc = (*loc, *(int(p) if p.isdigit() else p for p in str(ctx["key"]).split(".")))
        message = str(ctx["message"])
    elif kind == "extra_forbidden":
        message = "unknown key" + _suggestion(loc)
    elif kind == "string_pattern_mismatch" and (err.get("ctx") or {}).get("pattern") in _PATTERNS:
        message = f"{_PATTERNS[err['ctx']['pattern']]} (got {err.get('input')!r})"
    elif kind == "missing":
        message = "missing (this key is required)"
    else:
        message = str(err["msg"]).removeprefix("Value error, ")
        message = message.replace("Input should be", "must be").replace("String should", "must")
        message = message.replace("a valid tuple", "a list").replace("a valid dictionary", "a mapping")
        value = err.get("input")
        if kind == "string_type" and isinstance(value, bool):
            message += f" (got {value}: YAML reads yes/no/on/off/true/false as a boolean; put it in quotes)"
        elif " got " in message:
            pass
        elif isinstance(value, (str, int, float, bool)) or value is None:
            message += f" (got {value!r})"
        elif isinstance(value, (dict, list)):
            message += f" (got a {'mapping' if isinstance(value, dict) else 'list'})"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    name = key_path(loc) or "(top level)"
    return f"{_where(source, loc, lines)}: {name}: {message}{more}"


def _suggestion(loc: Loc) -> str:
    model = _model_at(loc[:-1])
    if model is None or not isinstance(loc[-1], str):
        return ""
    keys = [k for k, f in model.model_fields.items() if not f.exclude]
    close = difflib.get_close_matches(loc[-1], keys, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(keys)})"


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The config section class found by walking *loc* from Config."""
    tp: Any = Config
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(part, int):
            args = typing.get_args(tp)
            tp = args[0] if args else None
        elif isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            tp = tp.model_fields[part].annotation
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = args[0]
        else:
            return tp


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or first_line(exc)


# --- secrets -----------------------------------------------------------------------------------


def _reject_inline_secrets(data: dict[str, Any], path: Path, lines: Mapping[Loc, int]) -> None:
    candidates: list[Loc] = [("mqtt", "password")]
    streams = data.get("streams")
    if isinstance(streams, list):
        candidates += [("streams", i, "password") for i in range(len(streams))]
    for loc in candidates:
        if loc in lines:
            raise ConfigError(f"{_where(str(path), loc, lines)}: {key_path(loc)}: secrets are not written in the "
                              f"config: put the password in a file and name it with {key_path(loc)}_file")


def _read_secret(file: Path, what: str) -> str:
    try:
        value = file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {file}: {_reason(exc)}") from None
    if not value:
        raise ConfigError(f"{what}: {file} is empty")
    return value


def _credential(name: str) -> Path | None:
    """$CREDENTIALS_DIRECTORY/<name> when present and not empty (an empty credential means no password)."""
    folder = os.environ.get("CREDENTIALS_DIRECTORY")
    if not folder:
        return None
    file = Path(folder) / name
    try:
        return file if file.is_file() and file.stat().st_size > 0 else None
    except OSError:
        return None


def _with_secrets(config: Config, source: str, lines: Mapping[Loc, int]) -> Config:
    """Read password files (or systemd credentials) into the frozen config; check TLS files exist."""
    def where(loc: Loc) -> str:
        return f"{_where(source, loc, lines)}: {key_path(loc)}"

    mqtt = config.mqtt
    for key in ("ca_file", "cert_file", "key_file"):
        file = getattr(mqtt.tls, key)
        if file is not None and not file.is_file():
            raise ConfigError(f"{where(('mqtt', 'tls', key))}: no such file {file}")
    pw_file = mqtt.password_file or (_credential(MQTT_CREDENTIAL) if mqtt.enabled else None)
    if pw_file is not None:
        mqtt = mqtt.model_copy(update={"password": SecretStr(_read_secret(pw_file, where(("mqtt", "password_file"))))})
        if mqtt.username is None:
            raise ConfigError(f"{where(('mqtt', 'username'))}: needed with a password")
    streams = []
    for i, stream in enumerate(config.streams):
        file = stream.password_file or _credential(f"stream_{stream.id}_password")
        if file is not None:
            loc: Loc = ("streams", i, "password_file")
            secret = _read_secret(file, where(loc))
            stream = stream.model_copy(update={"url": _inject_password(stream.url, secret, where(loc)),
                                               "password": SecretStr(secret)})
        streams.append(stream)
    http = config.http
    if http.auth is not None:
        secret = _read_secret(http.auth.password_file, where(("http", "auth", "password_file")))
        http = http.model_copy(update={"auth": http.auth.model_copy(update={"password": SecretStr(secret)})})
    # model_copy skips validation: the values set here were validated above or are secrets.
    return config.model_copy(update={"mqtt": mqtt, "streams": tuple(streams), "http": http})


def _inject_password(url: str, secret: str, where: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise ConfigError(f"{where}: a password needs a URL source, not {redact_url(url)}")
    if parts.password is not None:
        raise ConfigError(f"{where}: the url already holds a password; remove it from the url")
    if not parts.username:
        raise ConfigError(f"{where}: the url names no user: write it as {parts.scheme}://USER@{parts.netloc}/...")
    host = parts.netloc.rsplit("@", 1)[1]
    netloc = f"{parts.username}:{quote(secret, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


# --- views -------------------------------------------------------------------------------------


def redacted(config: Config) -> dict[str, Any]:
    """The resolved config as plain data, with passwords and URL credentials replaced."""
    data = config.model_dump(mode="json")
    if config.mqtt.password is not None:
        data["mqtt"]["password"] = REDACTED
    for raw, stream in zip(data["streams"], config.streams):
        raw["url"] = redact_url(raw["url"])
        if stream.password is not None:
            raw["password"] = REDACTED
    return data


def to_yaml(data: Mapping[str, Any]) -> str:
    """Plain data as block-style YAML, keys in model order."""
    return yaml.safe_dump(dict(data), sort_keys=False, default_flow_style=False, allow_unicode=True)


def json_schema() -> str:
    """The JSON Schema of config.yaml, as committed in birdstream/schemas/config.schema.json."""
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "birdstream config.yaml"
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"
