"""`birdstream run` end to end: file streams, the planted model, a real mosquitto, sd_notify, SIGTERM."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tests.e2e.conftest import BLUE, RED, birdstream_cmd
from tests.support.cli import birdstream_env
from tests.support.daemon import wait_until
from tests.support.mosquitto import Mosquitto, Subscriber, retained_messages
from tests.support.video import Box, make_video


class NotifySocket:
    """A real AF_UNIX datagram socket collecting sd_notify messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in m for m in self.messages):
                return
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} within {timeout} s; got {self.messages}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@contextlib.contextmanager
def running(config: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], NotifySocket]]:
    """`birdstream run -c config` with a real NOTIFY_SOCKET, yielded once READY; killed if still up at the end."""
    notify = NotifySocket(tmp_path / "notify.sock")
    env = birdstream_env({"NOTIFY_SOCKET": str(notify.path)})
    proc = subprocess.Popen(birdstream_cmd("run", "-c", str(config)), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        notify.wait_for("READY=1", 120)
        yield proc, notify
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        notify.close()


def terminate(proc: subprocess.Popen[str]) -> str:
    """SIGTERM; the daemon must exit 0 without a traceback. Returns its stderr."""
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    return stderr


def write_config(tmp_path: Path, planted: Path, broker: Mosquitto, streams: str) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(f"""
station: test
state_dir: {tmp_path / 'state'}
model:
  weights: {planted}
  max_wait_ms: 20
streams:
{streams}
sightings:
  end_after_s: 2
mqtt:
  host: 127.0.0.1
  port: {broker.port}
service:
  shutdown_grace_s: 5
""")
    return config


def test_run_publishes_sightings_and_ends_them_cleanly_on_sigterm(tmp_path: Path, planted: Path, broker: Mosquitto) -> None:
    live = make_video(tmp_path / "live.mp4", duration_s=40, fps=10, objects=[Box(RED, (110, 70, 100, 90), 1.0, 39.0)])
    short = make_video(tmp_path / "short.mp4", duration_s=6, fps=10, objects=[Box(BLUE, (110, 70, 100, 90), 1.0, 4.0)])
    config = write_config(tmp_path, planted, broker, f"""
  - id: live
    url: {live}
    realtime: true
    sample_fps: 4
  - id: short
    url: {short}
""")
    with Subscriber(broker.port, ["birdstream/test/#"]) as sub:
        with running(config, tmp_path) as (proc, notify):
            start = sub.wait_for(lambda m: m.topic == "birdstream/test/live/sighting"
                                 and json.loads(m.payload)["event"] == "start", timeout=60)[0]
            # The short file ends: its sighting ended, its state is `stopped`, the daemon keeps running.
            sub.wait_for(lambda m: m.topic == "birdstream/test/short/sighting"
                         and json.loads(m.payload)["event"] == "end", timeout=60)
            sub.wait_for(lambda m: m.topic == "birdstream/test/short/status"
                         and json.loads(m.payload)["state"] == "stopped", timeout=60)
            assert sub.wait_for(lambda m: m.topic == "birdstream/test/status", timeout=10)[-1].payload == b"online"
            terminate(proc)
        sighting_id = json.loads(start.payload)["id"]
        end = sub.wait_for(lambda m: m.topic == "birdstream/test/live/sighting"
                           and json.loads(m.payload)["event"] == "end", timeout=10)[0]
        assert json.loads(end.payload)["id"] == sighting_id
        assert sub.wait_for(lambda m: m.topic == "birdstream/test/status" and m.payload == b"offline", timeout=10)
    assert any("STOPPING=1" in m for m in notify.messages)
    log = [json.loads(line) for line in (tmp_path / "state" / "sightings.jsonl").read_text().splitlines()]
    live_events = [e["event"] for e in log if e["id"] == sighting_id]
    assert live_events[0] == "start" and live_events[-1] == "end"
    assert {e["species"] for e in log} == {"Scarlet Tanager", "Indian Roller"}
    snapshot = json.loads(end.payload)["snapshot"]
    assert snapshot and (tmp_path / "state" / snapshot).is_file()


def test_run_with_a_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("streams:\n  - id: cam\n    url: /x.mp4\n    sampel_fps: 2\n")
    proc = subprocess.run(birdstream_cmd("run", "-c", str(config)), capture_output=True, text=True, timeout=60,
                          env=birdstream_env())
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "sampel_fps" in proc.stderr and "sample_fps" in proc.stderr


def test_sighup_adds_and_removes_streams_and_a_removed_one_leaves_nothing_on_the_broker(
        tmp_path: Path, planted: Path, broker: Mosquitto) -> None:
    # A bird arrives after 1 s and stays (one arrival: a bird there from the first frame is scenery).
    red = make_video(tmp_path / "red.mp4", duration_s=40, fps=10, objects=[Box(RED, (110, 70, 100, 90), 1.0)])
    blue = make_video(tmp_path / "blue.mp4", duration_s=40, fps=10, objects=[Box(BLUE, (110, 70, 100, 90), 1.0)])

    def stream(name: str, video: Path) -> str:
        return f"  - id: {name}\n    url: {video}\n    realtime: true\n    sample_fps: 4\n"

    config = write_config(tmp_path, planted, broker, stream("feeder", red) + stream("pond", blue))
    config.write_text(config.read_text().replace("mqtt:\n", "mqtt:\n  ha_discovery:\n    enabled: true\n"))
    topic = "birdstream/test/{}/{}".format
    with Subscriber(broker.port, ["birdstream/test/#"]) as sub, running(config, tmp_path) as (proc, _):
        starts = {name: sub.wait_for(lambda m, n=name: m.topic == topic(n, "sighting"), timeout=60)[0]
                  for name in ("feeder", "pond")}
        assert retained_topics_of(broker, "pond")  # pond's state and entities are on the broker

        config.write_text(config.read_text().replace(stream("pond", blue), stream("gate", red)))
        proc.send_signal(signal.SIGHUP)
        end = sub.wait_for(lambda m: m.topic == topic("pond", "sighting")
                           and json.loads(m.payload)["event"] == "end", timeout=30)[0]
        assert json.loads(end.payload)["id"] == json.loads(starts["pond"].payload)["id"]
        sub.wait_for(lambda m: m.topic == topic("gate", "sighting"), timeout=60)
        wait_until(lambda: not retained_topics_of(broker, "pond"), timeout=30, what="pond's topics cleared")
        assert {"feeder", "gate"} <= {t.split("/")[-2].split("_")[0] for t in retained_topics_of(broker)}
        # feeder was not touched: its sighting goes on, never ended by the reload.
        assert not [m for m in sub.on_topic(topic("feeder", "sighting")) if json.loads(m.payload)["event"] == "end"]
        assert "reload" in terminate(proc)


def retained_topics_of(broker: Mosquitto, stream: str | None = None) -> set[str]:
    """Retained topics of one stream (its own and its Home Assistant documents), or of every one."""
    topics = retained_messages(broker.port, ["birdstream/test/+/+", "homeassistant/sensor/#"])
    return {t for t in topics if stream is None or f"/{stream}/" in t or f"/{stream}_" in t}
