"""Generate small test videos and stills with known content and known times.

Videos are coloured rectangles (given RGB, position, appearance/disappearance times) on a static
noise or plain background, encoded with PyAV. Options: variable frame rate (explicit frame times),
rotation metadata (remuxed by the system ffmpeg), an audio track. Stills carry EXIF
DateTimeOriginal. Everything is deterministic (seeded).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

EXIF_IFD = 0x8769
DATETIME_ORIGINAL = 0x9003
ORIENTATION = 0x0112


@dataclass(frozen=True)
class Box:
    """A filled rectangle of colour `rgb` at (x, y, w, h), visible for start_s <= t < end_s."""

    rgb: tuple[int, int, int]
    rect: tuple[int, int, int, int]
    start_s: float = 0.0
    end_s: float | None = None

    def visible(self, t: float) -> bool:
        return t >= self.start_s and (self.end_s is None or t < self.end_s)


def background(size: tuple[int, int], *, noise: bool = True, seed: int = 0,
               plain_rgb: tuple[int, int, int] = (96, 96, 96)) -> np.ndarray:
    """The static background: uint8 [h, w, 3], mid-grey noise or a plain colour."""
    w, h = size
    if noise:
        rng = np.random.default_rng(seed)
        return rng.integers(64, 192, size=(h, w, 3), dtype=np.uint8)
    return np.full((h, w, 3), plain_rgb, dtype=np.uint8)


def render(t: float, bg: np.ndarray, objects: Iterable[Box]) -> np.ndarray:
    """The RGB picture at media time t."""
    img = bg.copy()
    for box in objects:
        if box.visible(t):
            x, y, w, h = box.rect
            img[y : y + h, x : x + w] = box.rgb
    return img


def frame_times(duration_s: float, fps: float, vfr: bool = False) -> list[float]:
    """Presentation times of the frames; with vfr, intervals alternate 0.5x, 1.5x and 1x of 1/fps."""
    if not vfr:
        return [i / fps for i in range(int(round(duration_s * fps)))]
    steps = (0.5, 1.5, 1.0, 0.5, 2.0, 0.5)
    times, t, i = [], 0.0, 0
    while t < duration_s - 1e-9:
        times.append(t)
        t += steps[i % len(steps)] / fps
        i += 1
    return times


def make_video(
    path: str | os.PathLike,
    *,
    duration_s: float = 2.0,
    fps: float = 10.0,
    size: tuple[int, int] = (320, 240),
    objects: Sequence[Box] = (),
    noise: bool = True,
    codec: str = "h264",
    times: Sequence[float] | None = None,
    vfr: bool = False,
    gop: int | None = None,
    rotate: int | None = None,
    audio: bool = False,
    seed: int = 0,
    creation_time: datetime | None = None,
    pix_fmt: str | None = None,
) -> Path:
    """Write a video of coloured boxes on a static background; returns the path.

    `times` (seconds) overrides the frame times (any spacing, for VFR); `vfr=True` picks an
    irregular pattern. `gop` sets the key-frame interval in frames. `rotate` (90/180/270) adds
    display-rotation metadata. `codec`: "h264", "mjpeg", "mpeg4", "hevc". The container follows
    the file suffix (.mp4, .mkv, .ts, .avi, .mov).
    """
    path = Path(path)
    ts = list(times) if times is not None else frame_times(duration_s, fps, vfr)
    bg = background(size, noise=noise, seed=seed)
    encoder = {"h264": "libx264", "hevc": "libx265"}.get(codec, codec)
    target = path.with_name(path.stem + ".tmp" + path.suffix) if rotate else path
    container = av.open(str(target), "w")
    try:
        if creation_time is not None:
            container.metadata["creation_time"] = creation_time.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        stream = container.add_stream(encoder, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = size
        odd = size[0] % 2 or size[1] % 2
        stream.pix_fmt = pix_fmt or ("yuvj420p" if codec == "mjpeg" else "yuv444p" if odd else "yuv420p")
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        if gop is not None:
            stream.codec_context.gop_size = gop
        if encoder == "libx264":
            opts = {"preset": "ultrafast", "tune": "zerolatency"}
            if gop is not None:
                opts["x264-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0"
            stream.options = opts
        astream = None
        if audio:
            astream = container.add_stream("aac", rate=16000)
        for t in ts:
            frame = av.VideoFrame.from_ndarray(render(t, bg, objects), format="rgb24")
            frame.pts = int(round(t * 1000))
            frame.time_base = Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if astream is not None:
            _write_silence(container, astream, ts[-1] if ts else duration_s)
    finally:
        container.close()
    if rotate:
        _set_rotation(target, path, rotate)
    return path


def make_audio_only(path: str | os.PathLike, duration_s: float = 1.0) -> Path:
    """An audio-only file (AAC in .m4a/.mp4): a source with no video stream."""
    path = Path(path)
    container = av.open(str(path), "w")
    try:
        astream = container.add_stream("aac", rate=16000)
        _write_silence(container, astream, duration_s)
    finally:
        container.close()
    return path


def _write_silence(container: av.container.OutputContainer, astream, duration_s: float) -> None:
    n = 1024
    samples = int(duration_s * 16000)
    for start in range(0, samples, n):
        af = av.AudioFrame.from_ndarray(np.zeros((1, n), dtype=np.float32), format="fltp", layout="mono")
        af.sample_rate = 16000
        af.pts = start
        container.mux(astream.encode(af))
    container.mux(astream.encode(None))


def _set_rotation(src: Path, dst: Path, rotate: int) -> None:
    """Remux with display-rotation metadata (the system ffmpeg writes `rotate` as a display matrix)."""
    ffmpeg = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
    subprocess.run(
        [ffmpeg, "-v", "error", "-y", "-i", str(src), "-c", "copy",
         "-metadata:s:v:0", f"rotate={rotate}", str(dst)],
        check=True, timeout=60,
    )
    src.unlink()


def concat_ts(parts: Sequence[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Byte-concatenate MPEG-TS files (e.g. two resolutions) into one stream that changes mid-way."""
    out = Path(out)
    with open(out, "wb") as fh:
        for part in parts:
            fh.write(Path(part).read_bytes())
    return out


