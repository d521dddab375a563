"""Publisher against a real mosquitto: topics, retain flags, QoS, order, outages, auth, TLS."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import jsonschema
import pytest

from birdstream.config import config_from_dict
from birdstream.publish import Publisher, TlsOptions, load_schema
from birdstream.publish.client import CLIENT_ID_FILE
from birdstream.station import wiring
from tests.publish.conftest import wait_until
from tests.support.mosquitto import Message, Mosquitto, Subscriber, TlsFiles
from tests.support.sightings import make_status, sighting
from tests.support.options import mqtt_options

P = "birdstream/garden"


def _events(msgs: list[Message], suffix: str = "/sighting") -> list[dict]:
    return [json.loads(m.payload) for m in msgs if m.topic.endswith(suffix)]


def _first_seen(events: list[dict]) -> list[tuple[str, int]]:
    """(id, seq) in arrival order with QoS-1 duplicates dropped, as a subscriber does."""
    seen: list[tuple[str, int]] = []
    for e in events:
        key = (e["id"], e["seq"])
        if key not in seen:
            seen.append(key)
    return seen


def test_topics_retain_qos_and_payloads(broker: Mosquitto, make_publisher) -> None:
    schema = load_schema("sighting")
    with Subscriber(broker.port, ["birdstream/#"]) as sub:
        pub: Publisher = make_publisher(broker.port)
        events = list(sighting(3))
        pub.publish_status(make_status("feeder", "running"))
        for e in events:
            pub.publish(e)
        sub.wait_for(lambda m: m.topic == f"{P}/feeder/last" and json.loads(m.payload)["seq"] == 2)
        online = sub.wait_for(lambda m: m.topic == f"{P}/status")[0]
        assert (online.payload, online.retain, online.qos) == (b"online", True, 1)
        sightings = sub.on_topic(f"{P}/feeder/sighting")
        assert [json.loads(m.payload) for m in sightings] == [e.to_payload() for e in events]
        assert all(not m.retain and m.qos == 1 for m in sightings)
        assert all(m.retain and m.qos == 1 for m in sub.on_topic(f"{P}/feeder/last"))
        (status,) = sub.wait_for(lambda m: m.topic == f"{P}/feeder/status")
        assert status.retain and json.loads(status.payload)["state"] == "running"
        for m in sightings:
            jsonschema.validate(json.loads(m.payload), schema)
        jsonschema.validate(json.loads(status.payload), load_schema("stream-status"))
        wait_until(lambda: pub.backlog == 0, what="outbox empty")

    # A late subscriber gets the retained state: online, the last event, the stream status.
    with Subscriber(broker.port, ["birdstream/#"]) as late:
        late.wait_for(lambda m: m.retain, count=3)
        retained = {m.topic: m.payload for m in late.messages if m.retain}
        assert retained[f"{P}/status"] == b"online"
        assert json.loads(retained[f"{P}/feeder/last"]) == events[-1].to_payload()
        assert f"{P}/feeder/sighting" not in retained

    pub.close(2.0)
    with Subscriber(broker.port, [f"{P}/status"]) as after:
        assert after.wait_for(lambda m: m.retain)[0].payload == b"offline"


def test_broker_down_at_start_then_restarted_mid_run(tmp_path: Path, make_publisher, caplog) -> None:
    """Everything published while the broker is away arrives once it is back, in order per sighting."""
    broker = Mosquitto(tmp_path, persistence=True)  # the subscriber's session survives the restart
    caplog.set_level(logging.WARNING, logger="birdstream.publish")
    pub: Publisher = make_publisher(broker.port)
    a, b = list(sighting(6, stream="feeder")), list(sighting(6, stream="pond"))
    for e in a[:3] + b[:3]:
        pub.publish(e)
    assert pub.flush(10)
    assert pub.backlog >= 6
    wait_until(lambda: any(f"127.0.0.1:{broker.port}" in r.getMessage() for r in caplog.records), what="log line")
    unreachable = [r for r in caplog.records if "cannot reach MQTT broker" in r.getMessage()]
    assert len(unreachable) == 1  # one line, not one per retry

    with _started_later(broker) as sub:
        wait_until(lambda: pub.backlog == 0, what="backlog sent after the broker came back")
        broker.stop()  # mid-run outage
        for e in a[3:] + b[3:]:
            pub.publish(e)
        assert pub.flush(10)
        broker.start()
        sub.wait_until(lambda msgs: len(_first_seen(_events(msgs))) == 12, timeout=15)
    got = _first_seen(_events(sub.messages))
    for events in (a, b):
        want = [(e.id, e.seq) for e in events]
        assert [k for k in got if k[0] == events[0].id] == want


class _started_later:
    """A subscriber (re)connecting to a broker that is started now; it reconnects after restarts."""

    def __init__(self, broker: Mosquitto) -> None:
        self.broker = broker

    def __enter__(self) -> Subscriber:
        self.broker.start()
        self.sub = Subscriber(self.broker.port, ["birdstream/#"], persistent_session=True)
        return self.sub

    def __exit__(self, *exc: object) -> None:
        self.sub.close()
        self.broker.stop()


def test_wrong_password_is_one_clear_line_and_events_are_kept(tmp_path: Path, make_publisher, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="birdstream.publish")
    failures_before = _connect_failures()
    with Mosquitto(tmp_path, users={"garden": "right-pass"}) as b:
        pub: Publisher = make_publisher(b.port, mqtt={"username": "garden", "password": "not-the-pass"})
        events = list(sighting(2))
        for e in events:
            pub.publish(e)
        wait_until(lambda: any("refused" in r.getMessage() for r in caplog.records), what="refusal logged")
        assert pub.flush(5)
        # Let paho retry a few times: still one line.
        wait_until(lambda: _connect_failures() - failures_before >= 3, what="several retries")
        lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(lines) == 1
        assert f"127.0.0.1:{b.port}" in lines[0] and "not-the-pass" not in lines[0]
        assert pub.backlog == 3 and not pub.connected  # 2 sighting messages + the latest `last`
        assert all("not-the-pass" not in r.getMessage() for r in caplog.records)
        pub.close(0.2)

        # The same state_dir with the right password delivers what was kept.
        with Subscriber(b.port, ["birdstream/#"], username="garden", password="right-pass") as sub:
            make_publisher(b.port, mqtt={"username": "garden", "password": "right-pass"})
            got = sub.wait_for(lambda m: m.topic.endswith("/sighting"), count=2)
        assert [json.loads(m.payload)["seq"] for m in got] == [0, 1]
    assert "not-the-pass" not in "".join(p.read_text(errors="replace") for p in (tmp_path / "state").rglob("*")
                                         if p.is_file() and p.suffix != ".jpg")


def _connect_failures() -> float:
    from birdstream.publish import metrics

    return metrics.MQTT_CONNECT_FAILURES._value.get()


def test_tls_password_file_and_client_certificate(tmp_path: Path, tls_files: TlsFiles, make_publisher) -> None:
    secret = tmp_path / "mqtt-password"
    secret.write_text("tls-pass\n")
    with Mosquitto(tmp_path, users={"garden": "tls-pass"}, tls=tls_files, require_certificate=True) as b:
        assert b.tls_port
        with Subscriber(b.port, ["birdstream/#"], username="garden", password="tls-pass") as sub:
            config = config_from_dict({"mqtt": {
                "host": "localhost", "port": b.tls_port, "username": "garden", "password_file": str(secret),
                "tls": {"ca_file": str(tls_files.ca), "cert_file": str(tls_files.client_cert),
                        "key_file": str(tls_files.client_key)},
            }}, base_dir=tmp_path, require_streams=False)
            opts = wiring.mqtt_options(config.mqtt)  # as the daemon builds them: the password read from its file
            pub = make_publisher(b.tls_port, mqtt={"host": opts.host, "username": opts.username,
                                                   "password": opts.password, "tls": opts.tls})
            (event,) = list(sighting(2))[:1]
            pub.publish(event)
            (msg,) = sub.wait_for(lambda m: m.topic == f"{P}/feeder/sighting")
            assert json.loads(msg.payload)["id"] == event.id
            assert pub.connected


def test_tls_missing_ca_file_names_the_key(tmp_path: Path, make_publisher) -> None:
    from birdstream.errors import PublishError

    with pytest.raises(PublishError, match=r"mqtt\.tls\.ca_file: .*nope\.crt does not exist"):
        make_publisher(1883, mqtt={"tls": TlsOptions(ca_file=tmp_path / "nope.crt", cert_file=None, key_file=None,
                                                                   insecure=False)})


def test_mqtt_311_and_stable_client_id(broker: Mosquitto, make_publisher, tmp_path: Path) -> None:
    with Subscriber(broker.port, ["birdstream/#"]) as sub:
        pub = make_publisher(broker.port, mqtt={"protocol": "3.1.1"})
        (event,) = list(sighting(2))[:1]
        pub.publish(event)
        sub.wait_for(lambda m: m.topic == f"{P}/feeder/sighting")
        cid = (tmp_path / "state" / CLIENT_ID_FILE).read_text().strip()
        assert cid.startswith("birdstream-garden-") and len(cid) > len("birdstream-garden-")
        pub.close(1.0)
        pub2 = make_publisher(broker.port)
        wait_until(lambda: pub2.connected, what="second connection")
        assert (tmp_path / "state" / CLIENT_ID_FILE).read_text().strip() == cid
        assert cid in broker.log_tail(100_000)
    with pytest.raises(Exception, match="protocol"):
        mqtt_options(protocol="4")


def test_odd_species_names_round_trip(broker: Mosquitto, make_publisher, tmp_path: Path) -> None:
    names = ['Bubo "ascalaphus"', "Ammomanes deserti \\ desert lark", "Čáp bílý 🐦", "قطا", "it's\nnewline"]
    with Subscriber(broker.port, ["birdstream/#"]) as sub:
        pub = make_publisher(broker.port)
        sent = [list(sighting(2, species=n))[0] for n in names]
        for e in sent:
            pub.publish(e)
        got = sub.wait_for(lambda m: m.topic.endswith("/sighting"), count=len(names))
        assert pub.flush(5)
    assert [json.loads(m.payload)["species"] for m in got] == names
    lines = (tmp_path / "state" / "sightings.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["species"] for line in lines] == names
    for line in lines:
        jsonschema.validate(json.loads(line), load_schema("sighting"))


def test_broker_stopped_with_messages_in_flight(tmp_path: Path, make_publisher) -> None:
    """A broker killed while PUBACKs are outstanding: nothing lost, first arrivals stay in order."""
    broker = Mosquitto(tmp_path, persistence=True)
    with _started_later(broker) as sub:
        pub: Publisher = make_publisher(broker.port, mqtt={"max_inflight": 4})
        wait_until(lambda: pub.connected, what="connected")
        events = list(sighting(120))
        for e in events:
            pub.publish(e)
        sub.wait_for(lambda m: m.topic.endswith("/sighting"), count=5)
        broker.stop()  # in-flight messages lose their PUBACK; the session store survives (persistence)
        broker.start()
        sub.wait_until(lambda msgs: len(_first_seen(_events(msgs))) == len(events), timeout=20)
        wait_until(lambda: pub.backlog == 0, what="outbox drained")
    assert _first_seen(_events(sub.messages)) == [(e.id, e.seq) for e in events]


def test_a_password_over_plain_tcp_to_another_host_is_warned_once(tmp_path: Path, make_publisher, caplog) -> None:
    secret = "plain-secret-9876"
    caplog.set_level(logging.WARNING, logger="birdstream.publish.mqtt")
    # 192.0.2.1 (TEST-NET-1) never answers: the warning is about the configuration, before any connection.
    make_publisher(1883, state_dir=tmp_path / "a", mqtt={"host": "192.0.2.1", "username": "u", "password": secret})
    warned = [r.getMessage() for r in caplog.records if "plain TCP" in r.getMessage()]
    assert len(warned) == 1 and "192.0.2.1:1883" in warned[0] and "mqtt.tls" in warned[0]
    assert secret not in caplog.text
    caplog.clear()
    make_publisher(1883, state_dir=tmp_path / "b", mqtt={"host": "127.0.0.1", "username": "u", "password": secret})
    make_publisher(8883, state_dir=tmp_path / "c", mqtt={"host": "192.0.2.1", "username": "u", "password": secret,
                                                         "tls": TlsOptions(ca_file=None, cert_file=None, key_file=None,
                                                                                 insecure=False)})
    assert "plain TCP" not in caplog.text


def test_tls_insecure_still_verifies_the_certificate_chain(tmp_path: Path, tls_files: TlsFiles,
                                                            make_publisher) -> None:
    """``tls.insecure`` skips the host name check only: a broker whose certificate another CA signed is refused."""
    from tests.support.mosquitto import make_tls_files

    other = make_tls_files(tmp_path / "other-pki")
    with Mosquitto(tmp_path, tls=tls_files) as b:
        assert b.tls_port
        wrong = make_publisher(b.tls_port, state_dir=tmp_path / "wrong",
                               mqtt={"tls": TlsOptions(ca_file=other.ca, cert_file=None, key_file=None, insecure=True)})
        right = make_publisher(b.tls_port, state_dir=tmp_path / "right",
                               mqtt={"tls": TlsOptions(ca_file=tls_files.ca, cert_file=None, key_file=None, insecure=True)})
        wait_until(lambda: right.connected, 15)
        assert not wrong.connected
