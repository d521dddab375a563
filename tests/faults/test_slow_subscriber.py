"""A subscriber that stops reading (SIGSTOP) does not slow the daemon or the other subscribers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.daemon import Daemon, event_keys, stream_entry, wait_until
from tests.support.mosquitto import Mosquitto, Subscriber

pytestmark = pytest.mark.slow  # real daemon processes

# A QoS-1 subscriber with a persistent session and a tiny receive buffer, in its own process.
SLOW_CLIENT = """
import socket, sys, paho.mqtt.client as mqtt
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="slow", clean_session=False)
c.on_connect = lambda c, *a: c.subscribe("birdstream/#", qos=1)
c.on_message = lambda *a: None
c.on_subscribe = lambda *a: print("SUBSCRIBED", flush=True)
c.on_socket_open = lambda c, u, s: s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
c.connect("127.0.0.1", int(sys.argv[1]), keepalive=5)
c.loop_forever()
"""


def test_a_paused_subscriber_does_not_hold_back_the_daemon(
        daemons: Callable[..., Daemon], broker: Mosquitto, visits: Path, blue_visits: Path) -> None:
    slow = subprocess.Popen([sys.executable, "-c", SLOW_CLIENT, str(broker.port)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert slow.stdout is not None and slow.stdout.readline().strip() == "SUBSCRIBED"
        slow.send_signal(signal.SIGSTOP)
        with Subscriber(broker.port, ["birdstream/test/+/sighting"]) as sub:
            daemon = daemons([
                stream_entry("red", visits, realtime=True, loop=True, sample_fps=4),
                stream_entry("blue", blue_visits, realtime=True, loop=True, sample_fps=4),
            ], mqtt_port=broker.port, extra={"mqtt": {"publish_snapshots": True}})  # big retained JPEGs too
            with daemon.start():
                ends = lambda msgs: sum(json.loads(m.payload)["event"] == "end" for m in msgs)  # noqa: E731
                sub.wait_until(lambda msgs: ends(msgs) >= 6, timeout=90)
                # Everything logged so far went out: nothing piles up in the outbox for the paused client.
                keys = event_keys(daemon.events())
                sub.wait_until(lambda msgs: event_keys(json.loads(m.payload) for m in msgs) >= keys, timeout=30)
                wait_until(lambda: daemon.outbox_count() == 0, 30, "outbox drained")
                assert daemon.running and slow.poll() is None
                assert daemon.terminate() == 0
        assert "Traceback" not in daemon.log_text()
        assert event_keys(json.loads(m.payload) for m in sub.messages) == event_keys(daemon.events())
    finally:
        slow.send_signal(signal.SIGCONT)
        slow.kill()
        slow.wait(10)
        if slow.stdout is not None:
            slow.stdout.close()
