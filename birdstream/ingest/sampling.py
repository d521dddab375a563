"""Which decoded frames are sampled (by presentation time), and the motion gate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BACK_JUMP_S = 0.5  # a presentation time this far behind the last one is a reset
FORWARD_JUMP_S = 60.0  # ... this far ahead is a broken timestamp, not a pause
_EPS = 1e-3  # timestamps are often rounded to the millisecond


class MediaClock:
    """Continuous media time from raw frame times that may reset, jump or be missing."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._last_raw: float | None = None
        self._last: float | None = None
        self._step = 0.04
        self._restart = False
        self.discontinuities = 0

    def __call__(self, raw: float | None) -> float:
        if self._last is None:
            first = 0.0 if raw is None else raw
            self._offset = -first
            self._last_raw, self._last = first, 0.0
            return 0.0
        if raw is None:
            raw = self._last_raw + self._step  # type: ignore[operator]
        delta = raw - self._last_raw  # type: ignore[operator]
        if self._restart or delta < -BACK_JUMP_S or delta > FORWARD_JUMP_S:
            # Re-anchor so media time keeps going one typical frame step after the last one.
            self._offset = self._last + self._step - raw
            self.discontinuities += not self._restart
            self._restart = False
        elif delta > 0:
            self._step = 0.8 * self._step + 0.2 * min(delta, 1.0)
        self._last_raw = raw
        self._last = max(self._last, raw + self._offset)
        return raw + self._offset

    def restart(self) -> None:
        """The next frame continues one frame step after the last (a looping file starting again)."""
        self._restart = self._last is not None

    @property
    def last(self) -> float | None:
        return self._last


class Sampler:
    """Takes the first frame at or after each 1/fps step of presentation time (CFR or VFR)."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps if fps and fps > 0 else 0.0
        self._next: float | None = None
        self._last: float | None = None

    def take(self, t: float) -> bool:
        if self._last is not None and t < self._last - BACK_JUMP_S:
            self._next = None
        self._last = t
        if self.period == 0.0:
            return True
        if self._next is None or t >= self._next - _EPS:
            nxt = (t if self._next is None else self._next) + self.period
            # Falling behind (a gap in the stream): re-anchor on this frame.
            self._next = nxt if nxt > t + _EPS else t + self.period
            return True
        return False


@dataclass(frozen=True, slots=True)
class GateResult:
    motion: float
    passed: bool
    keepalive: bool


class MotionGate:
    """Changed fraction of a small grey thumbnail against a slowly adapting background."""

    THUMB = 64  # longest side of the thumbnail

    def __init__(self, *, enabled: bool, threshold: float, pixel_delta: int, keepalive_s: float,
                 adapt: float = 0.05) -> None:
        self.enabled = enabled
        self.threshold = threshold
        self.pixel_delta = float(pixel_delta)
        self.keepalive_s = keepalive_s
        self.adapt = adapt
        self._bg: np.ndarray | None = None
        self._last_pass: float | None = None

    def check(self, image: np.ndarray, now: float) -> GateResult:
        """`image` is the model-size RGB frame; `now` the stream's clock (media or wall seconds)."""
        thumb = thumbnail(image, self.THUMB)
        if self._bg is None or self._bg.shape != thumb.shape:
            self._bg = thumb
            motion = 0.0
        else:
            motion = float(np.mean(np.abs(thumb - self._bg) > self.pixel_delta))
            self._bg += self.adapt * (thumb - self._bg)
        if not self.enabled:
            return GateResult(motion, True, False)
        if motion >= self.threshold:
            self._last_pass = now
            return GateResult(motion, True, False)
        if self._last_pass is None or now - self._last_pass >= self.keepalive_s or now < self._last_pass:
            self._last_pass = now
            return GateResult(motion, True, True)
        return GateResult(motion, False, False)

    def reset(self) -> None:
        self._bg = None


def thumbnail(image: np.ndarray, longest: int) -> np.ndarray:
    """Grey float32 thumbnail by block averaging (cheap; the image is already model-size)."""
    h, w = image.shape[:2]
    k = max(1, -(-max(h, w) // longest))
    hh, ww = (h // k) * k, (w // k) * k
    grey = image[:hh, :ww].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return grey.reshape(hh // k, k, ww // k, k).mean(axis=(1, 3))
