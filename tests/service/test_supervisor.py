"""The supervisor in a real subprocess against a real NOTIFY_SOCKET: READY, WATCHDOG only while healthy,
STATUS, RELOADING on SIGHUP, STOPPING and exit 0 on SIGTERM, exit 1 when a worker thread crashes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.cli import REPO, birdstream_env, run_cli
from tests.support.notify import NotifyReceiver

WORKLOAD = REPO / "tests" / "service" / "workload.py"


def start_workload(tmp_path: Path, notify: NotifyReceiver, *extra: str) -> subprocess.Popen[str]:
    env = birdstream_env({"NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "150000"})
    return subprocess.Popen(
        [sys.executable, str(WORKLOAD), "--health-file", str(tmp_path / "health.json"),
         "--wedge-file", str(tmp_path / "wedge"), "--reload-file", str(tmp_path / "reloaded"), *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def health(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "health.json").read_text())


def wait_health(tmp_path: Path, predicate, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            data = health(tmp_path)
            if predicate(data):
                return data
        except (FileNotFoundError, ValueError):
            pass
        assert time.monotonic() < deadline, "health file never matched"
        time.sleep(0.02)


def assert_no_watchdog_while_wedged(tmp_path: Path, notify: NotifyReceiver, reason: str) -> None:
    bad = notify.wait_for(lambda m: m.startswith("STATUS=") and "UNHEALTHY" in m and reason in m,
                          start=len(notify.messages))
    since = health(tmp_path)["time"]
    # several more ticks pass while still wedged (the file is rewritten every tick)
    wait_health(tmp_path, lambda d: d["time"] > since + 0.3 and not d["healthy"])
    notify.drain()
    assert "WATCHDOG=1" not in notify.messages[bad:], notify.messages[bad:]
    assert any(reason in r for r in health(tmp_path)["reasons"])


def test_notify_sequence(tmp_path: Path, notify_socket: NotifyReceiver) -> None:
    proc = start_workload(tmp_path, notify_socket)
    try:
        ready = notify_socket.wait_for(lambda m: m.startswith("READY=1"))
        notify_socket.wait_for(lambda m: m == "WATCHDOG=1", start=ready)
        assert wait_health(tmp_path, lambda d: d["healthy"])["streams"]["cam"]["state"] == "running"
        assert run_cli("health", "--file", str(tmp_path / "health.json")).returncode == 0

        (tmp_path / "wedge").write_text("engine")
        assert_no_watchdog_while_wedged(tmp_path, notify_socket, "engine: no heartbeat")
        result = run_cli("health", "--file", str(tmp_path / "health.json"))
        assert result.returncode == 1 and "engine: no heartbeat" in result.stdout

        (tmp_path / "wedge").unlink()
        back = notify_socket.wait_for(lambda m: m == "WATCHDOG=1", start=len(notify_socket.messages))
        notify_socket.wait_for(lambda m: m == "STATUS=1/1 streams running", start=back - 1)

        (tmp_path / "wedge").write_text("stream")
        assert_no_watchdog_while_wedged(tmp_path, notify_socket, "stream cam: no frame")
        (tmp_path / "wedge").unlink()
        notify_socket.wait_for(lambda m: m == "WATCHDOG=1", start=len(notify_socket.messages))

        mark = len(notify_socket.messages)
        proc.send_signal(signal.SIGHUP)
        reloading = notify_socket.wait_for(lambda m: m.startswith("RELOADING=1\nMONOTONIC_USEC="), start=mark)
        notify_socket.wait_for(lambda m: m.startswith("READY=1"), start=reloading)
        assert (tmp_path / "reloaded").read_text() == "reloaded"

        proc.send_signal(signal.SIGTERM)
        notify_socket.wait_for(lambda m: m.startswith("STOPPING=1\nSTATUS=stopping: received SIGTERM"))
        _, stderr = proc.communicate(timeout=20)
        assert proc.returncode == 0, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "shutdown done" in stderr and "configuration reloaded: nothing changed" in stderr
    assert "Traceback" not in stderr
    final = health(tmp_path)
    assert (final["state"], final["healthy"]) == ("stopped", False)
    result = run_cli("health", "--file", str(tmp_path / "health.json"))
    assert result.returncode == 1


def test_crashed_worker_exits_1(tmp_path: Path, notify_socket: NotifyReceiver) -> None:
    proc = start_workload(tmp_path, notify_socket, "--crash")
    try:
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, stderr
    assert stderr.count("Traceback") == 1 and "RuntimeError: worker exploded" in stderr
    assert "worker thread worker crashed" in stderr
    notify_socket.drain()
    assert any(m.startswith("STOPPING=1\nSTATUS=stopping: worker thread worker crashed") for m in notify_socket.messages)
