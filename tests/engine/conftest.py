"""Fixtures of the engine tests: a numpy colour classifier, frames and a started engine."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from prometheus_client import REGISTRY

from birdstream.engine import Engine
from birdstream.messages import Frame, Prediction

COLOURS = {"red": (230, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


class ColourClassifier:
    """A real (if simple) classifier: class probabilities follow the fraction of each colour."""

    def __init__(self, size: tuple[int, int] = (16, 16), memory_limit: int | None = None) -> None:
        self.class_names = list(COLOURS)
        self.input_size = size
        self._palette = np.array(list(COLOURS.values()), np.int16)  # [C, 3]
        self.memory_limit = memory_limit  # bytes of float32 work space; None: unlimited
        self.batch_sizes: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        n = images.shape[0]
        if self.memory_limit is not None and n * images[0].size * 4 > self.memory_limit:
            raise MemoryError(f"out of memory: batch of {n} needs more than {self.memory_limit} bytes")
        dist = np.abs(images[:, :, :, None, :].astype(np.int16) - self._palette).sum(-1)  # [N,H,W,C]
        frac = (dist < 60).mean(axis=(1, 2))  # [N, C]
        logits = 12.0 * frac
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        with self.lock:
            self.batch_sizes.append(n)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


class GatedClassifier(ColourClassifier):
    """A colour classifier whose calls wait while its gate is shut: a wedged GPU or driver, for real.

    ``entered`` is set once a call is waiting at the gate (the engine thread is inside it).
    """

    def __init__(self, size: tuple[int, int] = (16, 16)) -> None:
        super().__init__(size)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def shut(self) -> None:
        self.entered.clear()
        self.gate.clear()

    def open(self) -> None:
        self.gate.set()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        if not self.gate.is_set():
            self.entered.set()
            self.gate.wait()
        return super().__call__(images)


class AsyncColourClassifier(ColourClassifier):
    """Launches a batch and returns at once, as a GPU does: the images are read only when the result is
    collected (the worst case of an asynchronous copy), so a host buffer reused too early shows up as
    wrong classes. ``events`` records ("submit", k) and ("collect", k) in the order they happened;
    collecting waits while ``gate`` is shut (a long batch on the device)."""

    def __init__(self, size: tuple[int, int] = (16, 16)) -> None:
        super().__init__(size)
        self.events: list[tuple[str, int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.collecting = threading.Event()

    def submit(self, images: np.ndarray) -> _Launched:
        k = sum(1 for e in self.events if e[0] == "submit")
        self.events.append(("submit", k))
        return _Launched(self, images, k)


class _Launched:
    ready = False

    def __init__(self, clf: AsyncColourClassifier, images: np.ndarray, k: int) -> None:
        self._clf, self._images, self._k = clf, images, k

    def result(self) -> np.ndarray:
        self._clf.collecting.set()
        self._clf.gate.wait()
        self._clf.events.append(("collect", self._k))
        return ColourClassifier.__call__(self._clf, self._images)


def colour_image(colour: str, size: tuple[int, int] = (16, 16)) -> np.ndarray:
    img = np.zeros((*size, 3), np.uint8)
    img[:] = COLOURS[colour]
    return img


def make_frame(stream_id: str, seq: int, colour: str = "red", size: tuple[int, int] = (16, 16)) -> Frame:
    return Frame(stream_id=stream_id, seq=seq, image=colour_image(colour, size), captured_at=time.time())


class Collector:
    """on_predictions target that records every prediction and lets a test wait for a count."""

    def __init__(self) -> None:
        self.predictions: list[Prediction] = []
        self.batches: list[list[Prediction]] = []
        self._cond = threading.Condition()

    def __call__(self, preds: list[Prediction]) -> None:
        with self._cond:
            self.batches.append(preds)
            self.predictions.extend(preds)
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.predictions) >= n, timeout)

    def keys(self) -> list[tuple[str, int]]:
        with self._cond:
            return [(p.frame.stream_id, p.frame.seq) for p in self.predictions]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def colour_classifier() -> ColourClassifier:
    return ColourClassifier()


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
def make_engine() -> Iterator[Callable[..., Engine]]:
    engines: list[Engine] = []

    def factory(classifier, on_predictions, **kwargs) -> Engine:
        kwargs.setdefault("max_batch", 8)
        kwargs.setdefault("max_wait_ms", 20)
        kwargs.setdefault("max_age_s", 60)
        kwargs.setdefault("idle_tick_s", 0.02)
        engine = Engine(classifier, on_predictions=on_predictions, **kwargs)
        engines.append(engine)
        return engine

    yield factory
    for engine in engines:
        gate = getattr(engine.classifier, "gate", None)
        if gate is not None:
            gate.set()  # a test that failed with its classifier wedged must not leave the thread stuck
        engine.stop()
        assert engine.join(10), "engine thread did not stop"


@pytest.fixture(scope="session")
def planted_path(tmp_path_factory: pytest.TempPathFactory):
    from tests.support.planted import make_planted_checkpoint

    return make_planted_checkpoint(tmp_path_factory.mktemp("planted") / "planted.pt")


@pytest.fixture(scope="session")
def planted_classifier(planted_path):
    from birdstream.engine.classifier import Classifier

    return Classifier.load(planted_path, device="cpu", precision="fp32")


def planted_image(colour: tuple[int, int, int] | None, size: tuple[int, int], seed: int = 0,
                  coverage: float = 0.12) -> np.ndarray:
    """Per-pixel noise with a square object of `colour` covering `coverage` of the frame."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
    if colour is not None:
        h, w = size
        side = int(round((coverage * h * w) ** 0.5))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        img[top : top + side, left : left + side] = colour
    return img


@pytest.fixture
def load_classifier(planted_classifier):
    """The load test runs the real planted network through the real loader."""
    return planted_classifier
