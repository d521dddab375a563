"""Opening sources with PyAV, decoding packets, reading stills, and listing camera-trap folders."""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import av
from PIL import Image, UnidentifiedImageError

from birdstream.ingest.errors import StreamError, classify
from birdstream.ingest.hwaccel import HwDecoder, describe
from birdstream.ingest.redirect import check_rtsp_redirect
from birdstream.ingest.spec import SourceSpec, local_path
from birdstream.redact import printable

log = logging.getLogger(__name__)

STILL_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})
CLIP_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".ts", ".mts", ".m2ts", ".m4v", ".3gp",
                           ".webm", ".mpg", ".mpeg", ".wmv", ".flv"})
# Failures that say the source itself is unusable: not worth a second open without the hardware.
SOURCE_FAILURES = frozenset({"auth", "not_found", "unreachable", "timeout"})
EXIF_IFD, DATETIME_ORIGINAL, OFFSET_TIME_ORIGINAL = 0x8769, 0x9003, 0x9011


# The protocols FFmpeg may open for each kind of source: a playlist or redirect on a camera URL
# cannot make it read local files (file:), pipes or other protocols.
PROTOCOLS: dict[str, str] = {
    "rtsp": "rtsp,rtsps,rtp,srtp,udp,tcp,tls",
    "http": "http,https,tcp,tls,crypto,httpproxy",
    "rtmp": "rtmp,rtmps,rtmpt,rtmpts,tcp,tls",
    "file": "file",
}
TLS_SCHEMES = frozenset({"https", "rtsps", "rtmps", "rtmpts"})


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
    if kind in PROTOCOLS:
        opts["protocol_whitelist"] = PROTOCOLS[kind]
    if uses_tls(spec):
        # FFmpeg does not verify certificates unless asked: a man in the middle got the camera password.
        opts["tls_verify"] = "1" if spec.tls_verify else "0"
        if spec.ca_file:
            opts["ca_file"] = spec.ca_file
    opts.update({str(k): str(v) for k, v in spec.options.items()})
    return fmt, opts


def uses_tls(spec: SourceSpec) -> bool:
    return spec.url.split("://", 1)[0].lower() in TLS_SCHEMES if "://" in spec.url else False


def open_video(spec: SourceSpec, path: Path | None = None,
               hw: HwDecoder | None = None) -> av.container.InputContainer:
    """Open a source (or one file of a folder) and check it has a decodable video stream.

    With `hw`, the video is decoded on its hardware device when that works; a device that fails
    to open falls back to software here (logged and counted by `hw`), never failing the source.
    """
    label = str(path) if path is not None else spec.label
    if path is None and spec.kind in ("file", "v4l2"):
        path = local_path(spec.url)
    if path is not None:
        check_local(path, label, device=spec.kind == "v4l2")
    # Absolute: FFmpeg reads a relative "06:00.mp4" or "file:x.mp4" as a protocol name.
    target = str(path.absolute()) if path is not None else spec.url
    fmt, opts = (ffmpeg_options(spec) if path is None or spec.kind == "v4l2"
                 else (None, {"protocol_whitelist": PROTOCOLS["file"]}))
    network = spec.kind in ("rtsp", "http", "rtmp")
    if path is None and spec.kind == "rtsp":
        check_rtsp_redirect(spec, label)
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
                raise _tls_hint(err, spec, exc) from None
            hw_problem = describe(exc)
        else:
            hw.opened(container, kind)
    if container is None:
        try:
            container = _open(spec, target, fmt, opts, None)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one classified line
            raise _tls_hint(classify(exc, label, network=network), spec, exc) from None
        if chosen is not None:
            assert hw is not None
            hw.failed("open", f"opening with {chosen[0]} failed: {hw_problem}", chosen[0])
        elif hw is not None:
            hw.software()
    try:
        stream = video_stream(container, label)
        w, h = stream.codec_context.width or 0, stream.codec_context.height or 0
        if w * h > spec.max_image_pixels:  # refused before the decoder allocates a picture
            raise StreamError(label, "too_large", f"{w}x{h} pixels, limit {spec.max_image_pixels}")
    except BaseException:
        container.close()
        raise
    return container


def _tls_hint(err: StreamError, spec: SourceSpec, exc: BaseException) -> StreamError:
    """FFmpeg reports a refused certificate as a bare I/O error; say what it most likely is."""
    if (err.kind == "unreachable" and getattr(exc, "errno", None) == errno.EIO and uses_tls(spec)
            and spec.tls_verify):
        return StreamError(err.label, "tls", "certificate not trusted or not for this host "
                                             "(set ca_file for a camera's own CA, or tls_verify: false)")
    return err


