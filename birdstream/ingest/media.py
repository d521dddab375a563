"""Opening sources with PyAV, decoding packets, reading stills, and listing camera-trap folders."""

from __future__ import annotations

import logging
import os
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import av
from PIL import Image, UnidentifiedImageError

from birdstream.ingest.errors import StreamError, classify
from birdstream.ingest.hwaccel import HwDecoder, describe
from birdstream.ingest.spec import SourceSpec, local_path

log = logging.getLogger(__name__)

STILL_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})
CLIP_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".ts", ".mts", ".m2ts", ".m4v", ".3gp",
                           ".webm", ".mpg", ".mpeg", ".wmv", ".flv"})
# Failures that say the source itself is unusable: not worth a second open without the hardware.
SOURCE_FAILURES = frozenset({"auth", "not_found", "unreachable", "timeout"})
EXIF_IFD, DATETIME_ORIGINAL, OFFSET_TIME_ORIGINAL = 0x8769, 0x9003, 0x9011


def ffmpeg_options(spec: SourceSpec) -> tuple[str | None, dict[str, str]]:
    """The demuxer name (or None) and the FFmpeg options for this source."""
    kind = spec.kind
    us = str(int(spec.read_timeout_s * 1_000_000))
    fmt: str | None = None
    opts: dict[str, str] = {}
    if kind == "rtsp":
        opts = {"rtsp_transport": spec.transport, "timeout": us}
    elif kind in ("http", "rtmp"):
        opts = {"rw_timeout": us}
    elif kind == "v4l2":
        fmt = "v4l2"
        if spec.input_format:
            opts["input_format"] = spec.input_format
        if spec.video_size:
            opts["video_size"] = spec.video_size
        if spec.framerate:
            opts["framerate"] = str(spec.framerate)
    opts.update({str(k): str(v) for k, v in spec.options.items()})
    return fmt, opts


def open_video(spec: SourceSpec, path: Path | None = None,
               hw: HwDecoder | None = None) -> av.container.InputContainer:
    """Open a source (or one file of a folder) and check it has a decodable video stream.

    With `hw`, the video is decoded on its hardware device when that works; a device that fails
    to open falls back to software here (logged and counted by `hw`), never failing the source.
    """
    label = str(path) if path is not None else spec.label
    if path is None and spec.kind in ("file", "v4l2"):
        path = local_path(spec.url)
    if path is not None and not path.exists():
        raise StreamError(label, "not_found")
    target = str(path) if path is not None else spec.url
    fmt, opts = ffmpeg_options(spec) if path is None or spec.kind == "v4l2" else (None, {})
    network = spec.kind in ("rtsp", "http", "rtmp")
    container = None
    chosen = _choose(hw)
    if chosen is not None:
        assert hw is not None
        kind, accel = chosen
        try:
            container = _open(spec, target, fmt, opts, accel)
        except Exception as exc:  # noqa: BLE001 - the device or the source: tell them apart below
            err = classify(exc, label, network=network)
            if err.kind in SOURCE_FAILURES:
                raise err from None
            hw_problem = describe(exc)
        else:
            hw.opened(container, kind)
    if container is None:
        try:
            container = _open(spec, target, fmt, opts, None)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one classified line
            raise classify(exc, label, network=network) from None
        if chosen is not None:
            assert hw is not None
            hw.failed("open", f"opening with {chosen[0]} failed: {hw_problem}", chosen[0])
        elif hw is not None:
            hw.software()
    try:
        video_stream(container, label)
    except BaseException:
        container.close()
        raise
    return container


def _choose(hw: HwDecoder | None) -> tuple[str, av.codec.hwaccel.HWAccel] | None:
    if hw is None:
        return None
    try:
        return hw.accel()
    except Exception:  # noqa: BLE001 - a hardware problem never stops a stream
        log.exception("%s: choosing a hardware decoder failed; decoding in software", hw.label)
        return None


def _open(spec: SourceSpec, target: str, fmt: str | None, opts: dict[str, str],
          accel: av.codec.hwaccel.HWAccel | None) -> av.container.InputContainer:
    return av.open(target, format=fmt, options=opts, metadata_errors="ignore",
                   timeout=(spec.open_timeout_s, spec.read_timeout_s), hwaccel=accel)


