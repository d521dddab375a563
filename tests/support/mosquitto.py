"""A real mosquitto broker on a free loopback port, and a subscriber that records what it sees.

Usage::

    from tests.support.mosquitto import Mosquitto, Subscriber, make_tls_files

    with Mosquitto(tmp_path) as broker:              # plain listener on broker.port
        with Subscriber(broker.port, ["birdstream/#"]) as sub:
            ...
            sub.wait_for(lambda m: m.topic.endswith("/status"), timeout=5)
        broker.stop(); broker.start()                # same port after a restart

Options: ``users={"name": "password"}`` (password file made with ``mosquitto_passwd -b``,
anonymous access then refused), ``tls=make_tls_files(tmp_path / "pki")`` (adds a TLS listener on
``broker.tls_port``; ``require_certificate=True`` asks clients for a certificate signed by the same
CA), ``persistence=True``, ``settings=["max_packet_size 4096"]`` (more global mosquitto.conf lines).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

HOST = "127.0.0.1"


def mosquitto_binary() -> str:
    """The broker binary: on PATH, else Debian's location."""
    return shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def mosquitto_passwd_binary() -> str:
    return shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway PKI: one CA, a server certificate for 127.0.0.1/localhost, a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_tls_files(folder: Path) -> TlsFiles:
    """Generate a CA, a server cert (SAN 127.0.0.1, localhost) and a client cert with the openssl CLI."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=birdstream test CA",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=folder)
    (folder / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    (folder / "client.ext").write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    for name, cn in (("server", "localhost"), ("client", "birdstream-client")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=folder)
    return TlsFiles(
        ca=folder / "ca.crt",
        server_cert=folder / "server.crt",
        server_key=folder / "server.key",
        client_cert=folder / "client.crt",
        client_key=folder / "client.key",
    )


class Mosquitto:
    """One mosquitto process with a generated config; start/stop/restart keep the same ports."""

    def __init__(
        self,
        folder: Path,
        *,
        users: dict[str, str] | None = None,
        tls: TlsFiles | None = None,
        require_certificate: bool = False,
        persistence: bool = False,
        port: int | None = None,
        settings: Iterable[str] = (),
    ) -> None:
        self.folder = Path(folder) / f"mosquitto-{os.getpid()}-{id(self):x}"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.port = port or free_port()
        self.tls_port = free_port() if tls else None
        self.tls = tls
        self.log_path = self.folder / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._settings = list(settings)
        self.config_path = self._write_config(users, tls, require_certificate, persistence)

    def _write_config(
        self, users: dict[str, str] | None, tls: TlsFiles | None, require_certificate: bool, persistence: bool
    ) -> Path:
        lines = [
            "per_listener_settings false",
            f"allow_anonymous {'false' if users else 'true'}",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {self.folder}/",
            f"log_dest file {self.log_path}",
            "log_type all",
            "connection_messages true",
            *self._settings,
            f"listener {self.port} {HOST}",
        ]
        if os.geteuid() == 0:
            lines.insert(0, "user root")  # otherwise it drops to 'mosquitto', which cannot read tmp files
        if users:
            pw = self.folder / "passwd"
            pw.touch(mode=0o600)
            for name, password in users.items():
                subprocess.run([mosquitto_passwd_binary(), "-b", str(pw), name, password],
                               check=True, capture_output=True, timeout=30)
            lines.insert(0, f"password_file {pw}")
        if tls:
            lines += [
                f"listener {self.tls_port} {HOST}",
                f"cafile {tls.ca}",
                f"certfile {tls.server_cert}",
                f"keyfile {tls.server_key}",
                f"require_certificate {'true' if require_certificate else 'false'}",
            ]
        path = self.folder / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> Mosquitto:
        if self.running:
            return self
        self._proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.wait_listening(timeout)
        return self

    def wait_listening(self, timeout: float = 10.0) -> None:
        """Block until every listener accepts TCP connections, or raise with the broker's log."""
        deadline = time.monotonic() + timeout
        ports = [p for p in (self.port, self.tls_port) if p]
        while True:
            if self._proc is None or self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc and self._proc.stderr else ""
                raise RuntimeError(f"mosquitto exited: {err.strip()} {self.log_tail()}")
            if all(_accepts(self.host, p) for p in ports):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"mosquitto not listening on {ports} after {timeout}s: {self.log_tail()}")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the broker (SIGTERM) and wait until the port is free again."""
        self._end(kill=False, timeout=timeout)

    def kill(self, timeout: float = 10.0) -> None:
        self._end(kill=True, timeout=timeout)

    def _end(self, *, kill: bool, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill() if kill else proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if proc.stderr:
            proc.stderr.close()

    def restart(self, timeout: float = 10.0) -> None:
        self.stop(timeout)
        self.start(timeout)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int

    @property
    def text(self) -> str:
        return self.payload.decode()


class Subscriber:
    """An MQTT 5 client that records every message on its topics.

    ``persistent_session=True`` keeps the session on the broker across reconnects (use it with a
    ``Mosquitto(persistence=True)`` when the test restarts the broker and must see every message).
    Subscriptions use retain-as-published, so ``retain`` is the flag the publisher set, also for
    live messages. Messages retained before the subscription arrive first with ``retain=True``.
    """

    def __init__(
        self,
        port: int,
        topics: Iterable[str] = ("#",),
        *,
        host: str = HOST,
        qos: int = 1,
        username: str | None = None,
        password: str | None = None,
        tls_ca: Path | None = None,
        timeout: float = 10.0,
        persistent_session: bool = False,
        client_id: str | None = None,
    ) -> None:
        self._cond = threading.Condition()
        self._messages: list[Message] = []
        self._subscribed = threading.Event()
        self._topics = list(topics)
        self._qos = qos
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{os.getpid()}-{id(self):x}",
            protocol=mqtt.MQTTv5,
        )
        if username:
            self.client.username_pw_set(username, password)
        if tls_ca:
            self.client.tls_set(ca_certs=str(tls_ca))
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]
        if persistent_session:
            # The broker keeps the subscription (and queues QoS-1 messages) while this client is
            # away; with a persistent broker (persistence=True) that survives a broker restart too.
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 600
            self.client.connect(host, port, keepalive=30, clean_start=False, properties=props)
        else:
            self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            self.close()
            raise TimeoutError(f"subscriber could not subscribe to {self._topics} on {host}:{port}")

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        opts = mqtt.SubscribeOptions(qos=self._qos, retainAsPublished=True)
        client.subscribe([(t, opts) for t in self._topics])

    def _on_subscribe(self, *args: object) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self._messages.append(Message(msg.topic, bytes(msg.payload), bool(msg.retain), int(msg.qos)))
            self._cond.notify_all()

    @property
    def messages(self) -> list[Message]:
        with self._cond:
            return list(self._messages)

    def on_topic(self, topic: str) -> list[Message]:
        return [m for m in self.messages if m.topic == topic]

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()

    def wait_for(self, predicate: Callable[[Message], bool], timeout: float = 10.0, count: int = 1) -> list[Message]:
        """Wait until ``count`` recorded messages satisfy ``predicate``; return them (oldest first)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hits = [m for m in self._messages if predicate(m)]
                if len(hits) >= count:
                    return hits
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(m.topic, m.payload[:80]) for m in self._messages[-10:]]
                    raise TimeoutError(f"{len(hits)}/{count} matching messages after {timeout}s; last seen {seen}")
                self._cond.wait(left)

    def wait_until(self, condition: Callable[[list[Message]], bool], timeout: float = 10.0) -> list[Message]:
        """Wait until ``condition(all messages)`` holds; return the messages."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not condition(self._messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"condition not met after {timeout}s; {len(self._messages)} messages seen")
                self._cond.wait(left)
            return list(self._messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def retained_messages(port: int, topics: Iterable[str] = ("#",), timeout: float = 10.0) -> dict[str, bytes]:
    """Topic -> payload of every message the broker holds retained under ``topics``, complete.

    The broker sends a new subscription's retained messages before it forwards anything published
    afterwards, so once a marker published after subscribing comes back, every retained one is in.
    """
    marker = f"birdstream-test/barrier/{uuid.uuid4().hex}"
    with Subscriber(port, [*topics, marker], timeout=timeout) as sub:
        sub.client.publish(marker, b"", qos=1)
        sub.wait_for(lambda m: m.topic == marker, timeout=timeout)
        return {m.topic: m.payload for m in sub.messages if m.retain and m.topic != marker}
