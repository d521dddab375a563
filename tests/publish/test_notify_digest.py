"""The daily digest and the notify worker: real Apprise json:// to a real local HTTP endpoint."""

from __future__ import annotations

import base64
import json
import threading
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from birdstream.messages import SightingEvent
from birdstream.publish import metrics
from birdstream.publish.notify import DigestOptions, Notifier, NotifyOptions, NotifyTarget
from tests.support.daemon import wait_until
from tests.support.webhook import Webhook

EVENING = datetime(2026, 5, 10, 19, 59, 0, tzinfo=timezone.utc).timestamp()


class Clock:
    """Wall-clock seconds the test moves on (the digest is due at a time of day)."""

    def __init__(self, now: float) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def set(self, now: float) -> None:
        with self._lock:
            self.now = now


def _event(kind: str, species: str, n: int, score: float, snapshot: str | None, t: float) -> SightingEvent:
    return SightingEvent(id=f"id-{n}", seq=0 if kind == "start" else 1, event=kind, station="garden",  # type: ignore[arg-type]
                         stream="feeder", species=species, score=score, top=((species, score),), started_at=t,
                         updated_at=t, ended_at=t if kind == "end" else None, frames=3, model="m@0123456789ab",
                         snapshot=snapshot)


def _jpeg(state_dir: Path, name: str, rgb: tuple[int, int, int]) -> str:
    rel = f"snapshots/feeder/{name}.jpg"
    (state_dir / rel).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((32, 32, 3), rgb, dtype=np.uint8)).save(state_dir / rel, quality=95)
    return rel


def test_the_digest_lists_the_days_species_with_counts_and_attaches_the_best_picture(tmp_path: Path) -> None:
    clock = Clock(EVENING)
    red, blue = _jpeg(tmp_path, "red", (255, 0, 0)), _jpeg(tmp_path, "blue", (0, 0, 255))
    with Webhook() as hook:
        options = NotifyOptions(digest=DigestOptions(url=hook.url("/digest"), at_minute=20 * 60), timezone="UTC")
        notifier = Notifier(station="garden", state_dir=tmp_path, options=options, clock=clock)
        notifier.start()
        try:
            t = EVENING - 3600
            for n, (species, score, snap) in enumerate([("House Sparrow", 0.7, red), ("House Sparrow", 0.8, red),
                                                        ("Indian Roller", 0.95, blue)]):
                notifier.submit(_event("start", species, n, score - 0.1, snap, t + n))
                notifier.submit(_event("end", species, n, score, snap, t + n + 10))
            assert hook.requests == []  # not before 20:00
            clock.set(EVENING + 61)
            wait_until(lambda: hook.requests, timeout=20, what="the digest")
        finally:
            notifier.close(2.0)
    (request,) = hook.requests
    body = request["body"]
    assert body["title"] == "garden: 3 sightings of 2 species"
    assert body["message"].splitlines() == ["House Sparrow: 2", "Indian Roller: 1"]
    (attachment,) = body["attachments"]
    picture = Image.open(__import__("io").BytesIO(base64.b64decode(attachment["base64"])))
    assert picture.getpixel((16, 16))[2] > 200  # the roller's (best score) blue picture


def test_a_full_queue_drops_and_counts_instead_of_waiting(tmp_path: Path) -> None:
    with Webhook("hang") as hook:
        target = NotifyTarget(url=hook.url("/slow"), when=("start",), place="notify[0]")
        options = NotifyOptions(targets=(target,), queue_size=2, retries=0, timeout_s=30)
        notifier = Notifier(station="garden", state_dir=tmp_path, options=options)
        before = metrics.NOTIFY_DROPPED.labels(reason="queue_full")._value.get()
        notifier.start()
        try:
            notifier.submit(_event("start", "House Sparrow", 0, 0.9, None, EVENING))
            wait_until(lambda: hook.requests, timeout=20, what="the first request hangs")
            for n in range(1, 6):  # 2 wait in the queue, 3 are dropped; none of this waits
                notifier.submit(_event("start", "House Sparrow", n, 0.9, None, EVENING + n))
            assert metrics.NOTIFY_DROPPED.labels(reason="queue_full")._value.get() - before == 3
        finally:
            notifier.close(0.5)


def test_after_a_restart_the_digest_still_counts_the_logged_sightings_since_the_last_digest(tmp_path: Path) -> None:
    red = _jpeg(tmp_path, "red", (255, 0, 0))
    lines = []
    for n, (t, species) in enumerate([(EVENING - 86_400, "Rock Dove"),  # before yesterday's digest
                                      (EVENING - 7200, "House Sparrow"), (EVENING - 3600, "House Sparrow")]):
        start = _event("start", species, n, 0.8, red, t).to_payload()
        lines.append(json.dumps(start))
    (tmp_path / "sightings.jsonl").write_text("\n".join(lines) + "\n{cut")
    clock = Clock(EVENING)
    with Webhook() as hook:
        options = NotifyOptions(digest=DigestOptions(url=hook.url("/digest"), at_minute=20 * 60), timezone="UTC")
        notifier = Notifier(station="garden", state_dir=tmp_path, options=options, clock=clock)
        notifier.start()
        try:
            clock.set(EVENING + 61)
            wait_until(lambda: hook.requests, timeout=20, what="the digest")
        finally:
            notifier.close(2.0)
    body = hook.requests[0]["body"]
    assert body["message"].splitlines() == ["House Sparrow: 2"] and len(body["attachments"]) == 1
