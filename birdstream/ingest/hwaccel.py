"""Hardware decoding with a software fallback: which accelerator to use, and what failed before.

One `HwDecoder` per stream (a reader, or one offline run) remembers its failures, so a reconnect
does not try a failing device again each time:

- device types this FFmpeg build lacks, or that no common decoder can use: never tried again;
- a device that cannot be created, or a failed open or decode: tried again after `retry_s`
  (an hour by default) at the next open (reconnect, or next file of a folder);
- a codec without a hardware decoder on this device (e.g. MJPEG on some): software for that codec.

Every fallback logs one line (WARNING; INFO for `auto`, which quietly prefers software when no
device works) and counts `birdstream_ingest_hwaccel_fallbacks_total{stream,reason}`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

import av
from av.codec.hwaccel import HWAccel, hwdevices_available

from birdstream.errors import first_line
from birdstream.ingest import metrics
from birdstream.ingest.spec import SourceSpec
from birdstream.redact import redact_text

log = logging.getLogger(__name__)

AUTO_ORDER = ("cuda", "vaapi", "qsv")
RETRY_S = 3600.0
# Decoders probed to learn whether a device type is usable at all by FFmpeg's built-in decoders.
PROBE_CODECS = ("h264", "hevc", "mjpeg", "vp9", "av1", "mpeg4")

DEVICE_HINTS = {
    "cuda": " (no usable NVIDIA GPU and driver: check nvidia-smi, and --gpus in Docker)",
    "vaapi": " (check the render node, e.g. /dev/dri/renderD128, and that the user is in the render group)",
}

Reason = Literal["unavailable", "unsupported", "device", "codec", "open", "decode"]
PERMANENT: frozenset[str] = frozenset({"unavailable", "unsupported"})


def for_spec(spec: SourceSpec) -> HwDecoder | None:
    """The HwDecoder of a stream, or None when it decodes in software."""
    if spec.hwaccel is None:
        return None
    return HwDecoder(spec.hwaccel.lower(), spec.hwaccel_device, stream=spec.id, label=spec.label)


class HwDecodeFailed(Exception):
    """Decoding with the hardware failed before the first picture (the caller reopens in software)."""


class HwDecoder:
    """The hardware accelerator of one stream, with its remembered failures.

    `requested`: None (software), "auto", or an FFmpeg device type ("cuda", "vaapi", ...).
    `device`: the device to open ("0", "/dev/dri/renderD128"); None = the default one.
    """

    def __init__(self, requested: str | None, device: str | None, *, stream: str, label: str,
                 retry_s: float = RETRY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.requested = requested
        self.device = device
        self.stream = stream
        self.label = label
        self.retry_s = retry_s
        self._clock = clock
        self._failed: dict[str, tuple[str, float | None]] = {}  # type -> (reason, retry at | None)
        self._codecs_warned: set[str] = set()
        self._auto_logged = False
        self._working: set[str] = set()  # device types created once already (not probed again)
        self.active: str | None = None  # the device type the last open decodes with, None = software
        self.reasons: dict[str, str] = {}  # device type -> why it was last given up

    # -- choosing -----------------------------------------------------------------------------
    def accel(self) -> tuple[str, HWAccel] | None:
        """(device type, HWAccel) for the next open, or None to decode in software."""
        if self.requested is None:
            return None
        if self.requested == "auto":
            return self._auto()
        kind = self.requested
        if kind in self._failed and self._check(kind) is not None:
            return None  # failed before: logged then, not due for another try
        problem = self._check(kind) or self._probe(kind)
        if problem is not None:
            self.failed(problem[0], problem[1], kind)
            return None
        return kind, self._make(kind)

    def _auto(self) -> tuple[str, HWAccel] | None:
        tried: list[str] = []
        for kind in AUTO_ORDER:
            problem = self._check(kind)
            if problem is None:
                problem = self._probe(kind)
                if problem is not None:
                    self._remember(kind, problem[0])
            if problem is None:
                if not self._auto_logged:
                    log.info("%s: hwaccel auto: decoding with %s", self.label, kind)
                    self._auto_logged = True
                return kind, self._make(kind)
            tried.append(f"{kind}: {problem[1]}")
        if not self._auto_logged:
            log.info("%s: hwaccel auto: no hardware decoder works here (%s); decoding in software",
                     self.label, "; ".join(tried))
            self._auto_logged = True
        return None

    def _check(self, kind: str) -> tuple[Reason, str] | None:
        """Why `kind` is not to be tried now (failed before and not due again, or not built in)."""
        known = self._failed.get(kind)
        if known is not None:
            reason, retry_at = known
            if retry_at is None or self._clock() < retry_at:
                return reason, "failed before"  # type: ignore[return-value]
            del self._failed[kind]
        if kind not in hwdevices_available():
            self._remember(kind, "unavailable")
            built = ", ".join(hwdevices_available()) or "none"
            return "unavailable", f"this FFmpeg build has no {kind} support (it has: {built})"
        return None

    def _probe(self, kind: str) -> tuple[Reason, str] | None:
        """Create the device once, away from any source: (reason, detail) when it cannot be used."""
        if kind in self._working:
            return None
        codec = None
        for name in PROBE_CODECS:
            try:
                candidate = av.codec.Codec(name, "r")
            except Exception:  # noqa: BLE001 - a decoder missing from this build
                continue
            if any(c.device_type.name == kind and c.is_supported for c in candidate.hardware_configs):
                codec = candidate
                break
        if codec is None:
            return "unsupported", f"no built-in FFmpeg decoder can use a {kind} device"
        try:
            self._make(kind).create(codec)
        except Exception as exc:  # noqa: BLE001 - any device problem means software decoding
            hint = DEVICE_HINTS.get(kind, "")
            return "device", f"cannot open the {kind} device{self._device_text()}: {describe(exc)}{hint}"
        self._working.add(kind)
        return None

    def _make(self, kind: str) -> HWAccel:
        # CUDA: share the device's primary context (the one torch uses) instead of creating a
        # context, and its memory, for every stream and every reconnect.
        options = {"primary_ctx": "1"} if kind == "cuda" else None
        # Decoded pictures stay on the device (PyAV >= 18.1): only a sampled one is downloaded, by
        # the converter's reformat. Otherwise FFmpeg copies every picture to host memory, about
        # 78 MB/s for a 1080p 25 fps camera of which one frame in 12 is kept.
        return HWAccel(kind, device=self.device, allow_software_fallback=True, options=options, is_hw_owned=True)

    def _device_text(self) -> str:
        return f" {self.device!r}" if self.device else ""

    # -- outcomes -----------------------------------------------------------------------------
    def opened(self, container: av.container.InputContainer, kind: str) -> None:
        """After an open with `kind`: note whether the video stream really decodes on the device."""
        ctx = container.streams.video[0].codec_context if container.streams.video else None
        if ctx is not None and ctx.is_hwaccel:
            self.active = kind
            metrics.HWACCEL_ACTIVE.labels(self.stream).set(1)
            return
        self.active = None
        metrics.HWACCEL_ACTIVE.labels(self.stream).set(0)
        codec = ctx.codec.name if ctx is not None else "?"
        if codec not in self._codecs_warned:
            self._codecs_warned.add(codec)
            self._report("codec", f"no {kind} decoder for {codec}", kind, retry=False)

    def software(self) -> None:
        """The last open decodes in software."""
        self.active = None
        if self.requested is not None:
            metrics.HWACCEL_ACTIVE.labels(self.stream).set(0)

    def failed(self, reason: Reason, detail: str, kind: str | None = None) -> None:
        """Fall back to software: one log line, one count, remembered."""
        kind = kind or self.active or self.requested or "?"
        self.active = None
        self._remember(kind, reason)
        self.reasons[kind] = detail
        self._report(reason, detail, kind, retry=reason not in PERMANENT)

    def _remember(self, kind: str, reason: str) -> None:
        self._working.discard(kind)
        retry_at = None if reason in PERMANENT else self._clock() + self.retry_s
        self._failed[kind] = (reason, retry_at)

    def _report(self, reason: Reason, detail: str, kind: str, *, retry: bool) -> None:
        metrics.HWACCEL_FALLBACKS.labels(self.stream, reason).inc()
        metrics.HWACCEL_ACTIVE.labels(self.stream).set(0)
        level = logging.INFO if self.requested == "auto" and reason == "codec" else logging.WARNING
        when = f"; trying {kind} again in {self.retry_s / 3600:g} h" if retry and self.retry_s else ""
        log.log(level, "%s: hardware decoding (%s) not used: %s; decoding in software%s",
                self.label, kind, redact_text(detail), when)


def describe(exc: BaseException) -> str:
    """One redacted line about an exception."""
    return redact_text(str(getattr(exc, "strerror", None) or first_line(exc)))
