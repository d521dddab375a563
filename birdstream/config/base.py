"""Shared pieces of the config models: the Section base, validators and annotated types."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

DEFAULT_WEIGHTS = "vit_parallel_s16_18x2_ls_avg_data2vec-intermediate-arabian-peninsula"
ID_PATTERN = r"^[a-z0-9_-]+$"
DEVICE_PATTERN = r"^(auto|cpu|cuda|cuda:\d+)$"
TOPIC_PATTERN = r"^[^#+/\s]([^#+\s]*[^#+/\s])?$"
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_PORT_THEN_PATH = re.compile(r"^[^/?#@:]*:\d*(?:[/?#]|$)")  # host:port/... (no password before it)


def keyed_error(key: str, message: str) -> PydanticCustomError:
    """A validation error about *key* (dotted, relative to the model raising it)."""
    return PydanticCustomError("birdstream_key", "{key}: {message}", {"key": key, "message": message})


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Relative paths resolve against the config file's folder (given as validation context)."""
    value = value.expanduser()
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        value = Path(base) / value
    return value


def _looks_like_path(value: str) -> bool:
    return "/" in value or value.startswith(("~", ".")) or value.endswith((".pt", ".pth"))


# The URL schemes ingest reads (birdstream.ingest.spec; not imported here: it would load PyAV).
SOURCE_SCHEMES = ("rtsp", "rtsps", "http", "https", "rtmp", "rtmps", "file")


def _resolve_source(value: str, info: ValidationInfo) -> str:
    """A URL stays as written; a file, device or folder path resolves like any other path."""
    if _URL_SCHEME.match(value):
        scheme = value.split("://", 1)[0].lower()
        if scheme not in SOURCE_SCHEMES:
            raise ValueError(f"unsupported URL scheme {scheme!r}: use one of {', '.join(SOURCE_SCHEMES)}, "
                             "a file, a folder or /dev/videoN")
        if _url_password(value):
            # The URL is not repeated: a password with a space or quote defeats any redaction.
            raise ValueError(f"a password is written in the URL; passwords are not written in the config: "
                             "keep only the user name before the @ and put the password in a file named by password_file")
        return value
    return str(_resolve_path(Path(value), info))


def _url_password(url: str) -> bool:
    """True when the URL's authority holds user:password@ (however the password is spelled)."""
    authority = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
    if "@" not in authority:
        # A password holding '/' or '?' cuts the authority short; its '@' comes later in the URL.
        rest = url.split("://", 1)[1]
        return "@" in rest and ":" in rest.split("@", 1)[0] and not _PORT_THEN_PATH.match(rest)
    return ":" in authority.rsplit("@", 1)[0]


def _resolve_weights(value: str, info: ValidationInfo) -> str:
    return str(_resolve_path(Path(value), info)) if _looks_like_path(value) else value


def _roi_shape(value: Any) -> Any:
    if isinstance(value, (list, tuple)) and len(value) != 4:
        raise ValueError(f"must be [x, y, w, h]: 4 numbers, got {len(value)}")
    return value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _as_str(value: Any) -> Any:
    # YAML reads `protocol: 5` as an int and `protocol: 3.1.1` as a string.
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


# FFmpeg's hardware device types (libavutil/hwcontext.h); which ones work depends on the build.
HWACCEL_TYPES = ("auto", "cuda", "vaapi", "qsv", "vdpau", "vulkan", "drm", "videotoolbox", "d3d11va",
                 "d3d12va", "dxva2", "opencl", "mediacodec", "amf", "ohcodec")


def check_hwaccel(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    value = value.strip().lower()
    if value not in HWACCEL_TYPES:
        close = difflib.get_close_matches(value, HWACCEL_TYPES, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"not a hardware decoder type{hint} (use null for software, or one of: "
                         f"{', '.join(HWACCEL_TYPES)})")
    return value


ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]
Ident = Annotated[str, Field(pattern=ID_PATTERN, min_length=1, max_length=64)]


class Section(BaseModel):
    """Base of every config section: frozen, unknown keys are errors, docstrings document keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        # `motion:` with every key commented out reads as null: treat it as "all defaults".
        if isinstance(data, dict):
            for name, spec in cls.model_fields.items():
                if name in data and data[name] is None and isinstance(spec.annotation, type) \
                        and issubclass(spec.annotation, Section):
                    data = {**data, name: {}}
        return data
