"""Scale: 1, 2, 4, 8, 16 live RTSP streams through the real daemon on this machine.

    python bench/scale.py                          # planted model, 25 s per step
    python bench/scale.py --steps 1 4 16 --seconds 30 --sample-fps 2
    python bench/scale.py --weights /path/to/model.pt --device cuda

Each step starts a real GStreamer RTSP server (one shared 10 fps 320x240 feed where a "bird"
visits every 4 s), a real mosquitto with a subscriber, and `birdstream run` with N streams of that
feed (motion gate off, so every sampled frame is classified). After a warm-up it measures, from
the daemon's own Prometheus counters over the window: sampled frames/s per stream, and the drop
ratio (frames dropped before classification / frames handed to the engine). End-to-end latency is
frame capture (the daemon's wall-clock stamp of the decoded frame, a sighting event's
`updated_at`) to receipt by the MQTT subscriber, over the start/update events of the window,
p50/p95. Prints a markdown table; exit code 0.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.daemon import Daemon, stream_entry, wait_until  # noqa: E402
from tests.support.mosquitto import Mosquitto, free_port  # noqa: E402
from tests.support.planted import PLANTED_COLOURS, make_planted_checkpoint  # noqa: E402
from tests.support.rtsp import RtspServer, gi_available  # noqa: E402
from tests.support.video import Box, make_video  # noqa: E402


class LatencyProbe:
    """Subscribes to every sighting topic and stamps each message with its arrival time."""

    def __init__(self, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt

        self.samples: list[tuple[float, dict]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="scale-probe")
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: object, userdata: object, msg: object) -> None:
        now = time.time()
        with self._lock:
            self.samples.append((now, json.loads(msg.payload)))  # type: ignore[attr-defined]

    def latencies(self, since: float, until: float) -> list[float]:
        with self._lock:
            return [now - datetime.fromisoformat(e["updated_at"].replace("Z", "+00:00")).timestamp()
                    for now, e in self.samples if since <= now <= until and e["event"] in ("start", "update")]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def scrape(port: int) -> dict[str, dict[str, float]]:
    """Per-stream totals of the counters the table needs, from the daemon's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out: dict[str, dict[str, float]] = {}
    wanted = {"birdstream_ingest_frames_emitted": "emitted", "birdstream_engine_frames_classified": "classified",
              "birdstream_engine_dropped_frames": "dropped"}
    for family in text_string_to_metric_families(text):
        key = wanted.get(family.name)
        if key is None:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                stream = sample.labels.get("stream", "")
                out.setdefault(stream, {"emitted": 0.0, "classified": 0.0, "dropped": 0.0})[key] += sample.value
    return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def run_step(n: int, args: argparse.Namespace, work: Path, weights: Path, clip: Path) -> dict[str, float]:
    folder = work / f"step{n}"
    with Mosquitto(folder / "broker") as broker, RtspServer(clip) as camera:
        probe = LatencyProbe(broker.port, "birdstream/scale/+/sighting")
        http_port = free_port()
        streams = [stream_entry(f"cam{i}", camera.url, sample_fps=args.sample_fps, motion={"enabled": False})
                   for i in range(n)]
        model = {"weights": str(weights), "device": args.device, "threads": None}
        daemon = Daemon(folder, weights, streams, mqtt_port=broker.port, station="scale", extra={
            "model": model, "http": {"enabled": True, "port": http_port},
            "sightings": {"update_every_s": 1, "update_min_delta": 0.0},
        })
        try:
            daemon.start(ready_timeout=300)
            wait_until(lambda: len(scrape(http_port)) >= n and all(
                s["emitted"] > 0 for k, s in scrape(http_port).items() if k.startswith("cam")), 180,
                "every stream delivering")
            time.sleep(args.warmup_s)  # a fixed warm-up before the measured window (a bench, not a test)
            t0, before = time.time(), scrape(http_port)
            time.sleep(args.seconds)
            t1, after = time.time(), scrape(http_port)
            lat = probe.latencies(t0, t1)
            daemon.terminate(120)
        finally:
            daemon.stop()
            probe.close()
    delta = {k: {m: after[k][m] - before.get(k, {}).get(m, 0.0) for m in after[k]} for k in after
             if k.startswith("cam")}
    emitted = sum(d["emitted"] for d in delta.values())
    dropped = sum(d["dropped"] for d in delta.values())
    classified = sum(d["classified"] for d in delta.values())
    per_stream = [d["classified"] / (t1 - t0) for d in delta.values()]
    return {"streams": n, "fps_per_stream": statistics.mean(per_stream) if per_stream else 0.0,
            "fps_min": min(per_stream, default=0.0), "classified_fps": classified / (t1 - t0),
            "drop_ratio": dropped / emitted if emitted else float("nan"),
            "p50_ms": 1000 * pct(lat, 0.5), "p95_ms": 1000 * pct(lat, 0.95), "samples": len(lat)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    p.add_argument("--seconds", type=float, default=25.0, help="measured window per step")
    p.add_argument("--warmup-s", type=float, default=5.0)
    p.add_argument("--sample-fps", type=float, default=2.0)
    p.add_argument("--weights", type=Path, help="a Birder .pt checkpoint (default: the planted test model)")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    if not gi_available():
        print("needs GStreamer's RTSP server and python3-gi (the system python)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="birdstream-scale-"))
    try:
        weights = args.weights or make_planted_checkpoint(work / "planted.pt")
        length = args.seconds + args.warmup_s + 60  # the feed must outlast a step (the server plays it once)
        visits = [Box(list(PLANTED_COLOURS.values())[i % 5], (110, 70, 100, 90), 1.0 + 4 * i, 3.0 + 4 * i)
                  for i in range(int(length // 4))]
        clip = make_video(work / "feed.mp4", duration_s=length, fps=10, objects=visits, gop=20)
        print(f"# {'planted test model' if args.weights is None else args.weights}, sample_fps {args.sample_fps:g}, "
              f"{args.seconds:g} s per step, device {args.device}", flush=True)
        print("| streams | sampled fps/stream (min) | classified fps total | drop ratio | latency p50 | "
              "latency p95 | events |")
        print("| --- | --- | --- | --- | --- | --- | --- |", flush=True)
        for n in args.steps:
            r = run_step(n, args, work, weights, clip)
            print(f"| {n} | {r['fps_per_stream']:.2f} ({r['fps_min']:.2f}) | {r['classified_fps']:.1f} | "
                  f"{r['drop_ratio']:.3f} | {r['p50_ms']:.0f} ms | {r['p95_ms']:.0f} ms | {r['samples']} |",
                  flush=True)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
