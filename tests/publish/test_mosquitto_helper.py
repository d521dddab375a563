"""The broker helper itself: listening, restart on the same port, auth and TLS really enforced."""

from __future__ import annotations

import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.support.mosquitto import Mosquitto, Subscriber, TlsFiles


def _publish_once(port: int, topic: str, payload: bytes, **kw: object) -> None:
    with Subscriber(port, [topic], **kw) as sub:  # type: ignore[arg-type]
        sub.client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
        sub.wait_for(lambda m: m.topic == topic)


def test_restart_keeps_port_and_retained_need_persistence(broker: Mosquitto) -> None:
    port = broker.port
    _publish_once(port, "t/a", b"1")
    with Subscriber(port, ["t/#"]) as sub:
        (msg,) = sub.wait_for(lambda m: m.topic == "t/a")
        assert msg.retain and msg.payload == b"1" and msg.qos == 1
    broker.restart()
    assert broker.port == port and broker.running
    with Subscriber(port, ["t/#"]) as sub:
        sub.client.publish("t/b", b"2", qos=1).wait_for_publish(5)
        sub.wait_for(lambda m: m.topic == "t/b")
        assert not sub.on_topic("t/a")  # persistence off: retained state gone


def test_password_file_refuses_bad_password(tmp_path: Path) -> None:
    with Mosquitto(tmp_path, users={"station": "s3cret"}) as b:
        _publish_once(b.port, "t/a", b"x", username="station", password="s3cret")
        refused = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client.on_connect = lambda c, u, f, rc, p: refused.set() if rc.is_failure else None
        client.username_pw_set("station", "wrong")
        client.connect(b.host, b.port)
        client.loop_start()
        try:
            assert refused.wait(5)
            assert not client.is_connected()
        finally:
            client.disconnect()
            client.loop_stop()


def test_tls_listener(tmp_path: Path, tls_files: TlsFiles) -> None:
    with Mosquitto(tmp_path, tls=tls_files) as b:
        assert b.tls_port
        _publish_once(b.tls_port, "t/tls", b"x", tls_ca=tls_files.ca)
        with pytest.raises(Exception):
            Subscriber(b.tls_port, ["t/#"], timeout=1)  # plain MQTT on the TLS port
