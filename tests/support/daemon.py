"""Run the real `birdstream run` daemon in a subprocess: config, READY, signals, its logs and JSONL.

Usage::

    from tests.support.daemon import Daemon, stream_entry

    d = Daemon(tmp_path, planted, [stream_entry("cam", video)], mqtt_port=broker.port)
    with d.start():                      # waits for READY=1 on a real sd_notify socket
        d.wait_events(lambda evs: any(e["event"] == "end" for e in evs), timeout=60)
        d.terminate()                    # SIGTERM, waits for the exit, returns the exit code
    d.events()                           # every line of state_dir/sightings.jsonl

The daemon's stderr (its log) goes through a pipe, as to journald, and a thread here copies it to
a file as it comes, so a chatty daemon never blocks on a full pipe and limits set on the daemon
(e.g. a file-size limit) do not cut its log. ``stop()`` / the context manager leave no process
behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.support.cli import birdstream_env
from tests.support.notify import NotifyReceiver


def _copy_lines(pipe: Any, path: Path) -> None:
    with pipe, open(path, "ab", buffering=0) as out:
        for line in pipe:
            out.write(line)


def stream_entry(stream_id: str, url: str | os.PathLike, **options: Any) -> dict[str, Any]:
    """One `streams[]` entry of the config (options such as realtime, loop, sample_fps, stall_s)."""
    return {"id": stream_id, "url": str(url), **options}


def deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def wait_until(condition: Callable[[], Any], timeout: float, what: str = "condition",
               interval: float = 0.1) -> Any:
    """Poll ``condition()`` until it returns something truthy (returned); AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout} s")
        time.sleep(interval)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Complete lines of a JSONL file (a half-written last line of a killed writer is skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out = []
    for line in text.split("\n")[:-1]:  # the part after the last newline is not a line yet
        if line.strip():
            out.append(json.loads(line))
    return out


def event_keys(events: Iterable[dict[str, Any]]) -> set[tuple[str, int]]:
    """The (id, seq) pairs a subscriber deduplicates on."""
    return {(e["id"], int(e["seq"])) for e in events}


class Daemon:
    """One `birdstream run` config in ``folder``; can be started, signalled and restarted many times."""

    def __init__(self, folder: Path, weights: Path, streams: list[dict[str, Any]], *,
                 mqtt_port: int | None = None, station: str = "test", extra: Mapping[str, Any] | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.state_dir = self.folder / "state"
        self.station = station
        config: dict[str, Any] = {
            "station": station,
            "state_dir": str(self.state_dir),
            "model": {"weights": str(weights), "max_wait_ms": 20, "threads": 1},
            "streams": streams,
            "sightings": {"end_after_s": 2},
            "mqtt": {"enabled": mqtt_port is not None, "host": "127.0.0.1", "port": mqtt_port or 1883},
            "service": {"shutdown_grace_s": 5},
        }
        self.config = deep_merge(config, extra or {})
        self.state_dir = Path(self.config["state_dir"])
        self.config_path = self.folder / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False), encoding="utf-8")
        self._env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.notify: NotifyReceiver | None = None
        self.runs = 0
        self._pump: threading.Thread | None = None

    # -- paths ----------------------------------------------------------------------------------
    @property
    def jsonl_path(self) -> Path:
        return self.state_dir / "sightings.jsonl"

    @property
    def log_path(self) -> Path:
        """stderr of the latest run."""
        return self.folder / f"daemon-{self.runs}.log"

    def log_text(self, all_runs: bool = False) -> str:
        paths = [self.folder / f"daemon-{n}.log" for n in range(1, self.runs + 1)] if all_runs else [self.log_path]
        return "".join(p.read_text(errors="replace") for p in paths if p.exists())

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, *, ready_timeout: float = 120.0, wait_ready: bool = True) -> Daemon:
        """Start `birdstream run -c config` with a real NOTIFY_SOCKET; wait for READY=1."""
        if self.running:
            raise RuntimeError("daemon already running")
        self.runs += 1
        sock = self.folder / f"notify-{self.runs}.sock"
        self.notify = NotifyReceiver(sock)
        env = birdstream_env({"NOTIFY_SOCKET": str(sock), **self._env})
        self.proc = subprocess.Popen([sys.executable, "-m", "birdstream", "run", "-c", str(self.config_path)],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._pump = threading.Thread(target=_copy_lines, args=(self.proc.stdout, self.log_path), daemon=True)
        self._pump.start()
        if wait_ready:
            self.wait_ready(ready_timeout)
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        assert self.notify is not None
        deadline = time.monotonic() + timeout
        while True:
            if any("READY=1" in m for m in self.notify.messages):
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode} before READY:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no READY=1 within {timeout} s:\n{self.log_text()[-3000:]}")
            self.notify.drain(0.2)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for the process to exit; returns its exit code (negative: killed by that signal)."""
        assert self.proc is not None
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"daemon still running after {timeout} s:\n{self.log_text()[-3000:]}") from None
        self._reap()
        return rc

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait: a clean stop returns 0."""
        self.send(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> int:
        """SIGKILL (a power cut for the process) and wait."""
        self.send(signal.SIGKILL)
        return self.wait(30)

    def stop(self) -> None:
        """Whatever state it is in, leave no process behind (for finally/teardown)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(30)
        self._reap()

    def _reap(self) -> None:
        if self._pump is not None:
            self._pump.join(10)  # the pipe is at EOF once the process (group) is gone
            self._pump = None
        if self.notify is not None:
            self.notify.close()
            self.notify = None

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- observations ---------------------------------------------------------------------------
    def events(self) -> list[dict[str, Any]]:
        """Every complete line of state_dir/sightings.jsonl, in order."""
        return read_jsonl(self.jsonl_path)

    def wait_events(self, condition: Callable[[list[dict[str, Any]]], bool], timeout: float,
                    what: str = "sightings.jsonl condition") -> list[dict[str, Any]]:
        """Wait until ``condition(events)`` holds; fails early (with the log) when the daemon dies."""
        def check() -> list[dict[str, Any]] | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            events = self.events()
            return events if condition(events) else None

        try:
            return wait_until(check, timeout, what)
        except AssertionError as err:
            if "not reached" in str(err):
                raise AssertionError(f"{err}; events: {[(e['stream'], e['event']) for e in self.events()]}\n"
                                     f"{self.log_text()[-3000:]}") from None
            raise

    def wait_log(self, text: str, timeout: float) -> str:
        """Wait until the latest run's log contains ``text``; returns the line."""
        def check() -> str | None:
            return next((line for line in self.log_text().splitlines() if text in line), None)

        try:
            return wait_until(check, timeout, f"log line with {text!r}")
        except AssertionError:
            raise AssertionError(f"no log line with {text!r} in {timeout} s:\n{self.log_text()[-3000:]}") from None

    def outbox_count(self) -> int:
        """Rows waiting in the durable outbox (read with the sqlite3 module, the daemon may be running)."""
        import sqlite3

        path = self.state_dir / "outbox.sqlite3"
        if not path.exists():
            return 0
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        finally:
            db.close()


def sightings_by_id(events: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_id: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_id.setdefault(event["id"], []).append(event)
    return by_id
