"""A gathered batch: the frames taken, the images they bring (picture, then region crops), and
the predictions regrouped per frame."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from birdstream.engine.calls import Handle
from birdstream.engine.mailbox import Mailbox
from birdstream.messages import Frame, Prediction

Taken = list[tuple[Mailbox, Frame]]


@dataclass
class Launched:
    """One gathered batch: its frames, the valid ones, and the classifier's handle (None after an OOM)."""

    taken: Taken
    good: Taken
    handle: Handle | None = None
    started: float = 0.0  # clock() at launch
    t0: float = field(default_factory=time.perf_counter)

    @property
    def ready(self) -> bool:
        return self.handle is None or bool(self.handle.ready)


def frame_images(frame: Frame) -> list[np.ndarray]:
    """What the classifier judges of one frame: the whole picture, then each region's crop."""
    return [frame.image, *(region.image for region in frame.regions)]


def regroup(good: list[tuple[Mailbox, Frame]], probs: list[np.ndarray]) -> list[Prediction]:
    """One Prediction per frame from the probabilities of its images (whole picture, then crops)."""
    predictions: list[Prediction] = []
    i = 0
    for _, frame in good:
        n = 1 + len(frame.regions)
        predictions.append(Prediction(frame=frame, probs=probs[i], region_probs=tuple(probs[i + 1 : i + n])))
        i += n
    return predictions


def images_in(batch: list[tuple[Mailbox, Frame]]) -> int:
    """Batches count images, not frames: a frame with crops fills more of one."""
    return sum(1 + len(frame.regions) for _, frame in batch)
