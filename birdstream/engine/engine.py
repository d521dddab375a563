"""The one inference thread: fair batching across stream mailboxes through one classifier."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

import numpy as np

from birdstream.engine import metrics
from birdstream.engine.batch import Launched, Taken, frame_images, images_in, regroup
from birdstream.engine.calls import BatchClassifier, is_out_of_memory, submitter
from birdstream.engine.mailbox import INVALID, OOM, REMOVED, SHUTDOWN, STALE, Mailbox
from birdstream.errors import first_line
from birdstream.messages import Frame, Prediction

log = logging.getLogger(__name__)

__all__ = ["BatchClassifier", "Engine", "frame_images", "images_in", "is_out_of_memory"]

class Engine:
    """Gathers frames round-robin from per-stream mailboxes into batches and classifies them.

    ``on_predictions`` is called on the inference thread with each batch's predictions, in
    order; it should only hand them on (the live pipeline queues them to its tracker thread).
    With a classifier that launches asynchronously (a GPU), batch k+1 is gathered, stacked and
    launched while batch k runs, and batch k is collected after that: the device never waits for
    the CPU work between batches.
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
        # Re-entrant and shared with every mailbox: a gather holds it over all streams at once.
        self._lock = threading.RLock()
        self._ready = threading.Condition(self._lock)  # a frame arrived or stop
        self._idle = threading.Condition(self._lock)  # a batch was delivered
        self._mailboxes: dict[str, Mailbox] = {}
        self._order: list[str] = []
        self._rr = 0
        self._inflight: Counter[Mailbox] = Counter()  # frames taken but not yet delivered, per mailbox
        self._stopping = False
        self._drain_on_stop = False
        self._oom_logged = False
        self._invalid_logged: set[str] = set()
        self._buffers: list[np.ndarray] = []  # two, used in turn: one is stacked while the other is read
        self._turn = 0
        self._submit = submitter(classifier)
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
                    box.close()
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
            box.close(discard=REMOVED)
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
                box.close()
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
                return any(self._inflight.values()) or self._any_items_locked()
            box = self._mailboxes.get(stream_id)
            return box is not None and (self._inflight[box] > 0 or box.has_frames)

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
        pending: Launched | None = None  # launched, not yet collected
        try:
            while True:
                self.heartbeat = self.clock()
                batch = self._gather(wait=pending is None)
                if batch is None:
                    break
                launched = self._launch(batch) if batch else None
                if pending is not None:
                    self._deliver(pending)
                    pending = None
                if launched is not None and launched.ready:
                    self._deliver(launched)  # a synchronous classifier: nothing to overlap with
                else:
                    pending = launched
                self.busy_since = pending.started if pending is not None else None
            if pending is not None:
                self._deliver(pending)  # stopping: the running batch still reaches its trackers
        except BaseException as exc:  # noqa: BLE001 - surfaced to the supervisor via .error
            self.error = exc
            metrics.ERRORS_TOTAL.inc()
            log.exception("engine: inference thread failed; it has stopped")
        finally:
            self.busy_since = None
            with self._lock:
                self._stopping = True
                for box in list(self._mailboxes.values()):
                    box.close(discard=SHUTDOWN)
                self._inflight.clear()
                self._idle.notify_all()
            self.done.set()

    def _gather(self, *, wait: bool = True) -> Taken | None:
        """Collect one batch; [] after an idle tick, None when the engine should exit.

        Without ``wait`` (a batch is running on the device) it takes only the frames already
        queued: they arrived while the device worked, and the running batch must be collected.
        """
        with self._lock:
            if not self._any_items_locked():
                if self._stopping:
                    return None
                if not wait:
                    return []
                self._ready.wait(self.idle_tick_s)
                if not self._any_items_locked():
                    return None if self._stopping else []
            if self._stopping and not self._drain_on_stop:
                return None
            batch: Taken = []
            oldest: float | None = None
            while True:
                before = len(batch)
                oldest = self._take_round_locked(batch, oldest)
                if images_in(batch) >= self.batch_cap:
                    break
                if len(batch) == before and batch and self._any_items_locked():
                    break  # the frames waiting bring more crops than this batch has room for
                if self._any_items_locked():
                    continue  # more frames already waiting: taking them costs no latency
                if oldest is None or self._stopping or not wait:
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
        return any(b.has_frames for b in self._mailboxes.values())

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
            # A frame brings its region crops: it joins only if they fit (the first one always does,
            # its crops trimmed to the cap: CUDA graphs exist for batches up to the cap only).
            item = box.take(self.batch_cap - taken if batch else None)
            if item is None:
                continue
            enqueued, frame = item
            if len(frame.regions) >= self.batch_cap:
                frame = dataclasses.replace(frame, regions=frame.regions[: self.batch_cap - 1])
            if not box.blocking and now - enqueued > self.max_age_s:
                box.drop(STALE)
                continue
            batch.append((box, frame))
            taken += 1 + len(frame.regions)
            self._inflight[box] += 1  # taken but not yet delivered: drain() must still wait
            oldest = enqueued if oldest is None else min(oldest, enqueued)
        return oldest

    def _launch(self, batch: Taken) -> Launched:
        """Check, stack and launch one gathered batch (classified at once by a synchronous classifier)."""
        h, w = self.classifier.input_size
        good: Taken = []
        for box, frame in batch:
            if all(img.shape == (h, w, 3) and img.dtype == np.uint8 for img in frame_images(frame)):
                good.append((box, frame))
            else:
                self._drop_invalid(box, frame)
        launched = Launched(batch, good, started=self.clock())
        if not good:
            return launched
        if self.busy_since is None:
            self.busy_since = launched.started
        # The classifier sees images: each frame's whole picture, then its region crops.
        images = [img for _, f in good for img in frame_images(f)]
        launched.handle = self._try(lambda: self._submit(self._stack(images)), len(images))
        return launched

    def _deliver(self, launched: Launched) -> None:
        """Collect a launched batch and hand its predictions on, in the order the frames were taken."""
        good = launched.good
        probs = self._try(launched.handle.result, images_in(good)) if launched.handle is not None else None
        if probs is not None:
            metrics.INFERENCE_SECONDS.observe(time.perf_counter() - launched.t0)
            metrics.BATCH_SIZE.observe(len(probs))
            predictions = regroup(good, list(probs))
        else:
            predictions = self._classify_in_parts(good) if good else []
        if predictions:
            self.on_predictions(predictions)
        delivered = Counter(box for box, _ in good) if probs is not None else self._stream_boxes(predictions, good)
        for box, n in delivered.items():
            box.mark_classified(n)  # before drain() can return: its counts are current then
        with self._lock:
            for box, _ in launched.taken:
                self._inflight[box] -= 1
                if self._inflight[box] <= 0:
                    del self._inflight[box]
            self._idle.notify_all()
        self.batches += 1

    def _stream_boxes(self, predictions: list[Prediction], good: Taken) -> Counter[Mailbox]:
        """Predictions per mailbox (a batch classified in parts may have lost frames to OOM)."""
        boxes = {id(f): box for box, f in good}
        return Counter(boxes[id(p.frame)] for p in predictions)

    def _classify_in_parts(self, good: Taken) -> list[Prediction]:
        """After an out-of-memory error: classify the images at once in parts of the (halved) cap; a
        frame one of whose images still does not fit alone is dropped (counted as oom)."""
        items = [(k, img) for k, (_, frame) in enumerate(good) for img in frame_images(frame)]
        probs_of: list[list[np.ndarray]] = [[] for _ in good]
        lost: set[int] = set()
        i = 0
        while i < len(items):
            chunk = items[i : i + self.batch_cap]
            t0 = time.perf_counter()
            handle = self._try(lambda: self._submit(self._stack([img for _, img in chunk])), len(chunk))
            probs = self._try(handle.result, len(chunk)) if handle is not None else None
            if probs is None:  # out of memory: the cap was halved, retry this part
                if len(chunk) == 1:
                    lost.add(chunk[0][0])
                    i += 1
                continue
            metrics.INFERENCE_SECONDS.observe(time.perf_counter() - t0)
            metrics.BATCH_SIZE.observe(len(chunk))
            for (k, _), p in zip(chunk, probs):
                probs_of[k].append(p)
            i += len(chunk)
        predictions: list[Prediction] = []
        for k, (box, frame) in enumerate(good):
            if k in lost:
                box.drop(OOM)
                continue
            first, *rest = probs_of[k]
            predictions.append(Prediction(frame=frame, probs=first, region_probs=tuple(rest)))
        return predictions

    def _try(self, call: Callable[[], object], n: int):  # noqa: ANN202 - the call's own result
        """``call()``, or None after an out-of-memory error (the batch cap halved, memory released)."""
        try:
            return call()
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            self._on_oom(exc, n)
        # Outside the except block, so the failed call's tensors are no longer referenced.
        release = getattr(self.classifier, "release_memory", None)
        if release is not None:
            release()
        return None

    def _stack(self, images: list[np.ndarray]) -> np.ndarray:
        n = len(images)
        host_buffer = getattr(self.classifier, "host_buffer", None)
        if host_buffer is not None:
            out = host_buffer(n)  # e.g. pinned memory, a fresh one per launch: saves a copy before the transfer
        else:
            self._turn ^= 1
            if not self._buffers or self._buffers[0].shape[0] < n:
                h, w = self.classifier.input_size
                self._buffers = [np.empty((max(n, self.max_batch), h, w, 3), np.uint8) for _ in range(2)]
            out = self._buffers[self._turn][:n]
        np.stack(images, out=out)
        return out

    def _on_oom(self, exc: BaseException, n: int) -> None:
        metrics.OOM_TOTAL.inc()
        self.batch_cap = max(1, min(self.batch_cap, n) // 2)
        if not self._oom_logged:
            self._oom_logged = True
            log.warning(
                "engine: classifier ran out of memory on a batch of %d (%s); batch cap now %d",
                n, first_line(exc), self.batch_cap,
            )
        else:
            log.debug("engine: out of memory again on %d; batch cap now %d", n, self.batch_cap)

    def _drop_invalid(self, box: Mailbox, frame: Frame) -> None:
        box.drop(INVALID)
        if box.stream_id not in self._invalid_logged:
            self._invalid_logged.add(box.stream_id)
            h, w = self.classifier.input_size
            bad = next(img for img in frame_images(frame) if img.shape != (h, w, 3) or img.dtype != np.uint8)
            log.error(
                "engine: stream %s sent a %s of shape %s %s, expected (%d, %d, 3) uint8; dropped",
                box.stream_id, "frame" if bad is frame.image else "region crop", bad.shape, bad.dtype, h, w,
            )
