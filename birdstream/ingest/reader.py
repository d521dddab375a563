"""StreamReader: one thread per stream that decodes, samples and emits Frames, and reconnects."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from birdstream.errors import SourceError
from birdstream.ingest import metrics
from birdstream.ingest.convert import Size
from birdstream.ingest.errors import StreamError
from birdstream.ingest.frames import FrameMaker
from birdstream.ingest.hwaccel import HwDecodeFailed, HwDecoder
from birdstream.ingest.hwaccel import for_spec as hw_for_spec
from birdstream.ingest.interrupt import interruptible
from birdstream.ingest.inotify import InotifyWatcher, make_watcher
from birdstream.ingest.media import FolderWatcher, list_media, open_video
from birdstream.ingest.files import read_media
from birdstream.ingest.seen import SeenFiles
from birdstream.ingest.spec import SourceSpec, is_live, local_path
from birdstream.messages import FINAL_STATES, Frame, StreamState, StreamStatus

log = logging.getLogger(__name__)

FATAL_FOR_FILES = frozenset({"not_found", "not_video", "unsupported", "permission", "too_large", "auth"})
FPS_WINDOW_S = 10.0


MAX_EXPONENT = 30  # 2**30 times any sane `low` is past every `high`; beyond it 2.0**n overflows at 1024


class Backoff:
    """Exponential backoff with full jitter between `low` and `high` seconds; never gives up."""

    def __init__(self, low: float, high: float, rng: random.Random | None = None) -> None:
        self.low, self.high = low, high
        self.attempt = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        # The attempt count grows for as long as a camera stays away (a solar camera off every
        # night); the exponent must not, or a float power overflows after about 13 hours.
        ceiling = min(self.high, self.low * (2.0 ** min(self.attempt, MAX_EXPONENT)))
        self.attempt += 1
        return self._rng.uniform(max(self.low, ceiling / 2), ceiling)

    def reset(self) -> None:
        self.attempt = 0


class StreamReader:
    """Reads one source on its own thread (`ingest:<id>`) and calls `emit(frame)` per passed frame.

    `emit` is called on the reader thread and may block (offline backpressure); it must return
    once the reader is stopped (wait on `reader.stop_event`, or use a bounded put), otherwise
    `join()` waits for it. `on_status(StreamStatus)` is called when the state or error changes.
    """

    def __init__(self, spec: SourceSpec, *, input_size: Size, emit: Callable[[Frame], None],
                 on_status: Callable[[StreamStatus], None], want_full: bool = False,
                 seen: SeenFiles | None = None, on_file_done: Callable[[Path], None] | None = None) -> None:
        self.spec = spec
        self.input_size = input_size
        self._emit = emit
        self._on_status = on_status
        self._want_full = want_full
        self._seen = seen  # folders: files classified by an earlier run, skipped
        self._on_file_done = on_file_done  # folders: a file's frames were all handed to emit
        self.stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._state: StreamState = "starting"
        self._error: str | None = None
        self._reconnects = 0
        self._last_frame_at: float | None = None
        self._emitted: deque[float] = deque()
        self._maker: FrameMaker | None = None
        self._m = metrics.for_stream(spec.id)
        self._hw: HwDecoder | None = hw_for_spec(spec)
        self._synced_at = 0.0
        self._scanned_at: float | None = None  # monotonic time of the last folder scan

    # -- public -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"stream {self.spec.id} already started")
        self._thread = threading.Thread(target=self._run, name=f"ingest:{self.spec.id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end; blocked network calls return within about 0.1 s."""
        self.stop_event.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True when it has ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def status(self) -> StreamStatus:
        with self._lock:
            now = time.monotonic()
            while self._emitted and now - self._emitted[0] > FPS_WINDOW_S:
                self._emitted.popleft()
            c = self._maker.counters if self._maker else {"frames_in": 0, "sampled": 0, "dropped": 0}
            signs = [t for t in (self._maker.last_decode if self._maker else None, self._scanned_at)
                     if t is not None]
            alive_at = time.time() - (now - max(signs)) if signs else None
            return StreamStatus(
                stream_id=self.spec.id, state=self._state, error=self._error,
                fps=len(self._emitted) / FPS_WINDOW_S, last_frame_at=self._last_frame_at,
                reconnects=self._reconnects, dropped=c["dropped"], frames_in=c["frames_in"],
                frames_sampled=c["sampled"], alive_at=alive_at,
            )

    @property
    def counters(self) -> dict[str, int]:
        """frames_in, sampled, emitted, gated (motion gate), dropped (corrupt packets)."""
        return dict(self._maker.counters) if self._maker else {}

    # -- thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        with interruptible(self.stop_event):
            try:
                self._maker = FrameMaker(self.spec, self.input_size, want_full=self._want_full,
                                         gate=self.spec.gate_enabled)
                if self.spec.kind == "folder":
                    self._run_folder()
                else:
                    self._run_live_or_file()
            except SourceError as err:  # StreamError, or an unknown URL scheme
                self._fail(err)
            except Exception as exc:  # noqa: BLE001 - the thread must never die silently
                log.exception("stream %s: internal error", self.spec.id)
                self._set_state("failed", f"internal error: {type(exc).__name__}")
            finally:
                self._sync_metrics()
        if self._state not in FINAL_STATES:
            self._set_state("stopped", None)

    def _run_live_or_file(self) -> None:
        """A live source never gives up while the daemon runs: even an internal error is retried."""
        if not self.spec.live:
            self._run_stream()
            return
        backoff = Backoff(self.spec.backoff_min_s, self.spec.backoff_max_s)
        logged = False
        while not self.stop_event.is_set():
            try:
                self._run_stream()
                return
            except SourceError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried like a camera that went away
                if not logged:  # its traceback once; every retry is counted and in the status
                    log.exception("stream %s: internal error; the stream is retried", self.spec.id)
                    logged = True
                self._retry(StreamError(self.spec.label, "io", f"internal error: {type(exc).__name__}"), backoff)

    def _run_stream(self) -> None:
        spec, maker = self.spec, self._maker
        assert maker is not None
        live = spec.live
        backoff = Backoff(spec.backoff_min_s, spec.backoff_max_s)
        while not self.stop_event.is_set():
            try:
                container = open_video(spec, hw=self._hw)
            except StreamError as err:
                if not live and err.kind in FATAL_FOR_FILES:
                    raise
                self._retry(err, backoff)
                continue
            finite = not is_live(spec.kind, container.duration)
            if spec.motion_gate is None:  # a file served over http is offline material
                maker.gate.enabled = not finite
            path = local_path(spec.url) if spec.kind == "file" else None
            try:
                pace = self._pacer() if (spec.realtime and finite) else None
                frames = maker.from_container(container, self.stop_event, label=spec.label, path=path,
                                              live=not finite, pace=pace,
                                              on_first=lambda: self._working(backoff))
                for frame in frames:
                    self._deliver(frame)
                    if self.stop_event.is_set():
                        break
            except HwDecodeFailed as exc:
                assert self._hw is not None
                self._hw.failed("decode", f"decoding failed: {exc}")
                continue  # reopen at once, in software
            except StreamError as err:
                self._count_error(err)
                if not live:
                    raise
                self._retry(err, backoff)
                continue
            finally:
                container.close()
                self._sync_metrics()
            if self.stop_event.is_set():
                return
            if finite and (spec.loop and maker.counters["frames_in"] > 0):
                continue
            if finite:
                self._set_state("stopped", None)
                log.info("%s: end of file", spec.label)
                return
            self._retry(StreamError(spec.label, "eof", "the stream ended"), backoff)

    def _run_folder(self) -> None:
        spec, maker = self.spec, self._maker
        assert maker is not None
        folder = local_path(spec.url)
        listed = list_media(folder)
        paths = self._not_seen(listed)
        watcher = make_watcher(folder, set(listed)) if spec.watch else None
        self._set_state("running", None)
        try:
            self._folder_loop(paths, watcher)
        finally:
            if watcher is not None:
                watcher.close()

    def _folder_loop(self, paths: list[Path], watcher: InotifyWatcher | FolderWatcher | None) -> None:
        spec = self.spec
        while not self.stop_event.is_set():
            for path in paths:
                if self.stop_event.is_set():
                    return
                if self._read_file(path) and self._on_file_done is not None:
                    self._on_file_done(path)
            if watcher is None:
                self._set_state("stopped", self._error)
                return
            self._scanned_at = time.monotonic()
            self.stop_event.wait(spec.watch_interval_s)
            paths = watcher.poll()
            self._scanned_at = time.monotonic()  # an idle folder that is scanned is alive

    def _not_seen(self, paths: list[Path]) -> list[Path]:
        """The files an earlier run has not classified (all of them without a record)."""
        if self._seen is None:
            return paths
        self._seen.forget_missing()  # keeps the record as small as the folder
        fresh = [p for p in paths if p not in self._seen]
        if len(fresh) < len(paths):
            log.info("stream %s: %d file(s) classified by an earlier run are not read again (%s)",
                     self.spec.id, len(paths) - len(fresh), self._seen.path)
        return fresh

    def _read_file(self, path: Path) -> bool:
        """One file of a folder, True when read; an unreadable file is logged once and skipped."""
        maker = self._maker
        assert maker is not None
        maker.new_file()
        try:
            # Judged by content, not name; this thread's FFmpeg calls are already interruptible.
            for frame in read_media(maker, self.spec, path, self.stop_event, self._hw):
                self._deliver(frame)
        except StreamError as err:
            self._count_error(err)
            log.warning("stream %s: %s", self.spec.id, err)
            self._set_state("running", str(err))
            return False
        finally:
            self._sync_metrics()
        return not self.stop_event.is_set()

    # -- helpers ------------------------------------------------------------------------------
    def _working(self, backoff: Backoff) -> None:
        """The source decodes again: reset the backoff, state running, error cleared."""
        backoff.reset()
        self._set_state("running", None)

    def _deliver(self, frame: Frame) -> None:
        now = time.monotonic()
        with self._lock:
            # When it arrived, not the frame's own time: a file's frames carry the file's time
            # (days old), which made a playing file look stalled to the health check and watchdog.
            self._last_frame_at = time.time()
            self._emitted.append(now)
        if now - self._synced_at > 1.0:
            self._synced_at = now
            self._sync_metrics()
        if self._state != "running":
            self._set_state("running", self._error)
        self._emit(frame)

    def _pacer(self) -> Callable[[float], bool]:
        """Waits until wall time catches up with media time; False when stopped meanwhile."""
        anchor: list[float] = []

        def pace(t: float) -> bool:
            now = time.monotonic()
            if not anchor or now - (anchor[0] + t) > 1.0:  # first frame, or fell behind: re-anchor
                anchor[:] = [now - t]
                return not self.stop_event.is_set()
            delay = anchor[0] + t - now
            return not self.stop_event.wait(delay) if delay > 0 else not self.stop_event.is_set()

        return pace

    def _retry(self, err: StreamError, backoff: Backoff) -> None:
        if self.stop_event.is_set():
            return
        self._count_error(err)
        delay = backoff.next()
        with self._lock:
            self._reconnects += 1
        self._m.reconnects.inc()
        changed = self._set_state("reconnecting", str(err))
        (log.warning if changed else log.debug)("%s; reconnecting in %.1f s", err, delay)
        self.stop_event.wait(delay)

    def _fail(self, err: SourceError) -> None:
        self._m.errors(getattr(err, "kind", "unsupported")).inc()
        log.error("%s", err)
        self._set_state("failed", str(err))

    def _count_error(self, err: StreamError) -> None:
        self._m.errors(err.kind).inc()

    def _set_state(self, state: StreamState, error: str | None) -> bool:
        with self._lock:
            if state == self._state and error == self._error:
                return False
            self._state, self._error = state, error
        self._m.set_state(state)
        try:
            self._on_status(self.status)
        except Exception:  # noqa: BLE001 - a broken callback must not kill the reader
            log.exception("stream %s: on_status callback failed", self.spec.id)
        return True

    def _sync_metrics(self) -> None:
        if self._maker is not None:
            self._m.sync(self._maker.counters)
