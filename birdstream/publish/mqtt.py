"""The MQTT sink: drains the durable outbox to the broker over paho-mqtt 2.x, QoS 1, in order.

One thread owns the outbox: it stores what the publisher submits, hands at most ``max_inflight``
rows to paho (row order is send order, so per-sighting order holds), and deletes a row when its
PUBACK arrives. paho's own loop thread does the network and reconnects with backoff.

After a lost connection this sink re-sends every unacknowledged row itself, oldest first, with new
message ids, and drops paho's own copies in on_connect (before paho would re-send them): a copy
paho kept re-sending would bring a message the broker refuses (one over its packet limit) back on
every connection, past any decision to set it aside. QoS 1 still allows duplicates, which
subscribers drop by ``(id, seq)``. After a restart the whole outbox is sent from its first row.

Packet limits: an MQTT 5 broker's Maximum-Packet-Size (CONNACK) or ``max_packet_bytes`` bounds what
is sent; snapshots are shrunk to fit, other messages over it are set aside. A broker that announces
nothing and just drops the connection is found out by sending one row at a time after a loss: a row
alone in flight at three losses in a row is set aside (``fit.Refusals``), and later rows go on.
"""

from __future__ import annotations

import collections
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from birdstream.publish import discovery, metrics
from birdstream.publish.client import CLIENT_ID_FILE, paho_client, stable_client_id
from birdstream.publish.fit import PacketFit, Refusals, max_packet_size
from birdstream.publish.options import MqttOptions
from birdstream.publish.outbox import OutMessage, Outbox, is_corrupt
from birdstream.publish.payload import OFFLINE, ONLINE, Topics, encode
from birdstream.publish.sinks import wait_queue_done

log = logging.getLogger(__name__)

__all__ = ["CLIENT_ID_FILE", "MqttSink", "stable_client_id"]