def check_local(path: Path, label: str, *, device: bool = False) -> None:
    """A local source must exist and be a regular file (or a device): opening a FIFO would block forever."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise StreamError(label, "not_found") from None
    except OSError as exc:
        raise classify(exc, label) from None
    if not (stat.S_ISREG(mode) or (device and stat.S_ISCHR(mode))):
        raise StreamError(label, "not_video", "not a regular file")


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


EARLIEST_PLAUSIBLE = datetime(1980, 1, 1, tzinfo=timezone.utc).timestamp()
FUTURE_SLACK_S = 366 * 86400  # a camera clock a year ahead is wrong, but not absurd


def plausible(epoch_s: float) -> bool:
    """A capture time a camera could have written (not 1970, not year 9999)."""
    return EARLIEST_PLAUSIBLE <= epoch_s <= time.time() + FUTURE_SLACK_S


def file_time(container: av.container.InputContainer, path: Path) -> float:
    """Epoch seconds of the start of a recording: container creation_time, else the file mtime."""
    value = (container.metadata or {}).get("creation_time")
    if value:
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=timezone.utc)
            if plausible(dt.timestamp()):
                return dt.timestamp()
            if dt.year > 1971:  # 1970 is "not set"; anything else out of range is worth a line
                log.warning("%s: creation time %s is not plausible; using the file time", printable(str(path)),
                            printable(value))
        except (ValueError, OverflowError, OSError):
            pass
    return path.stat().st_mtime


def open_still(path: Path, max_pixels: int) -> Image.Image:
    """Open an image lazily (header only), refusing decompression bombs with a clear error."""
    label = str(path)
    check_local(path, label)
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


def still_time(image: Image.Image, path: Path, *, warn: bool = True) -> float:
    """Epoch seconds a still was taken: EXIF DateTimeOriginal (camera local time), else mtime.

    An absurd EXIF date (year 9999, 1970, a date the clock cannot hold) falls back to the file
    time with one warning (`warn`), instead of failing the file.
    """
    value = None
    try:
        ifd = image.getexif().get_ifd(EXIF_IFD)
        value = ifd.get(DATETIME_ORIGINAL)
        if value:
            dt = datetime.strptime(str(value).strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
            offset = ifd.get(OFFSET_TIME_ORIGINAL)
            if offset:
                dt = datetime.strptime(dt.strftime("%Y-%m-%dT%H:%M:%S") + str(offset).strip("\x00 "),
                                       "%Y-%m-%dT%H:%M:%S%z")
            taken = dt.timestamp()
            if plausible(taken):
                return taken
            if warn:
                log.warning("%s: EXIF date %s is not plausible; using the file time", printable(str(path)),
                            printable(str(value)))
    except (ValueError, TypeError, OSError, KeyError, OverflowError):
        pass
    return path.stat().st_mtime


def _still_sort_time(path: Path) -> float:
    try:
        with Image.open(path) as image:
            return still_time(image, path, warn=False)  # reading it warns once
    except (OSError, ValueError, Image.DecompressionBombError):
        try:
            return path.stat().st_mtime
        except OSError:  # gone meanwhile: reading it will report that
            return 0.0


def is_media(path: Path) -> bool:
    suffix = path.suffix.lower()
    return (suffix in STILL_SUFFIXES or suffix in CLIP_SUFFIXES) and not path.name.startswith(".")


def list_media(folder: str | os.PathLike,
               on_error: Callable[[StreamError], None] | None = None) -> list[Path]:
    """A folder's media, recursively: stills folder by folder, each by EXIF DateTimeOriginal (else
    mtime), then clips by name.

    An unreadable folder raises StreamError; an unreadable subfolder goes to `on_error` (default:
    a logged warning) and the rest is listed.
    """
    root = Path(folder)
    if not root.is_dir():
        raise StreamError(str(root), "not_found", "no such folder")

    def walk_error(exc: OSError) -> None:
        err = classify(exc, exc.filename or str(root))
        if Path(exc.filename or root) == root:
            raise err
        if on_error is None:
            log.warning("%s; skipped", err)
        else:
            on_error(err)

    stills: list[Path] = []
    clips: list[Path] = []
    real_root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root, onerror=walk_error):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            path = Path(dirpath, name)
            if not is_media(path) or not path.is_file() or not inside(real_root, path):
                continue
            (stills if path.suffix.lower() in STILL_SUFFIXES else clips).append(path)
    # Folder by folder: stills of two cameras (cam1/, cam2/) interleaved by time would break every
    # burst into lone stills, and a folder stream would mix the cameras' sightings.
    stills.sort(key=lambda p: (str(p.parent.relative_to(root)), _still_sort_time(p), str(p)))
    clips.sort(key=lambda p: str(p.relative_to(root)))
    return stills + clips


def inside(real_root: Path, path: Path) -> bool:
    """False for a link that leads out of the folder (e.g. to /etc or another card): not read."""
    if not path.is_symlink():
        return True  # os.walk does not enter linked folders, so a plain file is inside
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    if target.is_relative_to(real_root):
        return True
    log.warning("%s: a link out of the folder; not read", printable(str(path)))
    return False


def is_still(path: Path) -> bool:
    return path.suffix.lower() in STILL_SUFFIXES


class FolderWatcher:
    """New media files in a folder, reported once their size has stopped changing."""

    def __init__(self, folder: Path, seen: set[Path]) -> None:
        self.folder = folder
        self._real = folder.resolve()
        self.seen = set(seen)
        self._sizes: dict[Path, tuple[int, float]] = {}

    def close(self) -> None:
        """Nothing to release (the inotify watcher has a file descriptor)."""

    def poll(self) -> list[Path]:
        ready: list[Path] = []
        present: set[Path] = set()
        for dirpath, dirnames, filenames in os.walk(self.folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                path = Path(dirpath, name)
                present.add(path)
                if path in self.seen or not is_media(path):
                    continue
                try:
                    st = path.stat()
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                if not inside(self._real, path):
                    self.seen.add(path)  # one warning, not one per scan
                    continue
                sig = (st.st_size, st.st_mtime)
                if st.st_size > 0 and self._sizes.get(path) == sig and time.time() - st.st_mtime > 0.5:
                    ready.append(path)
                    self.seen.add(path)
                    self._sizes.pop(path, None)
                else:
                    self._sizes[path] = sig
        # Forget files that were deleted (a card emptied by hand, a rotating folder): months of
        # new files must not grow these without bound.
        self.seen &= present
        self._sizes = {p: sig for p, sig in self._sizes.items() if p in present}
        return ready
