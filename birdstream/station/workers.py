"""`classify --workers N`: decoding and sampling in N processes, classifying in this one.

PyAV decodes with the GIL released, but resizing, colour conversion and JPEG decoding of stills
hold it, so one process decodes on about one core while a GPU waits. Each worker process owns a
ring of frame slots in shared memory: it writes a sampled frame's pixels into a free slot and sends
only the slot number and the frame's small fields through a queue; the main process copies the
pixels out of the slot (one memcpy, no pickling through a pipe) and hands the slot back.

Files are dealt to the workers in runs of consecutive files (a still's regions are what differs from
the photo before it: a run's first file is primed with that photo) and read back in that same order,
so the trackers see the frames exactly as a single process would produce them: the outputs do not depend on N. Workers are
started with `spawn` (torch does not survive fork) and import no torch.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing as mp
import queue
import signal
import threading
from contextlib import ExitStack
from collections.abc import Callable, Iterator
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any

import numpy as np

from birdstream.errors import first_line
from birdstream.ingest.errors import StreamError
from birdstream.ingest.files import read_media
from birdstream.ingest.frames import FrameMaker
from birdstream.ingest.media import is_still, list_media
from birdstream.ingest.spec import SourceSpec, local_path
from birdstream.messages import Frame

log = logging.getLogger(__name__)

SLOTS = 8  # frames in flight per worker: enough to cover a batch's forward, little memory (8 x 442 KB at 384 px)
RUN = 8  # consecutive files of a folder one process reads in a row (the first is primed with the one before)
_POLL_S = 0.5  # how often a waiting reader checks that its worker is still alive


@dataclasses.dataclass
class _Worker:
    process: Any
    tasks: Any
    results: Any
    free: Any
    shm: SharedMemory


class DecodePool:
    """N worker processes that read media files into frames, delivered in the order submitted."""

    def __init__(self, workers: int, input_size: tuple[int, int]) -> None:
        ctx = mp.get_context("spawn")
        self.shape = (input_size[0], input_size[1], 3)
        slot_bytes = int(np.prod(self.shape))
        self._workers: list[_Worker] = []
        self._next = 0
        self._closed = False
        for n in range(workers):
            shm = SharedMemory(create=True, size=SLOTS * slot_bytes)
            tasks, results, free = ctx.Queue(), ctx.Queue(), ctx.Queue()
            for slot in range(SLOTS):
                free.put(slot)
            process = ctx.Process(target=_work, name=f"birdstream-decode-{n}", daemon=True,
                                  args=(shm.name, self.shape, tasks, results, free))
            process.start()
            self._workers.append(_Worker(process, tasks, results, free, shm))
        self._slots = [np.ndarray((SLOTS, *self.shape), np.uint8, buffer=w.shm.buf) for w in self._workers]

    def submit(self, spec: SourceSpec, path: Path | None, want_full: bool = False, prev: Path | None = None) -> int:
        """Queue one file (or the spec's own source when path is None) and, for a folder's file, the
        one before it; returns its ticket for frames(). Runs of RUN consecutive files go to one
        process, which then reads them as one reader would (a burst's photos differ from each other)."""
        n = (self._next // RUN) % len(self._workers)
        self._next += 1
        self._workers[n].tasks.put((spec, path, want_full, prev))
        return n

    def frames(self, ticket: int) -> Iterator[Frame]:
        """The frames of one submitted file, in order; raises its StreamError. Take tickets in order."""
        worker = self._workers[ticket]
        while True:
            message = self._get(worker)
            kind = message[0]
            if kind == "done":
                return
            if kind == "error":
                raise StreamError(*message[1])
            _, fields, slot = message
            image = self._slots[ticket][slot].copy()  # the batch outlives the slot: the worker reuses it now
            worker.free.put(slot)
            yield Frame(image=image, **fields)

    def _get(self, worker: _Worker) -> tuple:
        while True:
            try:
                return worker.results.get(timeout=_POLL_S)  # type: ignore[no-any-return]
            except queue.Empty:
                if not worker.process.is_alive():
                    raise StreamError(worker.process.name, "io",
                                      f"decoding process exited (code {worker.process.exitcode})") from None

    def close(self) -> None:
        """Stop the workers (at once: what they still hold is not wanted) and free the shared memory."""
        if self._closed:
            return
        self._closed = True
        self._slots.clear()
        for w in self._workers:
            if w.process.is_alive():
                w.process.terminate()
        for w in self._workers:
            w.process.join(timeout=10)
            for q in (w.tasks, w.results, w.free):
                q.cancel_join_thread()
                q.close()
            w.shm.close()
            w.shm.unlink()

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start(stack: ExitStack, run: Any, inputs: list[Path], count: int) -> Prefetch | None:
    """`count` decoding processes for a run's inputs (closed with `stack`); None to decode in this one.

    Hardware decoding stays in this process: one device decoder, and its fallback line printed once.
    """
    if count < 1 or not inputs or run.decode.get("hwaccel"):
        return None
    pool = stack.enter_context(DecodePool(count, tuple(run.classifier.input_size)))
    return Prefetch(pool, [(path, run.spec(path)) for path in inputs])


class Prefetch:
    """Every input of a run listed and queued at once, so the workers read ahead across inputs."""

    def __init__(self, pool: DecodePool, specs: list[tuple[Path, SourceSpec]]) -> None:
        self._plans: dict[Path, tuple[str, Any, list[StreamError], Path]] = {}
        for path, spec in specs:
            self._plans[path] = (*self._plan(pool, spec), local_path(spec.url))
        self._pool = pool
        self.files = sum(len(plan) if kind == "folder" else 1 for kind, plan, _, _ in self._plans.values())

    @staticmethod
    def _plan(pool: DecodePool, spec: SourceSpec) -> tuple[str, Any, list[StreamError]]:
        if spec.kind != "folder":
            return "file", pool.submit(spec, local_path(spec.url) if spec.kind == "file" else None), []
        errors: list[StreamError] = []
        try:
            paths = list_media(local_path(spec.url), errors.append)
        except StreamError as err:
            return "error", err, []
        return "folder", [(p, pool.submit(spec, p, prev=paths[i - 1] if i else None)) for i, p in enumerate(paths)], errors

    def frames(self, path: Path, on_error: Callable[[StreamError], None], stop: threading.Event) -> Iterator[Frame]:
        """The frames of one input, as iter_frames gives them (folder errors to on_error)."""
        kind, plan, errors, folder = self._plans.pop(path)
        if kind == "error":
            raise plan
        if kind == "file":
            yield from self._pool.frames(plan)
            return
        for err in errors:
            on_error(err)
        if not plan:
            log.warning("%s: no video or image files in this folder (nothing classified)", folder)
        seq = 0
        for _, ticket in plan:
            if stop.is_set():
                return
            try:
                for frame in self._pool.frames(ticket):
                    yield dataclasses.replace(frame, seq=seq)  # one count per folder, as a single reader has
                    seq += 1
            except StreamError as err:
                on_error(err)


def _work(shm_name: str, shape: tuple[int, int, int], tasks: Any, results: Any, free: Any) -> None:
    """A worker process: read each task's file into sampled frames, pixels into the ring."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the main process decides
    shm = SharedMemory(name=shm_name)
    slots = np.ndarray((SLOTS, *shape), np.uint8, buffer=shm.buf)
    stop = threading.Event()
    parent = mp.parent_process()
    try:
        maker, last = None, None
        while True:
            spec, path, want_full, prev = _take(tasks, parent)
            if maker is None or prev is None or last != (spec, want_full, prev):
                # A new input, or not the file this process read last: start as a reader of this
                # input would, primed with the photo before (a still's regions differ from it).
                maker = FrameMaker(spec, shape[:2], want_full=want_full, gate=bool(spec.motion_gate))
                if prev is not None and path is not None and is_still(prev) and is_still(path):
                    maker.prime_still(prev)
            else:
                maker.new_file()
            last = (spec, want_full, path)
            try:
                for frame in read_media(maker, spec, path, stop):
                    slot = _take(free, parent)
                    slots[slot] = frame.image
                    fields = _fields(frame, want_full)
                    results.put(("frame", fields, slot))
            except StreamError as err:
                results.put(("error", (err.label, err.kind, err.detail)))
                continue
            except Exception as exc:  # a bug or a library failure on one file: named, the rest goes on
                log.exception("%s: decoding failed", path)
                results.put(("error", (str(path), "io", first_line(exc))))
                continue
            results.put(("done",))
    except _Orphaned:
        # Nobody reads the results any more: exit without waiting to flush what is still buffered
        # (the pipe is full and this process holds its read end too, so the flush would wait forever).
        results.cancel_join_thread()
    finally:
        del slots
        shm.close()


def _fields(frame: Frame, want_full: bool) -> dict[str, Any]:
    """What of a frame goes through the queue beside its slot: small fields and the region crops at
    model size; the pictures at source resolution (for snapshots) only when they were asked for."""
    fields = {f.name: getattr(frame, f.name) for f in dataclasses.fields(frame) if f.name != "image"}
    if not want_full:
        fields["full"] = None
        fields["regions"] = tuple(dataclasses.replace(r, crop=None) for r in frame.regions)
    return fields


class _Orphaned(Exception):
    """The classifying process is gone (SIGKILL, power off): daemon workers are not killed with it."""


def _take(q: Any, parent: Any) -> Any:
    """The next item of `q`; _Orphaned once the parent process has died, so no worker outlives it."""
    while True:
        try:
            return q.get(timeout=_POLL_S)
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                raise _Orphaned from None