def video_stream(container: av.container.InputContainer, label: str) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise StreamError(label, "not_video", "no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise StreamError(label, "unsupported", f"no decoder for {stream.codec_context or 'this codec'}")
    return stream


def file_time(container: av.container.InputContainer, path: Path) -> float:
    """Epoch seconds of the start of a recording: container creation_time, else the file mtime."""
    value = (container.metadata or {}).get("creation_time")
    if value:
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=timezone.utc)
            if dt.year > 1971:
                return dt.timestamp()
        except ValueError:
            pass
    return path.stat().st_mtime


def open_still(path: Path, max_pixels: int) -> Image.Image:
    """Open an image lazily (header only), refusing decompression bombs with a clear error."""
    label = str(path)
    if not path.exists():
        raise StreamError(label, "not_found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise StreamError(label, "too_large", str(exc).split(" could")[0]) from None
    except UnidentifiedImageError:
        raise StreamError(label, "not_video", "unrecognised image data") from None
    except OSError as exc:
        raise classify(exc, label) from None
    w, h = image.size
    if w * h > max_pixels:
        image.close()
        raise StreamError(label, "too_large", f"{w}x{h} pixels, limit {max_pixels}")
    return image


def still_time(image: Image.Image, path: Path) -> float:
    """Epoch seconds a still was taken: EXIF DateTimeOriginal (camera local time), else mtime."""
    try:
        ifd = image.getexif().get_ifd(EXIF_IFD)
        value = ifd.get(DATETIME_ORIGINAL)
        if value:
            dt = datetime.strptime(str(value).strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
            offset = ifd.get(OFFSET_TIME_ORIGINAL)
            if offset:
                dt = datetime.strptime(dt.strftime("%Y-%m-%dT%H:%M:%S") + str(offset).strip("\x00 "),
                                       "%Y-%m-%dT%H:%M:%S%z")
            return dt.timestamp()
    except (ValueError, TypeError, OSError, KeyError):
        pass
    return path.stat().st_mtime


def _still_sort_time(path: Path) -> float:
    try:
        with Image.open(path) as image:
            return still_time(image, path)
    except (OSError, ValueError, Image.DecompressionBombError):
        return path.stat().st_mtime


def is_media(path: Path) -> bool:
    suffix = path.suffix.lower()
    return (suffix in STILL_SUFFIXES or suffix in CLIP_SUFFIXES) and not path.name.startswith(".")


def list_media(folder: str | os.PathLike) -> list[Path]:
    """A folder's media, recursively: stills by EXIF DateTimeOriginal (else mtime), then clips by name."""
    root = Path(folder)
    if not root.is_dir():
        raise StreamError(str(root), "not_found", "no such folder")
    stills: list[Path] = []
    clips: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            path = Path(dirpath, name)
            if not is_media(path):
                continue
            (stills if path.suffix.lower() in STILL_SUFFIXES else clips).append(path)
    stills.sort(key=lambda p: (_still_sort_time(p), str(p)))
    clips.sort(key=lambda p: str(p.relative_to(root)))
    return stills + clips


def is_still(path: Path) -> bool:
    return path.suffix.lower() in STILL_SUFFIXES


class FolderWatcher:
    """New media files in a folder, reported once their size has stopped changing."""

    def __init__(self, folder: Path, seen: set[Path]) -> None:
        self.folder = folder
        self.seen = set(seen)
        self._sizes: dict[Path, tuple[int, float]] = {}

    def poll(self) -> list[Path]:
        ready: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(self.folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                path = Path(dirpath, name)
                if path in self.seen or not is_media(path):
                    continue
                try:
                    st = path.stat()
                except OSError:
                    continue
                sig = (st.st_size, st.st_mtime)
                if st.st_size > 0 and self._sizes.get(path) == sig and time.time() - st.st_mtime > 0.5:
                    ready.append(path)
                    self.seen.add(path)
                    self._sizes.pop(path, None)
                else:
                    self._sizes[path] = sig
        return ready