class MqttSink:
    """Connection, outbox draining, Last Will and Home Assistant discovery for one station."""

    def __init__(
        self,
        *,
        station: str,
        state_dir: Path,
        options: MqttOptions,
        outbox: Outbox,
        topics: Topics,
        queue_size: int = 10_000,
    ) -> None:
        self.options = options
        self.topics = topics
        self.outbox = outbox
        self.client_id = stable_client_id(state_dir, station, options.client_id)
        self._in: queue.Queue[list[OutMessage]] = queue.Queue(maxsize=queue_size)
        self._acks: collections.deque[tuple[int, Any]] = collections.deque()
        self._control: collections.deque[tuple[str, str]] = collections.deque()
        self._wake = threading.Event()
        self._inflight: dict[int, int] = {}  # paho mid -> outbox row id
        self._cursor = 0  # highest row id handed to paho
        self._pending: list[OutMessage] = []  # failed to store; retried
        self._streams: set[str] = set()
        self._removed: set[str] = set()  # streams cleared by remove_stream and not added since
        self._removed_lock = threading.Lock()
        self._connected = False
        self._problem: str | None = None
        self._closing = False
        self._deadline = 0.0
        self._store_failed = False
        self._delete_failed = False
        self._volatile_sent = 0  # messages sent from memory while the outbox could not store them
        self._volatile_inflight: dict[int, OutMessage] = {}  # paho mid -> such a message, until its PUBACK
        self._unstored = 0  # queue items taken but not yet committed to the outbox
        self._losses = 0  # connection losses seen by paho's thread
        self._losses_handled = 0
        self._step_error: str | None = None
        self._fit = PacketFit(options.max_packet_bytes, v5=options.protocol == "5")
        self._refusals = Refusals()
        self._thread = threading.Thread(target=self._run, name="publish:mqtt", daemon=True)
        self.client = self._make_client()

    # -- setup ---------------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        client = paho_client(self.options, self.client_id, will_topic=self.topics.status)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        kwargs: dict[str, Any] = {"clean_start": True} if self.options.protocol == "5" else {}
        self.client.connect_async(self.options.host, self.options.port, self.options.keepalive_s, **kwargs)
        self.client.loop_start()
        self._thread.start()

    # -- the caller's side ------------------------------------------------------------------------
    def submit(self, messages: Sequence[OutMessage]) -> bool:
        """Queue messages for the outbox; never blocks. False (counted) when the queue is full."""
        try:
            self._in.put_nowait(list(messages))
        except queue.Full:
            metrics.SINK_DROPPED.labels(sink="mqtt").inc()
            log.error("MQTT sink queue full: %d message(s) dropped before reaching the outbox", len(messages))
            return False
        self._wake.set()
        return True

    def add_stream(self, stream: str) -> None:
        """Announce a stream to Home Assistant (once per connection and on HA's birth message)."""
        with self._removed_lock:
            back = stream in self._removed
            self._removed.discard(stream)
        self._control.append(("stream", stream))
        self._wake.set()
        if back and self.options.discovery:
            # Back after a removal whose clearing may still wait in the outbox: announce through the
            # outbox too, so Home Assistant gets the documents after the clearing, not before.
            self.submit([OutMessage(topic, encode(doc), True, None) for topic, doc in
                         discovery.documents(self.topics, stream, self.options.discovery_prefix).items()])

    def remove_stream(self, stream: str) -> bool:
        """Clear a stream that is gone: empty retained payloads on its ``last``, ``status`` and
        ``snapshot`` topics and (with discovery) its Home Assistant config topics, which removes its
        entities. Through the outbox, after everything submitted before; each replaces a pending
        message of the same topic. The stream is no longer announced."""
        messages = [OutMessage(topic, b"", True, key) for topic, key in self.topics.retained(stream).values()]
        if self.options.discovery:
            messages += [OutMessage(topic, b"", True, None)
                         for topic in discovery.documents(self.topics, stream, self.options.discovery_prefix)]
        with self._removed_lock:
            self._removed.add(stream)
        self._control.append(("remove", stream))
        return self.submit(messages)

    def wait_stored(self, deadline: float) -> bool:
        """Wait (until the monotonic deadline) until every submitted message is in the outbox."""
        self._wake.set()
        return wait_queue_done(self._in, deadline)

    @property
    def backlog(self) -> int:
        return len(self.outbox) + self._in.qsize() + len(self._pending)

    @property
    def connected(self) -> bool:
        return self._connected

    def close(self, grace_s: float) -> int:
        """Drain up to grace_s, publish ``offline``, disconnect; return what stays in the outbox."""
        self._deadline = time.monotonic() + max(grace_s, 0.0)
        self._closing = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(max(grace_s, 0.0) + 5.0)
        if self._connected:
            try:
                self.client.publish(self.topics.status, OFFLINE, qos=1, retain=True).wait_for_publish(2.0)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()
        self._connected = False
        metrics.MQTT_CONNECTED.set(0)
        left = self.backlog
        if not self._thread.is_alive():
            self.outbox.close()
        if left:
            log.info("%d message(s) stay in the outbox %s for the next start", left, self.outbox.path)
        return left

    # -- paho callbacks (paho's thread) ------------------------------------------------------------
    def _report(self, problem: str, message: str) -> None:
        """One line per distinct problem, not one per retry."""
        if problem != self._problem:
            self._problem = problem
            log.warning("%s", message)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, props: Any) -> None:
        if reason_code.is_failure:
            metrics.MQTT_CONNECT_FAILURES.inc()
            self._report(
                f"refused {reason_code}",
                f"MQTT broker {self.options.endpoint} refused the connection: {reason_code}"
                f" (retrying; events wait in the outbox)"
            )
            return
        self._fit.broker_max = max_packet_size(props)
        client.drop_out_messages()  # the sink re-sends every unacknowledged row itself (module notes)
        self._connected = True
        self._problem = None
        metrics.MQTT_CONNECTS.inc()
        metrics.MQTT_CONNECTED.set(1)
        log.info("connected to MQTT broker %s as %s", self.options.endpoint, self.client_id)
        client.publish(self.topics.status, ONLINE, qos=1, retain=True)
        if self.options.discovery:
            client.subscribe(discovery.ha_status_topic(self.options.discovery_prefix), qos=1)
            self._control.append(("discovery", ""))
        self._wake.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        metrics.MQTT_CONNECT_FAILURES.inc()
        self._report(
            "unreachable",
            f"cannot reach MQTT broker {self.options.endpoint}"
            f" (retrying; events wait in the outbox)"
        )

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, props: Any) -> None:
        was, self._connected = self._connected, False
        self._losses += 1
        metrics.MQTT_CONNECTED.set(0)
        if was and not self._closing:
            metrics.MQTT_DISCONNECTS.inc()
            self._report(
                "lost", f"lost the connection to MQTT broker {self.options.endpoint} ({reason_code}); retrying"
            )
        self._wake.set()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, props: Any) -> None:
        self._acks.append((mid, reason_code))
        self._wake.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == discovery.ha_status_topic(self.options.discovery_prefix) and msg.payload == b"online":
            self._control.append(("discovery", ""))
            self._wake.set()

    # -- the sink thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._step()
                self._step_error = None
            except sqlite3.DatabaseError as err:
                if is_corrupt(err):
                    self._outbox_corrupt(err)
                else:
                    self._step_failed(err)
            except Exception as err:  # noqa: BLE001 - keep the sink alive; the outbox keeps the messages
                self._step_failed(err)
            if self._closing and self._done_closing():
                return

    def _step_failed(self, err: Exception) -> None:
        """The traceback once per distinct error, not every half second for as long as it lasts."""
        metrics.SINK_ERRORS.labels(sink="mqtt").inc()
        text = f"{type(err).__name__}: {err}"
        if text != self._step_error:
            self._step_error = text
            log.exception("MQTT sink step failed (logged once while it keeps failing the same way)")

    def _outbox_corrupt(self, err: sqlite3.DatabaseError) -> None:
        """Corrupt under the running daemon: a fresh outbox (the outbox logs it), sent from its first row."""
        try:
            self.outbox.recover(err)
        except Exception as again:  # noqa: BLE001 - the broker still gets what is in memory
            self._step_failed(again)
            return
        self._cursor = 0
        self._inflight.clear()

    def _done_closing(self) -> bool:
        if time.monotonic() >= self._deadline:
            return True
        drained = self._in.empty() and not self._pending
        return drained and (not self._connected or len(self.outbox) == 0)

    def _step(self) -> None:
        self._store()
        self._apply_acks()
        if self._losses != self._losses_handled:
            self._losses_handled = self._losses
            if self._volatile_inflight:  # paho's copies are dropped in on_connect: they go again from here
                self._pending[:0] = list(self._volatile_inflight.values())  # in the order sent
                self._volatile_inflight.clear()
            if self._inflight:  # resend from the oldest unacknowledged row (see the module notes)
                rows = sorted(self._inflight.values())
                self._cursor = rows[0] - 1
                self._inflight.clear()
                refused = self._refusals.lost(rows)
                if refused is not None:
                    rows = [row for row in self.outbox.after(refused - 1, 1) if row.id == refused]
                    topic = rows[0].topic if rows else ""
                    if rows:
                        self._fit.refused(rows[0].topic, rows[0].payload)
                    self._set_aside(refused, "refused", f"the broker dropped the connection at each of "
                                                        f"{self._refusals.limit} tries to send it", topic)
        self._apply_control()
        if self._connected:
            self._fill_window()
            self._send_unstored()

    def _store(self) -> None:
        batch = self._pending
        self._pending = []
        while True:
            try:
                batch.extend(self._in.get_nowait())
            except queue.Empty:
                break
            self._unstored += 1
        if not batch:
            return
        try:
            self.outbox.put(batch)
            self._store_failed = False
            for _ in range(self._unstored):
                self._in.task_done()
            self._unstored = 0
        except sqlite3.Error as err:
            self._pending = batch  # kept in memory and retried: the disk may come back
            if is_corrupt(err):
                raise  # the sink thread replaces the outbox, then stores them
            metrics.SINK_ERRORS.labels(sink="outbox").inc()
            if not self._store_failed:
                log.error("outbox %s: cannot store %d message(s) (%s); sending them from memory meanwhile",
                          self.outbox.path, len(batch), err)
            self._store_failed = True
            over = len(self._pending) - self._in.maxsize
            if over > 0:  # broker away too: memory is all there is, and it is bounded
                del self._pending[:over]
                metrics.OUTBOX_DROPPED.labels(reason="unstored").inc(over)
                log.error("outbox %s: %d message(s) that could not be stored were dropped", self.outbox.path, over)
            return
        if self._volatile_sent:
            log.info("outbox %s stores messages again (%d were sent from memory meanwhile)",
                     self.outbox.path, self._volatile_sent)
            self._volatile_sent = 0

    def _send_unstored(self) -> None:
        """The outbox cannot store (disk full, read-only card): deliver from memory rather than not at all.

        Only after every stored row went out, so order holds. These messages are not durable: a
        crash before their PUBACK loses them from MQTT (sightings.jsonl, if writable, has them); a lost
        connection puts the unacknowledged ones back in front of the pending ones.
        """
        if not (self._store_failed and self._pending) or self.outbox.after(self._cursor, 1):
            return
        sent = 0
        for msg in self._pending:
            info = self.client.publish(msg.topic, msg.payload, qos=1, retain=msg.retain)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                break
            self._volatile_inflight[info.mid] = msg
            sent += 1
        del self._pending[:sent]
        self._volatile_sent += sent

    def _apply_acks(self) -> None:
        done: list[int] = []
        while self._acks:
            mid, reason = self._acks.popleft()
            row_id = self._inflight.pop(mid, None)
            if row_id is None:
                self._volatile_inflight.pop(mid, None)
                continue  # status / discovery messages are not in the outbox
            self._refusals.delivered(row_id)
            if getattr(reason, "is_failure", False):
                metrics.OUTBOX_DROPPED.labels(reason="rejected").inc()
                log.error("MQTT broker %s rejected a message (%s); dropped", self.options.endpoint, reason)
            else:
                metrics.MQTT_SENT.inc()
            done.append(row_id)
        try:
            self.outbox.delete(done)
            self._delete_failed = False
        except sqlite3.Error as err:  # they stay and go again after a restart: duplicates, not losses
            if is_corrupt(err):
                raise
            metrics.SINK_ERRORS.labels(sink="outbox").inc()
            if not self._delete_failed:
                log.error("outbox %s: cannot remove delivered messages (%s); they may be sent twice",
                          self.outbox.path, err)
            self._delete_failed = True

    def _apply_control(self) -> None:
        announce: set[str] = set()
        while self._control:
            what, stream = self._control.popleft()
            if what == "stream" and stream not in self._streams:
                self._streams.add(stream)
                announce.add(stream)
            elif what == "remove":
                self._streams.discard(stream)
                announce.discard(stream)
            elif what == "discovery":
                announce |= self._streams
        if announce and self._connected and self.options.discovery:
            for stream in sorted(announce):
                for topic, doc in discovery.documents(self.topics, stream, self.options.discovery_prefix).items():
                    self.client.publish(topic, encode(doc), qos=1, retain=True)

    def _set_aside(self, row_id: int, reason: str, why: str, topic: str = "") -> None:
        try:
            self.outbox.set_aside(row_id, reason)
        except sqlite3.Error as err:
            log.error("outbox %s: cannot set message %d aside (%s)", self.outbox.path, row_id, err)
            return
        metrics.OUTBOX_SET_ASIDE.labels(reason=reason).inc()
        log.error("MQTT broker %s cannot take outbox message %d%s: %s; set aside (table 'aside' of %s), "
                  "later messages go on", self.options.endpoint, row_id, f" to {topic}" if topic else "",
                  why, self.outbox.path)

    def _fill_window(self) -> None:
        window = self._refusals.window(self._cursor, self.options.max_inflight)
        room = window - len(self._inflight)
        if room <= 0:
            return
        for row in self.outbox.after(self._cursor, room):
            payload = self._fit.fitted(row.topic, row.payload)
            if payload is None:
                self._set_aside(row.id, "too_large", f"{len(row.payload)} bytes is over its packet limit of "
                                                     f"{self._fit.limit} bytes", row.topic)
                self._cursor = row.id
                continue
            try:
                info = self.client.publish(row.topic, payload, qos=1, retain=row.retain)
            except ValueError as err:  # e.g. a payload over the protocol's limit: it can never go
                metrics.OUTBOX_DROPPED.labels(reason="invalid").inc()
                log.error("cannot publish to %s (%s); dropped from the outbox", row.topic, err)
                self.outbox.delete([row.id])
                self._cursor = row.id
                continue
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                log.debug("publish to %s returned %s; retried later", row.topic, info.rc)
                return
            self._inflight[info.mid] = row.id
            self._cursor = row.id

