"""Killed processes and lost connections: the Last Will, and a backlog that survives SIGKILL."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.mosquitto import Mosquitto, Subscriber

SCRIPT = Path(__file__).with_name("publisher_script.py")
ROOT = Path(__file__).resolve().parents[2]
P = "birdstream/garden"


def _spawn(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def _read_line(proc: subprocess.Popen[str], prefix: str, timeout: float = 20.0) -> str:
    """The first stdout line starting with prefix, within the deadline."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            if sel.select(left):
                line = proc.stdout.readline()
                if not line:
                    break
                if line.startswith(prefix):
                    return line.strip()
        proc.kill()
        raise AssertionError(f"no {prefix!r} line from the publisher; stderr: {proc.communicate()[1][-2000:]}")
    finally:
        sel.close()


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_while_broker_down_then_restart_delivers_backlog(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path)  # not started: the broker is down
    state = tmp_path / "state"
    proc = _spawn("queue", str(state), str(broker.port), "5")
    try:
        assert _read_line(proc, "stored") == "stored 6"  # 5 sighting messages + the latest `last`
    finally:
        _kill(proc)
    lines = (state / "sightings.jsonl").read_text().splitlines()
    assert [json.loads(x)["seq"] for x in lines] == [0, 1, 2, 3, 4]

    with broker, Subscriber(broker.port, ["birdstream/#"]) as sub:
        proc = _spawn("drain", str(state), str(broker.port))
        assert _read_line(proc, "drained") == "drained 0"
        assert proc.wait(10) == 0
        got = sub.wait_for(lambda m: m.topic == f"{P}/feeder/sighting", count=5)
        assert [json.loads(m.payload)["seq"] for m in got] == [0, 1, 2, 3, 4]
        assert [json.loads(m.payload) for m in got] == [json.loads(x) for x in lines]
        (last,) = sub.on_topic(f"{P}/feeder/last")
        assert json.loads(last.payload)["seq"] == 4


def test_last_will_offline_when_the_publisher_dies(broker: Mosquitto) -> None:
    with Subscriber(broker.port, [f"{P}/status"]) as sub:
        proc = _spawn("drain", str(broker.folder / "state"), str(broker.port), "hold")
        try:
            _read_line(proc, "online")
            sub.wait_for(lambda m: m.payload == b"online")
        finally:
            _kill(proc)  # the connection dies without DISCONNECT
        (will,) = sub.wait_for(lambda m: m.payload == b"offline")
        assert will.retain and will.qos == 1
    with Subscriber(broker.port, [f"{P}/status"]) as late:
        assert late.wait_for(lambda m: m.retain)[0].payload == b"offline"
