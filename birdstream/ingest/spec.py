"""What a stream is: SourceSpec and source-kind detection."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from birdstream.errors import SourceError
from birdstream.ingest.regions import RegionOptions
from birdstream.redact import redact_url

SourceKind = Literal["rtsp", "http", "rtmp", "v4l2", "file", "folder"]
LIVE_KINDS = frozenset({"rtsp", "http", "rtmp", "v4l2"})

_SCHEMES: dict[str, SourceKind] = {
    "rtsp": "rtsp", "rtsps": "rtsp", "http": "http", "https": "http", "rtmp": "rtmp", "rtmps": "rtmp",
}


@dataclass(frozen=True, kw_only=True)
class SourceSpec:
    """One stream: where it comes from and how to read it (the `streams[]` config entry).

    The fields without a default are config keys: their defaults live in the config models only
    (station/wiring.py fills them in); the ones with a default are not configurable.
    """

    id: str
    url: str
    sample_fps: float  # sampled frames per second of presentation time; 0 = every frame
    realtime: bool  # files: pace reading at the file's own frame rate, like a camera
    loop: bool  # files: start again at the end
    roi: tuple[int, int, int, int] | None  # [x, y, w, h] in displayed source pixels
    transport: Literal["tcp", "udp"]  # rtsp only
    keyframes_only: bool  # decode key frames only (cheap, for low-power stations)
    motion_gate: bool | None  # None: on for live sources, off for files and folders
    motion_threshold: float  # fraction of the thumbnail that must change to pass the gate
    keepalive_s: float  # with the gate on, let one frame through at least this often
    stall_s: float  # live: no decoded frame for this long -> close and reopen
    open_timeout_s: float  # connect + probe timeout
    read_timeout_s: float  # no packet for this long -> the read fails (then reconnect)
    input_format: str | None  # v4l2: e.g. "mjpeg", "yuyv422"
    video_size: str | None  # v4l2: e.g. "1280x720"
    framerate: float | None  # v4l2: requested capture rate
    watch: bool  # folder: after the existing files, keep picking up new ones
    hwaccel: str | None  # None = software; "auto"; or an FFmpeg device type ("cuda", "vaapi", ...)
    hwaccel_device: str | None  # e.g. "0" (cuda) or "/dev/dri/renderD128" (vaapi); None = default
    motion_pixel_delta: int = 15  # grey-level change that counts a thumbnail pixel as changed
    backoff_min_s: float = 1.0
    backoff_max_s: float = 60.0
    watch_interval_s: float = 2.0
    decode_threads: int = 0  # 0 = FFmpeg chooses
    max_image_pixels: int = 120_000_000  # larger stills are refused (decompression bombs)
    tls_verify: bool = True  # https/rtsps/rtmps: verify the camera's certificate and host name
    ca_file: str | None = None  # PEM of the CA that signed the camera's certificate; None = the system's
    options: dict[str, str] = field(default_factory=dict)  # extra FFmpeg demuxer/protocol options
    regions: RegionOptions | None = None  # motion regions cropped beside the whole frame; None = off

    @property
    def kind(self) -> SourceKind:
        return source_kind(self.url)

    @property
    def live(self) -> bool:
        """Live as configured, before opening: see is_live (a finite HTTP file counts as live here)."""
        return is_live(self.kind)

    @property
    def gate_enabled(self) -> bool:
        return self.live if self.motion_gate is None else self.motion_gate

    @property
    def label(self) -> str:
        """How errors name this source: the stream id and its redacted URL."""
        return f"stream {self.id} ({redact_url(self.url)})"


def is_live(kind: SourceKind, duration: int | None = None) -> bool:
    """The one rule of "is this source live?": a camera, unless it is an HTTP URL of a finite file
    (a container with a known `duration`, which is offline material: no gate, no reconnect, pacing
    only on request). Before a source is opened its duration is unknown (None)."""
    return kind in LIVE_KINDS and not (kind == "http" and duration is not None)


def source_kind(url: str) -> SourceKind:
    """Which reader a URL or path needs; raises SourceError for an unknown scheme."""
    if url.startswith("/dev/video"):
        return "v4l2"
    m = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", url)
    if m:
        scheme = m.group(1).lower()
        if scheme == "file":
            return _path_kind(local_path(url))
        kind = _SCHEMES.get(scheme)
        if kind is None:
            raise SourceError(f"{redact_url(url)}: unsupported URL scheme {scheme!r} "
                              "(use rtsp, rtsps, http, https, rtmp, a file, a folder or /dev/videoN)")
        return kind
    return _path_kind(Path(url))


def local_path(url: str) -> Path:
    """The filesystem path of a file/folder source (accepts file:// URLs)."""
    if url.startswith("file://"):
        return Path(urlsplit(url).path)
    return Path(url).expanduser()


def _path_kind(path: Path) -> SourceKind:
    return "folder" if path.is_dir() else "file"


