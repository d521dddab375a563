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


@dataclass(frozen=True)
class SourceSpec:
    """One stream: where it comes from and how to read it (the `streams[]` config entry)."""

    id: str
    url: str
    sample_fps: float = 2.0  # sampled frames per second of presentation time; 0 = every frame
    realtime: bool = False  # files: pace reading at the file's own frame rate, like a camera
    loop: bool = False  # files: start again at the end
    roi: tuple[int, int, int, int] | None = None  # [x, y, w, h] in displayed source pixels
    transport: Literal["tcp", "udp"] = "tcp"  # rtsp only
    keyframes_only: bool = False  # decode key frames only (cheap, for low-power stations)
    motion_gate: bool | None = None  # None: on for live sources, off for files and folders
    motion_threshold: float = 0.01  # fraction of the thumbnail that must change to pass the gate
    motion_pixel_delta: int = 15  # grey-level change that counts a thumbnail pixel as changed
    keepalive_s: float = 10.0  # with the gate on, let one frame through at least this often
    stall_s: float = 20.0  # live: no decoded frame for this long -> close and reopen
    open_timeout_s: float = 15.0  # connect + probe timeout
    read_timeout_s: float = 15.0  # no packet for this long -> the read fails (then reconnect)
    backoff_min_s: float = 1.0
    backoff_max_s: float = 60.0
    input_format: str | None = None  # v4l2: e.g. "mjpeg", "yuyv422"
    video_size: str | None = None  # v4l2: e.g. "1280x720"
    framerate: float | None = None  # v4l2: requested capture rate
    watch: bool = False  # folder: after the existing files, keep picking up new ones
    watch_interval_s: float = 2.0
    decode_threads: int = 0  # 0 = FFmpeg chooses
    hwaccel: str | None = None  # None = software; "auto"; or an FFmpeg device type ("cuda", "vaapi", ...)
    hwaccel_device: str | None = None  # e.g. "0" (cuda) or "/dev/dri/renderD128" (vaapi); None = default
    max_image_pixels: int = 120_000_000  # larger stills are refused (decompression bombs)
    options: dict[str, str] = field(default_factory=dict)  # extra FFmpeg demuxer/protocol options
    regions: RegionOptions | None = None  # motion regions cropped beside the whole frame; None = off

    @property
    def kind(self) -> SourceKind:
        return source_kind(self.url)

    @property
    def live(self) -> bool:
        return self.kind in LIVE_KINDS

    @property
    def gate_enabled(self) -> bool:
        return self.live if self.motion_gate is None else self.motion_gate

    @property
    def label(self) -> str:
        """How errors name this source: the stream id and its redacted URL."""
        return f"stream {self.id} ({redact_url(self.url)})"


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


