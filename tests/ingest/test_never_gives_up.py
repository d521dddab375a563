"""A live camera that stays away for a night is retried for as long as the daemon runs."""

from __future__ import annotations

import random

from birdstream.ingest.reader import Backoff, StreamReader
from tests.support.options import source_spec


def test_backoff_at_attempt_2000_is_still_a_delay_within_its_bounds() -> None:
    b = Backoff(1.0, 60.0, random.Random(7))
    b.attempt = 2000  # about 33 hours of a camera away at 60 s a try
    delays = [b.next() for _ in range(5)]
    assert all(30.0 <= d <= 60.0 for d in delays), delays
    assert b.attempt == 2005


def test_a_missing_camera_is_still_retried_after_1100_attempts(collector, readers) -> None:
    # The old exponent overflowed at attempt 1024 and the stream went to `failed` for good.
    spec = source_spec("usb", "/dev/video97", backoff_min_s=0.0001, backoff_max_s=0.0001)
    r = StreamReader(spec, input_size=(8, 8), emit=collector.emit, on_status=collector.on_status)
    readers.append(r)
    r.start()
    collector.wait(lambda: r.status.reconnects >= 1100, timeout=120, what="1100 retries")
    status = r.status
    assert status.state == "reconnecting" and "not found" in status.error
    assert "failed" not in collector.states
