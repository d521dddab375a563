"""Per-stream frame making: media clock, sampling, conversion, motion, seq -> messages.Frame."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av

from birdstream.ingest.convert import Converted, Converter, Size
from birdstream.ingest.errors import StreamError, classify
from birdstream.ingest.hwaccel import HwDecodeFailed, describe
from birdstream.ingest.regions import RegionProposer
from birdstream.ingest.media import file_time, open_still, still_time, video_stream
from birdstream.ingest.sampling import MediaClock, MotionGate, Sampler
from birdstream.ingest.spec import SourceSpec
from birdstream.messages import Frame

log = logging.getLogger(__name__)

STILL_REGIONS_WIDTH = 1920  # stills are decoded at least this wide for regions (JPEG draft scale)
COUNTERS = ("frames_in", "sampled", "emitted", "gated", "dropped", "regions", "recalibrations")


class FrameMaker:
    """Turns decoded pictures and stills of one stream into Frames (no threads, no I/O waits)."""

    def __init__(self, spec: SourceSpec, input_size: Size, *, want_full: bool, gate: bool) -> None:
        self.spec = spec
        regions = spec.regions if spec.regions is not None and spec.regions.enabled else None
        self.proposer = RegionProposer(regions, input_size) if regions is not None else None
        # Regions are cut from the full-resolution picture, so it is converted for every sample.
        self.converter = Converter(input_size, spec.roi, spec.label, want_full or regions is not None)
        self._full_asked = want_full  # snapshots at source resolution were asked for
        self.gate = MotionGate(enabled=gate, threshold=spec.motion_threshold,
                               pixel_delta=spec.motion_pixel_delta, keepalive_s=spec.keepalive_s)
        self.clock = MediaClock()
        self.sampler = Sampler(spec.sample_fps)
        self.seq = 0
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.last_decode: float | None = None  # monotonic time of the last decoded picture
        self._still_folder: Path | None = None  # the folder of the last still, while stills follow stills

    def new_file(self) -> None:
        """Media time and sampling start again (the next clip of a folder)."""
        self.clock = MediaClock()
        self.sampler = Sampler(self.spec.sample_fps)
        self.gate.reset()

    def from_container(
        self,
        container: av.container.InputContainer,
        stop: threading.Event,
        *,
        label: str,
        path: Path | None,
        live: bool,
        pace: Callable[[float], bool] | None = None,
        on_first: Callable[[], None] | None = None,
    ) -> Iterator[Frame]:
        """Frames of one opened container until its end; raises StreamError on a stall or failure.

        `on_first` is called at the first decoded picture (the source works, gated or not).
        Raises HwDecodeFailed when decoding on a hardware device fails before its first picture.
        """
        stream = self._video_stream(container, label)
        ctx = stream.codec_context
        base = None if live else (file_time(container, path) if path is not None else time.time())
        stall_s = self.spec.stall_s if live else 0.0
        self._start_clip()
        self.last_decode = time.monotonic()
        dropped_before = self.counters["dropped"]
        on_device = ctx.is_hwaccel  # until the first picture, a decode error blames the device
        try:
            for packet in container.demux(stream):
                if stop.is_set():
                    return
                now = time.monotonic()
                if stall_s and now - self.last_decode > stall_s:
                    raise StreamError(label, "stalled", f"no frame for {stall_s:g} s")
                if packet.is_corrupt:
                    self.counters["dropped"] += 1
                for picture in self._decode(packet, label, on_device):
                    on_device = False
                    if on_first is not None:
                        on_first()
                        on_first = None
                    self.counters["frames_in"] += 1
                    self.last_decode = time.monotonic()
                    t = self.clock(picture.time)
                    if not self.sampler.take(t):
                        continue
                    self.counters["sampled"] += 1
                    if pace is not None and not pace(t):
                        return
                    frame = self._video_frame(picture, t, base, path)
                    if frame is not None:
                        yield frame
        except (StreamError, GeneratorExit):
            raise
        except (av.error.FFmpegError, OSError) as exc:
            if stop.is_set():
                return
            raise classify(exc, label) from None
        finally:
            skipped = self.counters["dropped"] - dropped_before
            if skipped:
                log.warning("%s: damaged data, %d corrupt packet(s) skipped or concealed", label, skipped)

    def _start_clip(self) -> None:
        """A clip's media clock and regions start from its own first picture (stills of a folder keep
        comparing with the photo before them, so new_file() does not reset the regions)."""
        self.clock.restart()
        if self.proposer is not None:
            self.proposer.reset()
        self._still_folder = None

    def _video_stream(self, container: av.container.InputContainer, label: str) -> av.video.stream.VideoStream:
        """The container's video stream, its decoder set up as the spec says."""
        stream = video_stream(container, label)
        ctx = stream.codec_context
        ctx.thread_type = "AUTO"
        ctx.thread_count = self.spec.decode_threads
        # One pixel limit for stills and video; FFmpeg enforces it per picture, so a stream whose
        # header lies about its size cannot make the decoder allocate gigabytes either.
        ctx.options = {**ctx.options, "max_pixels": str(self.spec.max_image_pixels)}
        if self.spec.keyframes_only:
            ctx.skip_frame = "NONKEY"
        return stream

    def _decode(self, packet: av.Packet, label: str, on_device: bool) -> list[av.VideoFrame]:
        """The pictures of one packet; a damaged packet is counted and skipped (no pictures)."""
        try:
            return packet.decode()
        except (av.error.FFmpegError, ValueError) as exc:
            if on_device and not isinstance(exc, av.error.InvalidDataError):
                raise HwDecodeFailed(describe(exc)) from None  # damaged data is not the device's
            if not isinstance(exc, (av.error.InvalidDataError, av.error.UndefinedError, ValueError)):
                raise
            self.counters["dropped"] += 1
            log.debug("%s: skipping a corrupt packet: %s", label, exc)
            return []

    def _video_frame(self, picture: av.VideoFrame, t: float, base: float | None, path: Path | None) -> Frame | None:
        """The Frame of a sampled picture: wall-clock time when live (no base), else base + media time."""
        converted = self.converter.video(picture)
        if base is None:
            return self._make(converted, time.time(), None, None, time.monotonic())
        return self._make(converted, base + t, t, str(path) if path else None, t)

    def from_still(self, path: Path) -> Frame | None:
        """The Frame of one still image (EXIF DateTimeOriginal, else mtime), or None when gated.

        A still's regions are what differs from the photo before it in the same folder (a camera
        trap's burst); the first still of a folder, or after a clip, has none to differ from.
        """
        if self.proposer is not None and self._still_folder != path.parent:
            self.proposer.reset()
        self._still_folder = path.parent
        try:
            converted, taken = self._read_still(path)
        except StreamError:
            if self.proposer is not None:
                self.proposer.reset()  # the next photo has none before it to differ from
            self._still_folder = None
            raise
        self.counters["frames_in"] += 1
        self.counters["sampled"] += 1
        return self._make(converted, taken, None, str(path), taken, still=True)

    def _read_still(self, path: Path) -> tuple[Converted, float]:
        """A still decoded and converted (at a reduced JPEG scale where that is enough), and its time."""
        image = open_still(path, self.spec.max_image_pixels)
        try:
            taken = still_time(image, path)
            if self.spec.roi is None and not self.converter.want_full:
                h, w = self.converter.input_size
                image.draft("RGB", (w, h))  # JPEG: decode at a reduced scale, still >= input size
            elif self.spec.roi is None and not self._full_asked and image.size[0] > STILL_REGIONS_WIDTH:
                # Regions of a 20-megapixel camera-trap photo need no more than ~1920 pixels across
                # (a JPEG decoded at 1/2 or 1/4 scale costs a fraction of the full decode).
                w, h = image.size
                image.draft("RGB", (STILL_REGIONS_WIDTH, max(1, round(h * STILL_REGIONS_WIDTH / w))))
            try:
                image.load()
                converted = self.converter.still(image)
            except (OSError, ValueError, SyntaxError) as exc:
                raise StreamError(str(path), "not_video", str(exc)) from None
        finally:
            image.close()
        return converted, taken

    def prime_still(self, path: Path) -> None:
        """Read ``path`` as the photo before the next one (a decoding process that did not read it
        itself), so the next still's regions are what they are when one reader reads them all."""
        seq, counters = self.seq, dict(self.counters)
        try:
            self.from_still(path)
        except StreamError:
            pass  # from_still left the state of a reader that met an unreadable photo
        self.seq, self.counters = seq, counters

    def _make(self, converted: Converted, captured_at: float, media_time: float | None,
              source: str | None, now: float, still: bool = False) -> Frame | None:
        verdict = self.gate.check(converted.image, now)
        seq = self.seq
        self.seq += 1
        # The background model sees every sample, gated or not, so it stays current.
        boxes = []
        if self.proposer is not None and converted.full is not None:
            boxes = self.proposer.propose(converted.full, now, still=still)
            self.counters["recalibrations"] = self.proposer.recalibrations
        if not verdict.passed and not any(motion > 0 for _, motion in boxes):
            self.counters["gated"] += 1
            return None
        regions = ()
        if boxes and self.proposer is not None and converted.full is not None:
            regions = self.proposer.crops(converted.full, boxes, origin=converted.origin, source=converted.source)
            self.counters["regions"] += len(regions)
        self.counters["emitted"] += 1
        return Frame(
            stream_id=self.spec.id, seq=seq, image=converted.image, captured_at=captured_at,
            media_time=media_time, source=source, motion=verdict.motion,
            keepalive=verdict.keepalive, full=converted.full, regions=regions,
        )
