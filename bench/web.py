"""The station's page and API on a big store, and what the store costs MQTT delivery.

1. Fills a sightings store with --sightings (default 100,000) sightings (start + end events each,
   spread over 90 days, a tenth of them today) and serves it with the daemon's own HTTP server;
   times (warm-up, then rounds interleaved so every URL sees the same load) GET /api/sightings,
   a filtered and a deep cursor page, /api/species and the page /, each as median and p95 ms
   and as a ratio to /healthz (the bare server round trip) measured in the same rounds.
   Target: /api/sightings and / under 50 ms.
2. Publishes sighting events through the real Publisher to a real mosquitto at --rate events/s,
   alternating rounds with and without the store sink, and reports the publish -> subscriber
   delivery p95 of each (median over rounds, with the spread) and their ratio. Target: ~1.0.

usage: python bench/web.py [--sightings 100000] [--rounds 5] [--requests 20] [--events 300] [--rate 200]
                          [--only http|mqtt]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from birdstream.messages import SightingEvent, rfc3339  # noqa: E402
from birdstream.publish import Publisher  # noqa: E402
from birdstream.publish.store import FILE_NAME, StoreOptions, connect, rebuild, write_events  # noqa: E402
from birdstream.publish.store_query import StoreReader  # noqa: E402
from birdstream.service.http import HttpEndpoint  # noqa: E402
from birdstream.service.sdnotify import Notifier  # noqa: E402
from birdstream.service.supervisor import Supervisor  # noqa: E402
from birdstream.web import ReviewPolicy, Site  # noqa: E402
from tests.support.mosquitto import Mosquitto, Subscriber  # noqa: E402
from tests.support.options import jsonl_options, mqtt_options, outbox_options, snapshot_options  # noqa: E402

SPECIES = [f"Species {i:03d}" for i in range(120)]


def payloads(n: int, now: float) -> list[dict]:
    out = []
    for i in range(n):
        started = now - 3600 * ((i * 7919) % 1440) / 60 if i % 10 == 0 else now - 86400 * (1 + (i * 31) % 89) - i % 80000
        sid, species = str(uuid.UUID(int=i + 1)), SPECIES[(i * 13) % len(SPECIES)]
        base = {"schema": 1, "id": sid, "station": "bench", "stream": f"cam{i % 4}", "species": species,
                "score": 0.6 + (i % 40) / 100, "top": [[species, 0.8], [SPECIES[0], 0.1]],
                "started_at": rfc3339(started), "frames": 5, "snapshot": f"snapshots/cam{i % 4}/{sid}.jpg",
                "model": "bench@000000000000", "media_start_s": None, "media_end_s": None, "box": None}
        out.append({**base, "seq": 0, "event": "start", "updated_at": rfc3339(started), "ended_at": None})
        out.append({**base, "seq": 1, "event": "end", "updated_at": rfc3339(started + 20),
                    "ended_at": rfc3339(started + 20)})
    return out


def fill(state_dir: Path, n: int) -> None:
    t = time.perf_counter()
    rebuild(state_dir)  # an empty store of the current schema
    db = connect(state_dir / FILE_NAME)
    with db:
        write_events(db, payloads(n, time.time()))
    db.close()
    print(f"filled {n} sightings ({2 * n} events) in {time.perf_counter() - t:.1f} s", flush=True)


def fetch_ms(url: str) -> float:
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        response.read()
        assert response.status == 200, url
    return (time.perf_counter() - t) * 1000


def bench_http(n: int, rounds: int, requests: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder)
        fill(state, n)
        site = Site(state_dir=state, station="bench", reader=StoreReader(state), policy=ReviewPolicy(loopback=True))
        supervisor = Supervisor(health_file=None, notifier=Notifier(None))
        supervisor.tick()
        with HttpEndpoint("127.0.0.1", 0, supervisor.snapshot, site=site).start() as endpoint:
            base = f"http://127.0.0.1:{endpoint.port}"
            first = json.loads(urllib.request.urlopen(base + "/api/sightings?limit=500").read())
            deep = first["next"]
            for _ in range(min(40, n // 500 - 2)):  # walk deep into the history: the cursor must stay cheap there
                deep = json.loads(urllib.request.urlopen(f"{base}/api/sightings?limit=500&before={deep}").read())["next"]
            urls = {"/healthz (reference)": "/healthz", "/api/sightings": "/api/sightings",
                    "/api/sightings?species=": f"/api/sightings?species={SPECIES[7].replace(' ', '%20')}",
                    "/api/sightings?before= (deep)": f"/api/sightings?before={deep}",
                    "/api/species (all time)": "/api/species", "/ (today)": "/"}
            times: dict[str, list[float]] = {k: [] for k in urls}
            for _ in range(3):  # warm-up
                for path in urls.values():
                    fetch_ms(base + path)
            for _ in range(rounds):
                for label, path in urls.items():
                    times[label] += [fetch_ms(base + path) for _ in range(requests)]
            ref = statistics.median(times["/healthz (reference)"])
            print(f"\n{'request':34} {'median ms':>10} {'p95 ms':>8} {'x healthz':>10}")
            for label, values in times.items():
                p95 = statistics.quantiles(values, n=20)[-1]
                print(f"{label:34} {statistics.median(values):10.1f} {p95:8.1f} {statistics.median(values) / ref:10.1f}")


def event(i: int, run: str) -> SightingEvent:
    now = time.time()
    return SightingEvent(id=f"{run}-{i}", seq=0, event="start", station="bench", stream="cam", species=SPECIES[i % 9],
                         score=0.9, top=((SPECIES[i % 9], 0.9),), started_at=now, updated_at=now, ended_at=None,
                         frames=3, model="bench@000000000000")


def delivery_p95(port: int, folder: Path, store: bool, events: int, rate: float) -> float:
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    lock = threading.Lock()
    publisher = Publisher(station="bench", state_dir=folder, mqtt=mqtt_options(host="127.0.0.1", port=port),
                          jsonl=jsonl_options(), snapshots=snapshot_options(enabled=False), outbox=outbox_options(),
                          store=StoreOptions(enabled=store))
    run = uuid.uuid4().hex[:8]
    with Subscriber(port, ["birdstream/bench/cam/sighting"]) as sub:
        original = sub._on_message  # noqa: SLF001 - timestamp on arrival, in the client's thread

        def stamp(client, userdata, message) -> None:  # type: ignore[no-untyped-def]
            with lock:
                got.setdefault(json.loads(message.payload)["id"], time.perf_counter())
            original(client, userdata, message)

        sub.client.on_message = stamp
        publisher.start()
        try:
            for i in range(events):
                e = event(i, run)
                sent[e.id] = time.perf_counter()
                publisher.publish(e)
                time.sleep(1 / rate)
            deadline = time.monotonic() + 60
            while len(got) < events and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            publisher.close(5)
    latencies = [(got[k] - sent[k]) * 1000 for k in sent if k in got]
    assert len(latencies) == events, f"{events - len(latencies)} event(s) not delivered"
    return statistics.quantiles(latencies, n=20)[-1]


def bench_mqtt(rounds: int, events: int, rate: float) -> None:
    logging.disable(logging.INFO)
    with tempfile.TemporaryDirectory() as folder, Mosquitto(Path(folder) / "broker") as broker:
        results: dict[bool, list[float]] = {True: [], False: []}
        delivery_p95(broker.port, Path(folder) / "warm", True, 50, rate)
        for r in range(rounds):
            for store in ((True, False) if r % 2 else (False, True)):
                results[store].append(delivery_p95(broker.port, Path(folder) / f"r{r}-{store}", store, events, rate))
        without, with_ = statistics.median(results[False]), statistics.median(results[True])
        print(f"\nMQTT delivery p95 over {rounds} rounds of {events} events at {rate:g}/s (median, min-max):")
        print(f"  without the store: {without:.2f} ms ({min(results[False]):.2f}-{max(results[False]):.2f})")
        print(f"  with the store:    {with_:.2f} ms ({min(results[True]):.2f}-{max(results[True]):.2f})")
        print(f"  ratio with/without: {with_ / without:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sightings", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20, help="requests per URL per round")
    parser.add_argument("--events", type=int, default=300, help="events per MQTT round")
    parser.add_argument("--rate", type=float, default=200, help="events per second in the MQTT rounds")
    parser.add_argument("--only", choices=("http", "mqtt"), help="run one of the two parts")
    args = parser.parse_args()
    if args.only != "mqtt":
        bench_http(args.sightings, args.rounds, args.requests)
    if args.only != "http":
        bench_mqtt(args.rounds, args.events, args.rate)


if __name__ == "__main__":
    main()
