"""Soak: the real daemon with N looping realtime file streams for a while; does anything grow?

    python bench/soak.py                          # 8 streams, 30 minutes, planted model, mosquitto
    python bench/soak.py --streams 8 --minutes 10 --warmup-s 120 --every-s 5

Runs `birdstream run` in a subprocess (the planted test model, so it is CPU-light) on generated
320x240 clips where a "bird" comes and goes every loop, with a real mosquitto and a subscriber
when mosquitto is installed. Every few seconds it samples the daemon's RSS, open file
descriptors, threads, the outbox rows and the events received. After the warm-up it fits a line
through each series and prints its growth per hour (target: none beyond noise). Exit code 0;
the table is the result.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.daemon import Daemon, read_jsonl, stream_entry  # noqa: E402
from tests.support.planted import PLANTED_COLOURS, make_planted_checkpoint  # noqa: E402
from tests.support.video import Box, make_video  # noqa: E402


class Counter:
    """A plain paho subscriber that only counts sighting messages (a soak must not grow itself)."""

    def __init__(self, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt

        self.count = 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"soak-{os.getpid()}")
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, *args: object) -> None:
        with self._lock:
            self.count += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def proc_sample(pid: int) -> dict[str, float]:
    """RSS (MiB), threads and open fds of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kib = float(fields["VmRSS"].split()[0])
    return {"rss_mib": rss_kib / 1024, "threads": float(fields["Threads"]),
            "fds": float(len(os.listdir(f"/proc/{pid}/fd")))}


def outbox_rows(path: Path) -> float:
    if not path.exists():
        return 0.0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
        try:
            return float(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return float("nan")


def slope_per_hour(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (seconds), per hour."""
    n = len(xs)
    if n < 2:
        return float("nan")
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return 3600.0 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", type=int, default=8)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--warmup-s", type=float, default=120.0)
    p.add_argument("--every-s", type=float, default=5.0)
    p.add_argument("--no-mqtt", action="store_true", help="do not start mosquitto even when installed")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, state)")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="birdstream-soak-"))
    broker = None
    counter = None
    daemon = None
    try:
        planted = make_planted_checkpoint(work / "planted.pt")
        colours = list(PLANTED_COLOURS.values())
        streams = []
        for i in range(args.streams):
            # A 20 s loop: the bird is there from 4 s to 11 s, so every loop is one sighting.
            clip = make_video(work / f"clip{i}.mp4", duration_s=20, fps=10, seed=i,
                              objects=[Box(colours[i % len(colours)], (110, 70, 100, 90), 4.0, 11.0)])
            streams.append(stream_entry(f"cam{i}", clip, realtime=True, loop=True, sample_fps=2))
        port = None
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not args.no_mqtt and Path(mosquitto).exists():
            from tests.support.mosquitto import Mosquitto

            broker = Mosquitto(work / "broker").start()
            port = broker.port
            counter = Counter(port, "birdstream/soak/+/sighting")
        daemon = Daemon(work / "daemon", planted, streams, mqtt_port=port, station="soak",
                        extra={"snapshots": {"enabled": True}})
        daemon.start(ready_timeout=300)
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        rows: list[tuple[float, dict[str, float]]] = []
        print(f"# {args.streams} streams, {args.minutes:g} min, warm-up {args.warmup_s:g} s, "
              f"mqtt {'on' if port else 'off'}, daemon pid {daemon.pid}", flush=True)
        print(f"{'t_s':>6} {'rss_mib':>8} {'fds':>5} {'threads':>7} {'outbox':>6} {'jsonl':>6} {'mqtt_rx':>7}",
              flush=True)
        while time.monotonic() < end:
            if not daemon.running:
                print(f"daemon exited with {daemon.proc.returncode}:\n{daemon.log_text()[-2000:]}")
                return 1
            t = time.monotonic() - t0
            s = proc_sample(daemon.pid)
            s["outbox"] = outbox_rows(daemon.state_dir / "outbox.sqlite3")
            s["jsonl"] = float(len(read_jsonl(daemon.jsonl_path)))
            s["mqtt_rx"] = float(counter.count if counter else 0)
            rows.append((t, s))
            print(f"{t:6.0f} {s['rss_mib']:8.1f} {s['fds']:5.0f} {s['threads']:7.0f} {s['outbox']:6.0f} "
                  f"{s['jsonl']:6.0f} {s['mqtt_rx']:7.0f}", flush=True)
            time.sleep(max(0.0, min(args.every_s, end - time.monotonic())))
        rc = daemon.terminate(120)
        after = [(t, s) for t, s in rows if t >= args.warmup_s]
        print()
        # A leak grows steadily; a process settling in grows less and less: the second half tells them apart.
        second = after[len(after) // 2:]
        print(f"| {args.streams} streams, {args.minutes:g} min | after warm-up | growth per hour "
              f"| growth per hour, second half |")
        print("| --- | --- | --- | --- |")
        for key, unit in (("rss_mib", "MiB"), ("fds", "fds"), ("threads", "threads"), ("outbox", "rows")):
            ys = [s[key] for _, s in after]
            if not ys:
                continue
            whole = slope_per_hour([t for t, _ in after], ys)
            late = slope_per_hour([t for t, _ in second], [s[key] for _, s in second])
            print(f"| {key} | {min(ys):.1f} .. {max(ys):.1f} | {whole:+.2f} {unit}/h | {late:+.2f} {unit}/h |")
        if rows:
            last = rows[-1][1]
            print(f"| events | {last['jsonl']:.0f} in the log, {last['mqtt_rx']:.0f} received on MQTT | |")
        print(f"clean stop: exit code {rc}")
        return 0
    finally:
        if daemon is not None:
            daemon.stop()
        if counter is not None:
            counter.close()
        if broker is not None:
            broker.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
