"""The daemon's main-thread loop: signals, health checks, sd_notify, health status file, crash detection.

The daemon builds its stages, registers health checks, then calls ``Supervisor.run(shutdown)``:
READY=1, then a tick every few seconds that sends WATCHDOG=1 only while every check passes, until
SIGTERM/SIGINT (exit 0) or a fatal check / crashed worker thread (exit 1, so systemd restarts us).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from birdstream.config import Config
from birdstream.errors import BirdstreamError
from birdstream.messages import StreamStatus, rfc3339
from birdstream.service import metrics
from birdstream.service.sdnotify import Notifier, watchdog_interval

log = logging.getLogger(__name__)

HealthCheck = Callable[[], "str | None"]
"""A health check returns None when healthy, else a one-line reason."""


@dataclass(frozen=True)
class HealthSnapshot:
    """The daemon's health at one tick: what the status file, /healthz and STATUS= report."""

    pid: int
    time: float  # epoch seconds
    state: str  # starting | running | stopping | stopped
    healthy: bool
    status: str
    reasons: tuple[str, ...] = ()
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)
    notices: tuple[str, ...] = ()  # things an operator should know that a restart would not fix

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "time": self.time, "updated_at": rfc3339(self.time), "state": self.state,
                "healthy": self.healthy, "status": self.status, "reasons": list(self.reasons),
                "streams": self.streams, "notices": list(self.notices)}


