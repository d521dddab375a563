"""Stopping offline runs and refusing a daemon start: sightings still end, nothing is left running."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from prometheus_client import REGISTRY

from birdstream.config import config_from_dict
from birdstream.engine.classifier import Classifier
from birdstream.station.offline import METRICS_LABEL, OfflineRun
from tests.e2e.conftest import RED, birdstream_cmd
from tests.support.cli import birdstream_env
from tests.support.video import Box, make_video

BIRD = (110, 70, 100, 90)


def test_sigterm_during_classify_still_ends_the_open_sighting(tmp_path: Path, planted: Path) -> None:
    card = tmp_path / "card"
    card.mkdir()
    clip = make_video(tmp_path / "clip.mp4", duration_s=6, fps=10, objects=[Box(RED, BIRD, 0.5, 5.9)])
    for i in range(300):  # a big card, cheaply: hard links of one clip
        os.link(clip, card / f"CLIP_{i:04d}.mp4")
    out = tmp_path / "events.jsonl"
    proc = subprocess.Popen(birdstream_cmd("classify", "--model", str(planted), "--sample-fps", "10", "-q",
                                           "--out", str(out), str(card)),
                            env=birdstream_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out.exists() and out.read_text().count('"start"') >= 3):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    starts = {e["id"] for e in events if e["event"] == "start"}
    ends = {e["id"] for e in events if e["event"] == "end"}
    assert starts and starts == ends
    assert len(starts) < 300  # it really was stopped part-way


def test_offline_counters_use_one_label_whatever_the_number_of_files(tmp_path: Path, planted: Path) -> None:
    card = tmp_path / "card"
    card.mkdir()
    clip = make_video(tmp_path / "clip.mp4", duration_s=4, fps=10, objects=[Box(RED, BIRD, 0.5, 3.5)])
    for i in range(3):
        os.link(clip, card / f"unique_name_{i}.mp4")
    config = config_from_dict({}, base_dir=tmp_path, require_streams=False)
    run = OfflineRun(Classifier.load(str(planted), "cpu", "fp32"), config, sample_fps=5)

    def starts(label: str) -> float:
        return REGISTRY.get_sample_value("birdstream_sighting_events_total", {"stream": label, "event": "start"}) or 0

    before = starts(METRICS_LABEL)
    events = list(run.events(card))
    assert {e.stream for e in events} == {f"unique_name_{i}.mp4" for i in range(3)}
    assert starts(METRICS_LABEL) == before + 3
    assert all(starts(f"unique_name_{i}.mp4") == 0 for i in range(3))


def test_a_taken_http_port_stops_the_daemon_before_it_opens_anything(tmp_path: Path, planted: Path) -> None:
    video = make_video(tmp_path / "cam.mp4", duration_s=2, fps=10)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "config.yaml"
        config.write_text(f"state_dir: {tmp_path / 'state'}\nmodel:\n  weights: {planted}\n"
                          f"streams:\n  - id: cam\n    url: {video}\nmqtt:\n  enabled: false\n"
                          f"http:\n  enabled: true\n  port: {port}\n")
        result = subprocess.run(birdstream_cmd("run", "-c", str(config)), env=birdstream_env(),
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and f"127.0.0.1:{port}" in errors[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "state" / "sightings.jsonl").exists()  # no sink was opened
