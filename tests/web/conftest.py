"""Fixtures of the web tests: sighting event payloads as the publisher writes them, a served Site."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from birdstream.messages import rfc3339
from birdstream.publish.store import StoreOptions, StoreWriter
from birdstream.publish.store_query import StoreReader
from birdstream.service.http import HttpEndpoint
from birdstream.service.sdnotify import Notifier
from birdstream.service.supervisor import Supervisor
from birdstream.web import ReviewPolicy, Site

SPECIES = ("Scarlet Tanager", "Indian Roller", "House Sparrow")


def sighting_events(started: float, species: str = "Indian Roller", stream: str = "feeder",
                    n_updates: int = 1, box: list[float] | None = None, snapshot: str | None = None
                    ) -> list[dict[str, Any]]:
    """start, updates and end of one sighting, in the section 4 form (``box`` as localisation adds it)."""
    sid = str(uuid.uuid4())
    out = []
    kinds = ["start"] + ["update"] * n_updates + ["end"]
    for seq, kind in enumerate(kinds):
        updated = started + 2.0 * seq
        out.append({
            "schema": 1, "id": sid, "seq": seq, "event": kind, "station": "garden", "stream": stream,
            "species": species, "score": round(0.7 + 0.05 * seq, 4), "top": [[species, 0.7], ["House Sparrow", 0.1]],
            "started_at": rfc3339(started), "updated_at": rfc3339(updated),
            "ended_at": rfc3339(updated) if kind == "end" else None, "frames": 2 + seq, "snapshot": snapshot,
            "model": "planted@0123456789ab", "media_start_s": None, "media_end_s": None, "box": box,
        })
    return out


def write_jsonl(state_dir: Path, events: list[dict[str, Any]]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "sightings.jsonl", "a", encoding="utf-8") as fh:
        for event in events:
            fh.write(json.dumps(event) + "\n")


def http(url: str, body: Any = None, headers: dict[str, str] | None = None, method: str | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    hdrs = {"Content-Type": "application/json"} if data is not None else {}
    hdrs.update(headers or {})
    request = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def get_json(url: str) -> tuple[int, Any]:
    status, _, body = http(url)
    return status, json.loads(body)


class Served:
    """A store with its writer thread, and the page and API served on a free loopback port."""

    def __init__(self, state_dir: Path, policy: ReviewPolicy) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir = state_dir
        self.writer = StoreWriter(state_dir, StoreOptions(max_age_days=None))
        self.writer.start()
        assert self.writer.ready.wait(30)
        self.reviews: list[tuple[str, str, dict]] = []
        self.site = Site(state_dir=state_dir, station="garden", reader=StoreReader(state_dir), writer=self.writer,
                         species_names=SPECIES, policy=policy,
                         publish_review=lambda stream, sid, review: self.reviews.append((stream, sid, review)))
        supervisor = Supervisor(health_file=None, notifier=Notifier(None))
        supervisor.tick()
        self.endpoint = HttpEndpoint("127.0.0.1", 0, supervisor.snapshot, site=self.site).start()
        self.base = f"http://127.0.0.1:{self.endpoint.port}"

    def add(self, events: list[dict[str, Any]]) -> None:
        import time

        for event in events:
            self.writer.submit(event)
        assert self.writer.wait_idle(time.monotonic() + 30)

    def close(self) -> None:
        self.endpoint.close()
        self.writer.close(10)


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path / "state", ReviewPolicy(loopback=True))
    try:
        yield server
    finally:
        server.close()