def write_health_file(path: Path, snapshot: HealthSnapshot) -> None:
    """Write the snapshot as JSON atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(snapshot.to_json(), indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class Supervisor:
    """Runs in the main thread; stages run in their own threads and are observed through callables."""

    def __init__(self, *, health_file: Path | None, stale_s: float = 60.0, failed_s: float = 0.0,
                 tick_s: float | None = None,
                 notifier: Notifier | None = None, wall_clock: Callable[[], float] = time.time,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.health_file = health_file
        self.stale_s = stale_s
        self.failed_s = failed_s  # a stream failed this long is unhealthy; 0 = never
        self._failed_since: dict[str, float] = {}
        self.notifier = notifier if notifier is not None else Notifier.from_env()
        interval = watchdog_interval()
        self.watchdog_enabled = interval is not None
        # systemd asks for pings at half the interval; a third leaves room for a slow check.
        self.tick_s = tick_s if tick_s is not None else min(5.0, interval / 3) if interval else 5.0
        self._wall = wall_clock
        self._clock = clock
        self._checks: list[tuple[str, HealthCheck]] = []
        self._fatal: list[tuple[str, HealthCheck]] = []
        self._notices: list[tuple[str, HealthCheck]] = []
        self._streams: list[Callable[[], Iterable[StreamStatus]]] = []
        self._reload: Callable[[], str | None] | None = None
        self._wake = threading.Event()
        self._stop_requested = threading.Event()
        self._reload_requested = False
        self._exit_code = 0
        self._stop_reason = ""
        self._lock = threading.Lock()
        self._snapshot = HealthSnapshot(os.getpid(), wall_clock(), "starting", False, "starting", ("starting",))
        self._last_status = ""
        self._old_handlers: dict[int, Any] = {}
        self._old_excepthook: Callable[[threading.ExceptHookArgs], Any] | None = None
        self._health_file_failed = False
        self._last_healthy = True

    @classmethod
    def from_config(cls, config: Config, notifier: Notifier | None = None) -> Supervisor:
        """A supervisor with the config's health file and staleness limit."""
        return cls(health_file=config.health_path, stale_s=config.service.watchdog_stale_s,
                   failed_s=config.service.stream_failed_unhealthy_s, notifier=notifier)

    # --- registration ---------------------------------------------------------------------------

    def add_check(self, name: str, check: HealthCheck) -> None:
        """A check that must pass for WATCHDOG=1 and a healthy status (e.g. a fresh heartbeat)."""
        self._checks.append((name, check))

    def watch_streams(self, statuses: Callable[[], Iterable[StreamStatus]]) -> None:
        """Report these streams in the status file; a running stream silent for stale_s is unhealthy."""
        self._streams.append(statuses)

    def add_notice(self, name: str, notice: HealthCheck) -> None:
        """A line shown in the health status (``notices``) that does not make the daemon unhealthy."""
        self._notices.append((name, notice))

    def add_fatal_check(self, name: str, check: HealthCheck) -> None:
        """A check whose failure stops the daemon with exit 1 (e.g. a worker thread that died)."""
        self._fatal.append((name, check))

    def on_reload(self, callback: Callable[[], str | None]) -> None:
        """Called in the main thread on SIGHUP; returns a one-line summary; a BirdstreamError keeps the old config."""
        self._reload = callback

    # --- control ---------------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stop_requested.is_set()

    def request_stop(self, reason: str = "stop requested", exit_code: int = 0) -> None:
        """Ask run() to stop; thread-safe. The first non-zero exit code wins."""
        with self._lock:
            if exit_code and not self._exit_code:
                self._exit_code = exit_code
            if not self._stop_requested.is_set():
                self._stop_reason = reason
                self._stop_requested.set()
        self._wake.set()

    def request_reload(self) -> None:
        self._reload_requested = True
        self._wake.set()

    def set_status(self, text: str) -> None:
        """Send STATUS=text now (e.g. 'loading model' before READY)."""
        self._last_status = text
        self.notifier.status(text)

    def snapshot(self) -> HealthSnapshot:
        """The latest health snapshot (thread-safe; served by /healthz)."""
        with self._lock:
            return self._snapshot

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT -> stop, SIGHUP -> reload, a crashed thread -> exit 1.

        Main thread only; call it early so that a stop or a crash during startup is honoured.
        """
        if self._old_handlers:
            return
        self._old_excepthook = threading.excepthook
        threading.excepthook = self._excepthook
        for sig, handler in ((signal.SIGTERM, self._on_stop_signal), (signal.SIGINT, self._on_stop_signal),
                             (signal.SIGHUP, self._on_hup)):
            self._old_handlers[sig] = signal.signal(sig, handler)

    def restore_signal_handlers(self) -> None:
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers.clear()
        if self._old_excepthook is not None:
            threading.excepthook = self._old_excepthook
            self._old_excepthook = None

    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.stopping and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop waiting for a clean shutdown
        self.request_stop(f"received {signal.Signals(signum).name}")

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        self.request_reload()

    def _excepthook(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        metrics.WORKER_CRASHES.inc()
        log.error("worker thread %s crashed", name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
        self.request_stop(f"worker thread {name} crashed", exit_code=1)

    # --- the loop --------------------------------------------------------------------------------

    def run(self, shutdown: Callable[[], None] | None = None) -> int:
        """READY=1, health ticks until stopped, STOPPING=1, ``shutdown()``; returns the exit code."""
        self.install_signal_handlers()
        try:
            snap = self.tick(state="running")
            self.notifier.ready(snap.status)
            log.info("ready: %s", snap.status)
            while not self.stopping:
                self._wake.wait(self.tick_s)
                self._wake.clear()
                if self._reload_requested and not self.stopping:
                    self._reload_requested = False
                    self._do_reload()
                if not self.stopping:
                    self.tick(state="running")
            log.info("stopping: %s", self._stop_reason)
            self.notifier.stopping(f"stopping: {self._stop_reason}")
            self._publish(self._make_snapshot("stopping"))
            if shutdown is not None:
                try:
                    shutdown()
                except Exception:
                    log.exception("shutdown failed")
                    self._exit_code = self._exit_code or 1
            self._publish(self._make_snapshot("stopped"))
            return self._exit_code
        finally:
            self.restore_signal_handlers()

    def tick(self, state: str = "running") -> HealthSnapshot:
        """Evaluate the checks once: update the status file, STATUS=, and ping the watchdog if healthy."""
        for name, check in self._fatal:
            reason = self._run_check(name, check)
            if reason is not None:
                log.error("fatal: %s", reason)
                self.request_stop(reason, exit_code=1)
        snap = self._make_snapshot(state)
        metrics.HEALTHY.set(1 if snap.healthy else 0)
        if snap.healthy and self.watchdog_enabled and self.notifier.watchdog():
            metrics.WATCHDOG_PINGS.inc()
        self._publish(snap)
        return snap

    def _make_snapshot(self, state: str) -> HealthSnapshot:
        reasons: list[str] = []
        if state != "running":
            reasons.append(state)
        for name, check in self._checks:
            reason = self._run_check(name, check)
            if reason is not None:
                metrics.HEALTH_FAILURES.labels(name).inc()
                reasons.append(reason)
        now = self._wall()
        streams: dict[str, dict[str, Any]] = {}
        for source in self._streams:
            try:
                for status in source():
                    streams[status.stream_id] = status.to_payload()
                    reason = self._stream_reason(status, now)
                    if reason is not None:
                        metrics.HEALTH_FAILURES.labels("stream").inc()
                        reasons.append(reason)
            except Exception as exc:
                log.exception("stream status source failed")
                reasons.append(f"stream status unavailable: {exc}")
        self._failed_since = {sid: t for sid, t in self._failed_since.items()
                              if streams.get(sid, {}).get("state") == "failed"}
        healthy = not reasons
        notices = tuple(n for n in (self._run_check(name, fn) for name, fn in self._notices) if n)
        return HealthSnapshot(os.getpid(), now, state, healthy, _summary(state, streams, reasons),
                              tuple(reasons), streams, notices)

    def _stream_reason(self, status: StreamStatus, now: float) -> str | None:
        """Why this stream makes the daemon unhealthy, or None.

        A running stream is alive while its source does something (a decoded picture, a folder
        scan), not only while it emits frames: an idle upload folder, a low sample_fps or a motion
        gate holding back a still scene are not a wedged pipeline. A stream that has given up
        (`failed`) for failed_s makes systemd restart the daemon instead of staying green.
        """
        if status.state == "running":
            signs = [t for t in (status.alive_at, status.last_frame_at) if t is not None]
            alive = max(signs) if signs else None
            if alive is not None and now - alive > self.stale_s:
                return f"stream {status.stream_id}: no frame for {now - alive:.0f} s"
        if status.state == "failed" and self.failed_s > 0:
            since = self._failed_since.setdefault(status.stream_id, self._clock())
            age = self._clock() - since
            if age >= self.failed_s:
                return f"stream {status.stream_id}: failed for {age:.0f} s: {status.error}"
        return None

    def _run_check(self, name: str, check: HealthCheck) -> str | None:
        try:
            return check()
        except Exception as exc:  # a broken check must not take the loop down; it fails instead
            log.exception("health check %s failed", name)
            return f"{name}: check failed: {exc}"

    def _publish(self, snap: HealthSnapshot) -> None:
        with self._lock:
            self._snapshot = snap
        if snap.status != self._last_status:
            self._last_status = snap.status
            self.notifier.status(snap.status)
        if snap.state == "running" and snap.healthy != self._last_healthy:
            if snap.healthy:
                log.info("healthy again: %s", snap.status)
            else:
                log.warning("unhealthy: %s", "; ".join(snap.reasons))
            self._last_healthy = snap.healthy
        if self.health_file is not None:
            try:
                write_health_file(self.health_file, snap)
                self._health_file_failed = False
            except OSError as exc:
                metrics.HEALTH_FILE_ERRORS.inc()
                if not self._health_file_failed:
                    log.warning("cannot write health file %s: %s", self.health_file, exc)
                    self._health_file_failed = True

    def _do_reload(self) -> None:
        if self._reload is None:
            log.info("SIGHUP: nothing to reload")
            return
        self.notifier.reloading()
        try:
            summary = self._reload()
            metrics.RELOADS.labels("ok").inc()
            log.info("configuration reloaded%s", f": {summary}" if summary else "")
        except BirdstreamError as exc:
            metrics.RELOADS.labels("error").inc()
            log.error("reload failed, keeping the running configuration: %s", exc)
        except Exception:
            metrics.RELOADS.labels("error").inc()
            log.exception("reload failed, keeping the running configuration")
        self.notifier.ready(self._last_status or None)


def _summary(state: str, streams: dict[str, dict[str, Any]], reasons: list[str]) -> str:
    """One line for systemd's STATUS= and `systemctl status`."""
    if state != "running":
        return state
    parts = []
    if streams:
        running = sum(1 for s in streams.values() if s["state"] == "running")
        parts.append(f"{running}/{len(streams)} streams running")
        others = [f"{sid} {s['state']}" for sid, s in streams.items() if s["state"] != "running"]
        if others:
            parts.append(", ".join(others[:5]) + (" ..." if len(others) > 5 else ""))
    if reasons:
        parts.append("UNHEALTHY: " + reasons[0] + (f" (+{len(reasons) - 1})" if len(reasons) > 1 else ""))
    return "; ".join(parts) or "running"
