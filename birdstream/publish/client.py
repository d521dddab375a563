"""The paho-mqtt client of the MQTT sink: a stable client id, authentication, TLS, reconnect pacing."""

from __future__ import annotations

import ipaddress
import logging
import secrets
import ssl
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from birdstream.errors import PublishError
from birdstream.publish.options import MqttOptions
from birdstream.publish.payload import OFFLINE

log = logging.getLogger(__name__)

CLIENT_ID_FILE = "mqtt-client-id"


def stable_client_id(state_dir: Path, station: str, configured: str | None = None) -> str:
    """The configured id, else ``birdstream-<station>-<random>`` made once and kept in state_dir."""
    if configured:
        return configured
    path = Path(state_dir) / CLIENT_ID_FILE
    try:
        existing = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = ""
    except OSError as err:
        raise PublishError(f"MQTT client id file {path}: cannot read ({err.strerror or err})") from None
    if existing:
        return existing
    cid = f"birdstream-{station}-{secrets.token_hex(4)}"
    try:
        path.write_text(cid + "\n", encoding="utf-8")
    except OSError as err:
        raise PublishError(f"MQTT client id file {path}: cannot write ({err.strerror or err})") from None
    return cid


def paho_client(opts: MqttOptions, client_id: str, *, will_topic: str) -> mqtt.Client:
    """A configured, unconnected client whose will marks the station offline; PublishError names a
    missing or unusable TLS file."""
    v5 = opts.protocol == "5"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else True,
    )
    client.will_set(will_topic, OFFLINE, qos=1, retain=True)
    if opts.username is not None or opts.password is not None:
        client.username_pw_set(opts.username or "", opts.password)
    if opts.password and opts.tls is None and not is_loopback(opts.host):
        log.warning("MQTT broker %s: the password goes over plain TCP, readable by anyone on the network "
                    "between here and the broker; enable mqtt.tls", opts.endpoint)
    if opts.tls is not None:
        _set_tls(client, opts)
    client.reconnect_delay_set(opts.reconnect_min_s, opts.reconnect_max_s)  # type: ignore[arg-type]
    client.max_inflight_messages_set(opts.max_inflight + 16)  # room for status and discovery
    client.max_queued_messages_set(0)
    return client


def _set_tls(client: mqtt.Client, opts: MqttOptions) -> None:
    tls = opts.tls
    assert tls is not None
    for name, path in (("ca_file", tls.ca_file), ("cert_file", tls.cert_file), ("key_file", tls.key_file)):
        if path is not None and not Path(path).is_file():
            raise PublishError(f"mqtt.tls.{name}: {path} does not exist")
    try:
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
    except (ssl.SSLError, OSError, ValueError) as err:
        raise PublishError(f"mqtt.tls: cannot load the certificates ({err})") from None
    client.tls_insecure_set(tls.insecure)  # the host name check only: the chain is still verified


def is_loopback(host: str) -> bool:
    """A host name or address of this machine (a plain-TCP password to it never crosses a network)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
