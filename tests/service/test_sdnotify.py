"""sd_notify against real AF_UNIX datagram sockets (path and abstract namespace)."""

from __future__ import annotations

import os
import uuid

from birdstream.service.sdnotify import Notifier, watchdog_interval
from tests.support.notify import NotifyReceiver


def test_messages_reach_a_path_socket(notify_socket: NotifyReceiver) -> None:
    with Notifier(notify_socket.address) as notifier:
        assert notifier.enabled
        assert notifier.ready("1/1 streams running")
        assert notifier.watchdog()
        assert notifier.status("multi\nline")
        assert notifier.stopping()
    notify_socket.wait_for(lambda m: m == "STOPPING=1")
    assert notify_socket.messages == ["READY=1\nSTATUS=1/1 streams running", "WATCHDOG=1", "STATUS=multi line",
                                      "STOPPING=1"]


def test_abstract_namespace_socket() -> None:
    receiver = NotifyReceiver(f"@birdstream-test-{uuid.uuid4().hex}")
    try:
        Notifier(receiver.address).watchdog()
        receiver.wait_for(lambda m: m == "WATCHDOG=1")
    finally:
        receiver.close()


def test_unset_socket_is_a_no_op(monkeypatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier.from_env()
    assert not notifier.enabled and notifier.ready() is False


def test_vanished_manager_does_not_raise(tmp_path) -> None:
    notifier = Notifier(str(tmp_path / "gone.sock"))
    assert notifier.watchdog() is False
    assert notifier.watchdog() is False


def test_watchdog_interval() -> None:
    me = str(os.getpid())
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": me}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None  # meant for another process
    assert watchdog_interval({"WATCHDOG_USEC": "junk"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
