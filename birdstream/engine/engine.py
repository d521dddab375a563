"""The one inference thread: fair batching across stream mailboxes through one classifier."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from birdstream.engine import metrics
from birdstream.engine.mailbox import INVALID, OOM, REMOVED, SHUTDOWN, STALE, Mailbox
from birdstream.messages import Frame, Prediction

log = logging.getLogger(__name__)


class BatchClassifier(Protocol):
    """What the engine needs of a classifier (``Classifier`` is the real one)."""

    class_names: list[str]
    input_size: tuple[int, int]

    def __call__(self, images: np.ndarray) -> np.ndarray: ...


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


def frame_images(frame: Frame) -> list[np.ndarray]:
    """What the classifier judges of one frame: the whole picture, then each region's crop."""
    return [frame.image, *(region.image for region in frame.regions)]


def images_in(batch: list[tuple[Mailbox, Frame]]) -> int:
    """Batches count images, not frames: a frame with crops fills more of one."""
    return sum(1 + len(frame.regions) for _, frame in batch)


class Engine:
    """Gathers frames round-robin from per-stream mailboxes into batches and classifies them.

    ``on_predictions`` is called inline on the inference thread with each batch's predictions.
    """

    def __init__(
        self,
        classifier: BatchClassifier,
        *,
        max_batch: int = 32,
        max_wait_ms: float = 50.0,
        max_age_s: float = 5.0,
        on_predictions: Callable[[list[Prediction]], None],
        clock: Callable[[], float] = time.monotonic,
        mailbox_capacity: int = 2,
        idle_tick_s: float = 0.5,
        name: str = "engine",
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.classifier = classifier
        self.max_batch = max_batch
        self.max_wait_s = max(0.0, max_wait_ms / 1000.0)
        self.max_age_s = max_age_s
        self.on_predictions = on_predictions
        self.clock = clock
        self.mailbox_capacity = mailbox_capacity
        self.idle_tick_s = idle_tick_s
        self.batch_cap = max_batch  # halved on out-of-memory
        self.heartbeat = clock()
        self.busy_since: float | None = None  # clock() when the running classifier call began
        self.error: BaseException | None = None
        self.batches = 0
        self.done = threading.Event()  # set when the inference thread has exited
        self._debug_wedge = threading.Event()  # test hook: freeze the loop (no heartbeat)
        self._debug_wedged = threading.Event()  # set by the loop once it is frozen
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)  # a frame arrived or stop
        self._idle = threading.Condition(self._lock)  # a batch was delivered
        self._mailboxes: dict[str, Mailbox] = {}
        self._order: list[str] = []
        self._rr = 0
        self._inflight: set[Mailbox] = set()  # mailboxes with frames in the running batch
        self._stopping = False
        self._drain_on_stop = False
        self._oom_logged = False
        self._invalid_logged: set[str] = set()
        self._buffer: np.ndarray | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # ---- streams -------------------------------------------------------------------------

    def mailbox(self, stream_id: str, *, blocking: bool = False, capacity: int | None = None) -> Mailbox:
        """The mailbox of a stream, created on first use (blocking: offline mode, no drops).

        A blocking mailbox holds up to max_batch frames by default, so that one offline input
        alone can fill a batch; a live one holds ``mailbox_capacity`` (latest wins).
        """
        if capacity is None:
            capacity = max(self.mailbox_capacity, self.max_batch) if blocking else self.mailbox_capacity
        with self._lock:
            box = self._mailboxes.get(stream_id)
            if box is None:
                box = Mailbox(
                    stream_id,
                    capacity,
                    blocking=blocking,
                    lock=self._lock,
                    on_put=self._ready.notify,
                    clock=self.clock,
                )
                if self._stopping:
                    box._closed = True
                self._mailboxes[stream_id] = box
                self._order.append(stream_id)
            return box

    def remove_stream(self, stream_id: str) -> None:
        """Forget a stream; frames still waiting are dropped (counted as `removed`)."""
        with self._lock:
            box = self._mailboxes.pop(stream_id, None)
            if box is None:
                return
            self._order.remove(stream_id)
            box._closed = True
            box._discard_all_locked(REMOVED)
        metrics.QUEUE_DEPTH.remove(stream_id)

    def streams(self) -> list[str]:
        with self._lock:
            return list(self._order)

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, *, drain: bool = False) -> None:
        """Ask the thread to finish its batch and exit; with drain, classify what is queued first."""
        with self._lock:
            self._stopping = True
            self._drain_on_stop = drain
            for box in self._mailboxes.values():
                box._closed = True
                box._room.notify_all()
            self._ready.notify_all()
            self._idle.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to exit; True if it has."""
        if self._thread.ident is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def drain(self, timeout: float | None = None, stream_id: str | None = None) -> bool:
        """Wait until every queued frame (of one stream, or all) was classified or dropped; True if so."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def pending() -> bool:
            if stream_id is None:
                return bool(self._inflight) or self._any_items_locked()
            box = self._mailboxes.get(stream_id)
            return box is not None and (box in self._inflight or box._has_items_locked())

        with self._lock:
            while pending():
                if self.done.is_set():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(self.idle_tick_s if remaining is None else min(remaining, self.idle_tick_s))
            return True

    # ---- the loop ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                self.heartbeat = self.clock()
                if self._debug_wedge.is_set() and not self._stopping:
                    self._wedge()
                    continue
                batch = self._gather()
                if batch is None:
                    break
                if batch:
                    self._process(batch)
        except BaseException as exc:  # noqa: BLE001 - surfaced to the supervisor via .error
            self.error = exc
            metrics.ERRORS_TOTAL.inc()
            log.exception("engine: inference thread failed; it has stopped")
        finally:
            with self._lock:
                self._stopping = True
                for box in list(self._mailboxes.values()):
                    box._closed = True
                    box._discard_all_locked(SHUTDOWN)
                self._inflight.clear()
                self._idle.notify_all()
            self.done.set()

    def _wedge(self) -> None:
        self._debug_wedged.set()
        with self._lock:
            while self._debug_wedge.is_set() and not self._stopping:
                self._ready.wait(0.05)
        self._debug_wedged.clear()

    def _gather(self) -> list[tuple[Mailbox, Frame]] | None:
        """Collect one batch; [] after an idle tick, None when the engine should exit."""
        with self._lock:
            if not self._any_items_locked():
                if self._stopping:
                    return None
                self._ready.wait(self.idle_tick_s)
                if not self._any_items_locked():
                    return None if self._stopping else []
            if self._stopping and not self._drain_on_stop:
                return None
            batch: list[tuple[Mailbox, Frame]] = []
            oldest: float | None = None
            while True:
                oldest = self._take_round_locked(batch, oldest)
                if images_in(batch) >= self.batch_cap:
                    break
                if self._any_items_locked():
                    continue  # more frames already waiting: taking them costs no latency
                if oldest is None or self._stopping:
                    break
                remaining = oldest + self.max_wait_s - self.clock()
                if remaining <= 0:
                    break
                self._ready.wait(remaining)
                if not self._any_items_locked():
                    break
            if not batch:
                self._idle.notify_all()
            return batch

    def _any_items_locked(self) -> bool:
        return any(b._has_items_locked() for b in self._mailboxes.values())

    def _take_round_locked(self, batch: list[tuple[Mailbox, Frame]], oldest: float | None) -> float | None:
        """One pass over the streams, one frame each, starting after last pass's first stream."""
        n = len(self._order)
        if n == 0:
            return oldest
        start = self._rr % n
        self._rr = start + 1
        now = self.clock()
        taken = images_in(batch)
        for i in range(n):
            if taken >= self.batch_cap:
                break
            box = self._mailboxes[self._order[(start + i) % n]]
            item = box._pop_locked()
            if item is None:
                continue
            enqueued, frame = item
            if not box.blocking and now - enqueued > self.max_age_s:
                box._count_drop_locked(STALE)
                continue
            batch.append((box, frame))
            taken += 1 + len(frame.regions)
            self._inflight.add(box)  # taken but not yet delivered: drain() must still wait
            oldest = enqueued if oldest is None else min(oldest, enqueued)
        return oldest

    def _process(self, batch: list[tuple[Mailbox, Frame]]) -> None:
        h, w = self.classifier.input_size
        good: list[tuple[Mailbox, Frame]] = []
        for box, frame in batch:
            if all(img.shape == (h, w, 3) and img.dtype == np.uint8 for img in frame_images(frame)):
                good.append((box, frame))
            else:
                self._drop_invalid(box, frame)
        # The classifier sees images: each frame's whole picture, then its region crops.
        items = [(k, img) for k, (_, frame) in enumerate(good) for img in frame_images(frame)]
        probs_of: list[list[np.ndarray]] = [[] for _ in good]
        lost: set[int] = set()
        i = 0
        while i < len(items):
            chunk = items[i : i + self.batch_cap]
            probs = self._classify([img for _, img in chunk])
            if probs is None:  # out of memory: the cap was halved, retry this part
                if len(chunk) == 1:
                    lost.add(chunk[0][0])
                    i += 1
                continue
            for (k, _), p in zip(chunk, probs):
                probs_of[k].append(p)
            i += len(chunk)
        predictions: list[Prediction] = []
        delivered: list[Mailbox] = []
        for k, (box, frame) in enumerate(good):
            if k in lost:
                with self._lock:
                    box._count_drop_locked(OOM)
                continue
            first, *rest = probs_of[k]
            predictions.append(Prediction(frame=frame, probs=first, region_probs=tuple(rest)))
            delivered.append(box)
        if predictions:
            self.on_predictions(predictions)
        with self._lock:
            for box in delivered:
                box.classified += 1
            self._inflight.clear()
            self._idle.notify_all()
        for box in delivered:
            metrics.FRAMES_CLASSIFIED.labels(stream=box.stream_id).inc()
        self.batches += 1

    def _classify(self, chunk: list[np.ndarray]) -> np.ndarray | None:
        n = len(chunk)
        images = self._stack(chunk)
        t0 = time.perf_counter()
        self.busy_since = self.clock()
        try:
            probs = self.classifier(images)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            self._on_oom(exc, n)
            probs = None
        finally:
            self.busy_since = None
        if probs is None:
            # Outside the except block, so the failed call's tensors are no longer referenced.
            release = getattr(self.classifier, "release_memory", None)
            if release is not None:
                release()
            return None
        metrics.INFERENCE_SECONDS.observe(time.perf_counter() - t0)
        metrics.BATCH_SIZE.observe(n)
        return probs

    def _stack(self, images: list[np.ndarray]) -> np.ndarray:
        n = len(images)
        host_buffer = getattr(self.classifier, "host_buffer", None)
        if host_buffer is not None:
            out = host_buffer(n)  # e.g. pinned memory: saves a copy before the transfer
        else:
            h, w = self.classifier.input_size
            if self._buffer is None or self._buffer.shape[0] < n:
                self._buffer = np.empty((max(n, self.max_batch), h, w, 3), np.uint8)
            out = self._buffer[:n]
        np.stack(images, out=out)
        return out

    def _on_oom(self, exc: BaseException, n: int) -> None:
        metrics.OOM_TOTAL.inc()
        self.batch_cap = max(1, min(self.batch_cap, n) // 2)
        if not self._oom_logged:
            self._oom_logged = True
            log.warning(
                "engine: classifier ran out of memory on a batch of %d (%s); batch cap now %d",
                n, str(exc).splitlines()[0] if str(exc) else type(exc).__name__, self.batch_cap,
            )
        else:
            log.debug("engine: out of memory again on %d; batch cap now %d", n, self.batch_cap)

    def _drop_invalid(self, box: Mailbox, frame: Frame) -> None:
        with self._lock:
            box._count_drop_locked(INVALID)
        if box.stream_id not in self._invalid_logged:
            self._invalid_logged.add(box.stream_id)
            h, w = self.classifier.input_size
            bad = next(img for img in frame_images(frame) if img.shape != (h, w, 3) or img.dtype != np.uint8)
            log.error(
                "engine: stream %s sent a %s of shape %s %s, expected (%d, %d, 3) uint8; dropped",
                box.stream_id, "frame" if bad is frame.image else "region crop", bad.shape, bad.dtype, h, w,
            )
