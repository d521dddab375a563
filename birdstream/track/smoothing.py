"""Time-based smoothing of probability vectors, independent of the sampling rate."""

from __future__ import annotations

import math

import numpy as np


class Smoother:
    """Exponential smoothing with a time constant in seconds over irregularly spaced frames.

    Each frame stands for the time since the previous one, at most `max_frame_s`; the rest of a
    longer gap is filled with the previous frame (a motion-gated stream sends no frame while
    nothing changes). So one frame after a long gap moves the score by at most
    1 - exp(-max_frame_s / tau), and frames at 2 fps or at irregular spacing give the same curve.
    """

    def __init__(self, size: int, tau_s: float, max_frame_s: float, *, start_from_first: bool = False):
        self.value = np.zeros(size, dtype=np.float64)
        self._tau = tau_s
        self._max_frame = max_frame_s
        self._start_from_first = start_from_first
        self._last: np.ndarray | None = None
        self._t: float | None = None
        self._diff = np.empty(size, dtype=np.float64)  # scratch: no allocation per frame
        self._full_step = 1.0 - math.exp(-max_frame_s / tau_s) if tau_s > 0 else 1.0

    def add(self, probs: np.ndarray, t: float) -> np.ndarray:
        if self._tau <= 0 or (self._t is None and self._start_from_first):
            self.value = probs.astype(np.float64, copy=True)
        else:
            dt = self._max_frame if self._t is None or t <= self._t else t - self._t
            hold = dt - self._max_frame
            if hold > 0 and self._last is not None:
                self._step(self._last, 1.0 - math.exp(-hold / self._tau))
            step = min(dt, self._max_frame)
            self._step(probs, self._full_step if step == self._max_frame else 1.0 - math.exp(-step / self._tau))
        self._last = probs
        self._t = t if self._t is None else max(self._t, t)
        return self.value

    def _step(self, target: np.ndarray, weight: float) -> None:
        """value += weight * (target - value), in place; the same arithmetic in the same order."""
        np.subtract(target, self.value, out=self._diff)  # float32 targets widen exactly
        self._diff *= weight
        self.value += self._diff

    def shift(self, dt: float) -> None:
        """Move the timeline by dt seconds (the wall clock was set)."""
        if self._t is not None:
            self._t += dt


class DecayingMean:
    """Mean of vectors weighted by exp(-age / tau); the first vector counts in full."""

    def __init__(self, size: int, tau_s: float):
        self._sum = np.zeros(size, dtype=np.float64)
        self._weight = 0.0
        self._tau = tau_s
        self._t: float | None = None

    @property
    def known(self) -> bool:
        return self._weight > 0.0

    @property
    def value(self) -> np.ndarray:
        return self._sum / self._weight if self._weight > 0 else self._sum

    def add(self, vec: np.ndarray, t: float) -> None:
        if self._t is not None and t > self._t:
            decay = math.exp(-(t - self._t) / self._tau)
            self._sum *= decay
            self._weight *= decay
        self._sum += vec
        self._weight += 1.0
        self._t = t if self._t is None else max(self._t, t)

    def shift(self, dt: float) -> None:
        """Move the timeline by dt seconds (the wall clock was set)."""
        if self._t is not None:
            self._t += dt
