"""`birdstream classify` end to end: generated media with known truth, the planted model, the real CLI."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
from PIL import Image

from birdstream.publish import load_schema
from tests.e2e.conftest import BLUE, RED, json_lines
from tests.support.cli import run_cli
from tests.support.video import Box, make_video

BIRD = (110, 70, 100, 90)  # x, y, w, h on 320x240: about 12% of the frame


def classify(*args: str):
    return run_cli("classify", *args, timeout=240)


def sightings(events: list[dict]) -> dict[str, list[dict]]:
    by_id: dict[str, list[dict]] = {}
    for event in events:
        by_id.setdefault(event["id"], []).append(event)
    return by_id


def test_a_bird_visit_is_one_sighting_on_the_file_timeline(tmp_path: Path, planted: Path) -> None:
    created = datetime(2026, 5, 1, 6, 0, 0, tzinfo=timezone.utc)
    video = make_video(tmp_path / "visit.mp4", duration_s=8, fps=10, creation_time=created,
                       objects=[Box(RED, BIRD, start_s=2.0, end_s=5.0)])
    out = tmp_path / "events.jsonl"
    summary = tmp_path / "summary.csv"
    result = classify("--model", str(planted), "--out", str(out), "--summary", str(summary), str(video))
    assert result.returncode == 0, result.stderr
    events = json_lines(out.read_text())
    visits = sightings(events)
    assert len(visits) == 1, events
    (visit,) = visits.values()
    assert [e["event"] for e in visit][0] == "start" and visit[-1]["event"] == "end"
    assert [e["seq"] for e in visit] == list(range(len(visit)))
    start, end = visit[0], visit[-1]
    assert start["species"] == "Scarlet Tanager" and start["stream"] == "visit.mp4"
    assert 2.0 <= start["media_start_s"] <= 4.0  # starts within 2 s of the bird's arrival
    assert 4.0 <= end["media_end_s"] <= 5.5
    assert end["started_at"].startswith("2026-05-01T06:00:0")
    schema = load_schema("sighting")
    for event in events:
        jsonschema.validate(event, schema)
    rows = list(csv.DictReader(summary.open()))
    assert len(rows) == 1 and rows[0]["species"] == "Scarlet Tanager" and rows[0]["id"] == start["id"]


def test_a_flash_is_no_sighting_and_scenery_is_none_while_an_arrival_is_one(tmp_path: Path, planted: Path) -> None:
    flash = make_video(tmp_path / "flash.mp4", duration_s=5, fps=10, objects=[Box(RED, BIRD, 2.0, 2.3)])
    # The planted model averages colour over the frame, so the bird is drawn larger than the rock
    # for its own colour to win while both are in view.
    scenery = make_video(tmp_path / "rock.mp4", duration_s=10, fps=10, objects=[
        Box(RED, (10, 10, 90, 55)),  # present and unmoving from the first frame: 6.4%, scores high alone
        Box(BLUE, (160, 110, 140, 110), start_s=5.0, end_s=9.0),  # a bird arriving later: 20%
    ])
    result = classify("--model", str(planted), "-q", str(flash), str(scenery))
    assert result.returncode == 0, result.stderr
    visits = sightings(json_lines(result.stdout))
    assert [(v[0]["stream"], v[0]["species"]) for v in visits.values()] == [("rock.mp4", "Indian Roller")]
    assert result.stderr == ""


def test_a_card_folder_names_streams_by_relative_path_and_reports_broken_files(tmp_path: Path, planted: Path) -> None:
    card = tmp_path / "card"
    (card / "clips").mkdir(parents=True)
    image = Image.new("RGB", (320, 240), (128, 128, 128))
    image.paste(RED, (110, 70, 210, 160))
    image.save(card / "IMG_0001.JPG", quality=92)
    Image.new("RGB", (320, 240), (120, 120, 120)).save(card / "IMG_0002.JPG")  # an empty frame, hours later
    import os
    os.utime(card / "IMG_0001.JPG", (1_700_000_000, 1_700_000_000))
    os.utime(card / "IMG_0002.JPG", (1_700_090_000, 1_700_090_000))
    make_video(card / "clips" / "CLIP_0003.mp4", duration_s=6, fps=10, objects=[Box(BLUE, BIRD, 1.0, 4.0)])
    (card / "BROKEN.mp4").write_bytes(os.urandom(4096))
    out = tmp_path / "events.jsonl"
    result = classify("--model", str(planted), "--out", str(out), str(card))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "BROKEN.mp4" in errors[0] and "Traceback" not in result.stderr
    visits = sightings(json_lines(out.read_text()))
    found = sorted((v[0]["stream"], v[0]["species"], [e["event"] for e in v][-1]) for v in visits.values())
    assert found == [("IMG_0001.JPG", "Scarlet Tanager", "end"), ("clips/CLIP_0003.mp4", "Indian Roller", "end")]
    still = next(v for v in visits.values() if v[0]["stream"] == "IMG_0001.JPG")
    assert [e["event"] for e in still] == ["start", "end"] and still[0]["media_start_s"] is None


def test_missing_input_is_named_and_others_still_run(tmp_path: Path, planted: Path) -> None:
    video = make_video(tmp_path / "ok.mp4", duration_s=6, fps=10, objects=[Box(RED, BIRD, 1.0, 4.0)])
    result = classify("--model", str(planted), "-q", str(tmp_path / "nope.mp4"), str(video))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"birdstream: error: {tmp_path / 'nope.mp4'}: no such file or folder"]
    assert {e["stream"] for e in json_lines(result.stdout)} == {"ok.mp4"}


def test_a_bad_model_is_a_usage_error(tmp_path: Path) -> None:
    video = make_video(tmp_path / "ok.mp4", duration_s=1, fps=5)
    fake = tmp_path / "fake.pt"
    fake.write_text("not a checkpoint")
    result = classify("--model", str(fake), str(video))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "fake.pt" in lines[0] and "Traceback" not in result.stderr
    assert json.dumps(result.stdout) == '""'


def test_speed_options_reach_the_classifier_and_ingest(tmp_path: Path, planted: Path) -> None:
    video = make_video(tmp_path / "visit.mp4", duration_s=6, fps=10, objects=[Box(RED, BIRD, 1.0, 4.0)])
    config = tmp_path / "config.yaml"
    config.write_text("model:\n  quantize: int8\n  input_size: 64\n  device: cpu\n  threads: 1\n")
    result = classify("-c", str(config), "--model", str(planted), "-q", str(video))
    assert result.returncode == 0, result.stderr
    visits = sightings(json_lines(result.stdout))
    assert [(v[0]["species"], v[-1]["event"]) for v in visits.values()] == [("Scarlet Tanager", "end")]
