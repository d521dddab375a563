"""How the engine calls a classifier: synchronously, or launched now and collected one batch later.

A classifier with ``submit(images) -> handle`` (``handle.ready``, ``handle.result()``) runs
asynchronously: the engine launches batch k+1 before it collects batch k, so a GPU never waits
for the CPU work between batches. A plain callable is called at once and its handle is ready.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Protocol

import numpy as np


class BatchClassifier(Protocol):
    """What the engine needs of a classifier (``Classifier`` is the real one)."""

    class_names: list[str]
    input_size: tuple[int, int]

    def __call__(self, images: np.ndarray) -> np.ndarray: ...


class Handle(Protocol):
    """A launched batch: ``ready`` once its result can be had without waiting."""

    ready: bool

    def result(self) -> np.ndarray: ...


class Ready:
    """The handle of a batch classified synchronously."""

    __slots__ = ("probs",)
    ready = True

    def __init__(self, probs: np.ndarray) -> None:
        self.probs = probs

    def result(self) -> np.ndarray:
        return self.probs


def submitter(classifier: BatchClassifier) -> Callable[[np.ndarray], Handle]:
    """The classifier's own ``submit`` if it has one, else a synchronous call wrapped as a ready handle."""
    submit = getattr(classifier, "submit", None)
    if callable(submit):
        return submit
    return lambda images: Ready(classifier(images))


def is_out_of_memory(exc: BaseException) -> bool:
    """True for host or device out-of-memory errors (CUDA OOM without importing torch here)."""
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")
    oom_type = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None) if torch else None
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        marker in text for marker in ("out of memory", "not enough memory", "can't allocate memory")
    )
