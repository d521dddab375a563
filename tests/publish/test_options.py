"""Secrets, options and the non-blocking sink queues."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from birdstream.errors import PublishError
from birdstream.publish import MqttOptions, credential_path, metrics, read_secret_file
from birdstream.publish.options import resolve_password
from birdstream.publish.sinks import SinkThread


def test_password_from_file_or_credentials_directory(tmp_path: Path) -> None:
    (tmp_path / "mqtt").write_text("s3cret-value\nignored\n")
    assert read_secret_file(tmp_path / "mqtt") == "s3cret-value"
    path = credential_path("mqtt", {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert resolve_password(MqttOptions(password_file=path)) == "s3cret-value"
    assert "s3cret" not in repr(MqttOptions(password="s3cret-value"))
    with pytest.raises(PublishError, match="CREDENTIALS_DIRECTORY"):
        credential_path("mqtt", {})
    with pytest.raises(PublishError, match=r"mqtt\.password_file: cannot read .*missing"):
        resolve_password(MqttOptions(password_file=tmp_path / "missing"))


def test_full_sink_queue_drops_without_blocking_the_caller() -> None:
    release = threading.Event()
    handled: list[int] = []

    def slow(item: int) -> None:
        release.wait(10)  # a wedged disk
        handled.append(item)

    sink: SinkThread[int] = SinkThread("test-slow", slow, maxsize=2)
    sink.start()
    before = metrics.SINK_DROPPED.labels(sink="test-slow")._value.get()
    accepted = [sink.submit(i) for i in range(10)]  # returns at once although the handler is stuck
    assert accepted.count(False) >= 7
    assert metrics.SINK_DROPPED.labels(sink="test-slow")._value.get() - before == accepted.count(False)
    release.set()
    assert sink.close(5)
    assert handled == [i for i, ok in enumerate(accepted) if ok]