def make_still(
    path: str | os.PathLike,
    *,
    size: tuple[int, int] = (320, 240),
    rgb: tuple[int, int, int] | None = None,
    objects: Sequence[Box] = (),
    taken_at: datetime | None = None,
    mtime: float | None = None,
    orientation: int | None = None,
    seed: int = 0,
    quality: int = 90,
) -> Path:
    """Write a JPEG/PNG still; `taken_at` goes to EXIF DateTimeOriginal, `mtime` to the file."""
    path = Path(path)
    arr = background(size, noise=rgb is None, seed=seed, plain_rgb=rgb or (0, 0, 0))
    img = Image.fromarray(render(0.0, arr, objects))
    exif = Image.Exif()
    if taken_at is not None:
        exif.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] = taken_at.strftime("%Y:%m:%d %H:%M:%S")
    if orientation is not None:
        exif[ORIENTATION] = orientation
    kwargs = {"exif": exif.tobytes()} if (taken_at or orientation) else {}
    if path.suffix.lower() in (".jpg", ".jpeg"):
        img.save(path, quality=quality, **kwargs)
    else:
        img.save(path, **kwargs)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """A file with exactly these bytes (zero-byte and random-garbage inputs)."""
    path = Path(path)
    path.write_bytes(data)
    return path


def truncate_copy(src: str | os.PathLike, dst: str | os.PathLike, fraction: float) -> Path:
    """Copy the first `fraction` of a file's bytes."""
    data = Path(src).read_bytes()
    return write_bytes(dst, data[: int(len(data) * fraction)])


def corrupt_copy(src: str | os.PathLike, dst: str | os.PathLike, *, start: float = 0.4,
                 length: float = 0.2, seed: int = 1) -> Path:
    """Copy a file with a middle span of bytes overwritten by random garbage."""
    data = bytearray(Path(src).read_bytes())
    a, n = int(len(data) * start), int(len(data) * length)
    data[a : a + n] = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    return write_bytes(dst, bytes(data))
