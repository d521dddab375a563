"""Options and the non-blocking sink queues."""

from __future__ import annotations

import threading

from birdstream.publish import metrics
from birdstream.publish.sinks import SinkThread
from tests.support.options import mqtt_options


def test_the_password_stays_out_of_the_options_repr() -> None:
    assert "s3cret" not in repr(mqtt_options(password="s3cret-value"))


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
