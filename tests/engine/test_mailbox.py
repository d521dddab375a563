"""Mailbox: latest-wins with counted drops, and a blocking mode that loses nothing."""

from __future__ import annotations

import threading

from birdstream.engine import Mailbox
from tests.engine.conftest import make_frame, sample


def _seqs(box: Mailbox) -> list[int]:
    out = []
    while (item := box.take()) is not None:
        out.append(item[1].seq)
    return out


def test_latest_wins_drops_oldest_and_counts() -> None:
    before = sample("birdstream_engine_dropped_frames_total", stream="mb-latest", reason="overflow")
    box = Mailbox("mb-latest", capacity=2)
    for seq in range(5):
        assert box.put(make_frame("mb-latest", seq))
        assert len(box) <= 2
    assert box.dropped == 3
    assert box.drops == {"overflow": 3}
    assert box.put_count == 5
    assert box.max_depth == 2
    after = sample("birdstream_engine_dropped_frames_total", stream="mb-latest", reason="overflow")
    assert after - before == 3
    assert sample("birdstream_engine_queue_depth", stream="mb-latest") == 2
    assert _seqs(box) == [3, 4]
    assert sample("birdstream_engine_queue_depth", stream="mb-latest") == 0


def test_closed_mailbox_refuses_frames() -> None:
    box = Mailbox("mb-closed", capacity=2)
    box.close()
    assert box.put(make_frame("mb-closed", 0)) is False
    assert len(box) == 0
    assert box.dropped == 0


def test_blocking_put_waits_for_room_and_drops_nothing() -> None:
    box = Mailbox("mb-block", capacity=2, blocking=True)
    box.put(make_frame("mb-block", 0))
    box.put(make_frame("mb-block", 1))
    returned = threading.Event()

    def producer() -> None:
        box.put(make_frame("mb-block", 2))
        returned.set()

    t = threading.Thread(target=producer)
    t.start()
    try:
        # The mailbox is full: the third put must still be waiting (it has no way to make room).
        assert not returned.wait(0.2)
        assert len(box) == 2
        assert box.take()[1].seq == 0
        assert returned.wait(5)
    finally:
        box.close()
        t.join(5)
    assert _seqs(box) == [1, 2]
    assert box.dropped == 0


def test_close_releases_a_blocked_put_promptly() -> None:
    box = Mailbox("mb-release", capacity=1, blocking=True)
    box.put(make_frame("mb-release", 0))
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(box.put(make_frame("mb-release", 1))))
    t.start()
    box.close()
    t.join(5)
    assert not t.is_alive()
    assert result == [False]
    assert box.dropped == 0


def test_consumer_side_counts_drops_and_closing_can_discard() -> None:
    before = sample("birdstream_engine_dropped_frames_total", stream="mb-api", reason="stale")
    box = Mailbox("mb-api", capacity=3)
    for seq in range(3):
        box.put(make_frame("mb-api", seq))
    assert box.has_frames
    enqueued, frame = box.take()
    assert frame.seq == 0 and enqueued > 0
    box.drop("stale")
    box.mark_classified(1)
    assert box.close(discard="shutdown") == 2
    assert not box.has_frames and box.take() is None
    assert box.drops == {"stale": 1, "shutdown": 2}
    assert box.classified == 1
    assert sample("birdstream_engine_dropped_frames_total", stream="mb-api", reason="stale") - before == 1
    assert sample("birdstream_engine_queue_depth", stream="mb-api") == 0
    assert box.put(make_frame("mb-api", 3)) is False


def test_the_engine_reaches_mailboxes_only_through_their_public_api() -> None:
    import ast
    from pathlib import Path

    import birdstream.engine.engine as engine_module

    tree = ast.parse(Path(engine_module.__file__).read_text(encoding="utf-8"))
    private = sorted({
        node.attr for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
        and not (isinstance(node.value, ast.Name) and node.value.id == "self")
    })
    assert private == [], f"engine.py touches private attributes of other objects: {private}"
