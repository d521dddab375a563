"""`birdstream classify` end to end: generated media with known truth, the planted model, the real CLI."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pytest
from PIL import Image

from birdstream.publish import load_schema
from tests.e2e.conftest import BLUE, RED, birdstream_cmd, json_lines
from tests.support.cli import birdstream_env, run_cli
from tests.support.devices import nvidia_gpu_present
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


def _without_file_permission_override(args: list[str]) -> list[str]:
    """Run as root would otherwise read anything: drop the capabilities that bypass file modes."""
    if os.geteuid() != 0:
        return args
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *args]


def test_unreadable_folders_are_named_not_silently_empty(tmp_path: Path, planted: Path) -> None:
    video = make_video(tmp_path / "ok.mp4", duration_s=2, fps=5)
    locked = tmp_path / "locked"
    (locked / "inner").mkdir(parents=True)
    shutil.copy(video, locked / "inner" / "a.mp4")
    card = tmp_path / "card"
    (card / "sub").mkdir(parents=True)
    shutil.copy(video, card / "b.mp4")
    shutil.copy(video, card / "sub" / "c.mp4")
    locked.chmod(0)
    (card / "sub").chmod(0)
    try:
        result = subprocess.run(_without_file_permission_override(
            birdstream_cmd("classify", "-q", "--model", str(planted), str(locked), str(card))),
            env=birdstream_env(), capture_output=True, text=True, timeout=240, check=False)
    finally:
        locked.chmod(0o755)
        (card / "sub").chmod(0o755)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"birdstream: error: {locked}: permission denied",
        f"birdstream: error: {card / 'sub'}: permission denied",
    ]


def test_sigterm_closes_the_outputs_complete(tmp_path: Path, planted: Path) -> None:
    # A red bird arrives at 3 s and sits for hours: its first sighting ends after still_limit_s
    # (300 s of media), long before the file does.
    long_video = tmp_path / "long.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "color=c=gray:size=96x96:rate=5,drawbox=x=20:y=20:w=50:h=50:color=red:t=fill:enable='gte(t,3)'",
                    "-t", "20000", "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", str(long_video)],
                   check=True, timeout=120)
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.csv"
    proc = subprocess.Popen(birdstream_cmd("classify", "-q", "--model", str(planted), "--out", str(out),
                                           "--summary", str(summary), str(long_video)),
                            env=birdstream_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while '"end"' not in (out.read_text() if out.exists() else ""):
            assert proc.poll() is None and time.monotonic() < deadline, "no sighting ended"
            time.sleep(0.1)
        proc.terminate()
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143 and stderr.strip() == "birdstream: interrupted", stderr
    ended = [e["id"] for e in json_lines(out.read_text()) if e["event"] == "end"]
    with summary.open() as f:
        rows = list(csv.DictReader(f))
    assert ended and [r["id"] for r in rows] == ended


def test_unwritable_outputs_are_usage_errors_before_any_work(tmp_path: Path) -> None:
    video = make_video(tmp_path / "ok.mp4", duration_s=1, fps=5)
    missing = tmp_path / "no" / "out.jsonl"
    for args, message in [
        (["--out", str(missing)], f"--out: {missing}: no such folder {missing.parent}"),
        (["--summary", str(tmp_path)], f"--summary: {tmp_path}: is a folder, not a file"),
    ]:
        result = classify("-q", *args, str(video))
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == [f"birdstream: error: {message}"]


def test_bursts_of_two_cameras_taken_at_the_same_time_stay_bursts(tmp_path: Path, planted: Path) -> None:
    from datetime import timedelta

    from tests.support.video import make_still

    t0 = datetime(2024, 5, 1, 6, 0, 0)
    for cam, offset in (("cam1", 0), ("cam2", 1)):
        (tmp_path / "card" / cam).mkdir(parents=True)
        for i in range(3):  # the two cameras' stills interleave in time: cam1 at 0, 2, 4 s; cam2 at 1, 3, 5 s
            make_still(tmp_path / "card" / cam / f"IMG_{i}.jpg", objects=[Box(RED, BIRD)],
                       taken_at=t0 + timedelta(seconds=2 * i + offset), seed=i)
    result = classify("-q", "--model", str(planted), str(tmp_path / "card"))
    assert result.returncode == 0, result.stderr
    by_id = sightings(json_lines(result.stdout))
    assert sorted((s[0]["stream"], s[-1]["frames"]) for s in by_id.values()) == [
        ("cam1/IMG_0.jpg", 3), ("cam2/IMG_0.jpg", 3)]


@pytest.mark.skipif(nvidia_gpu_present(), reason="a GPU is present: cuda decodes for real, no fallback to see")
def test_hwaccel_without_a_gpu_falls_back_with_one_line_and_finds_the_same_sightings(
        tmp_path: Path, planted: Path) -> None:
    card = tmp_path / "card"
    card.mkdir()
    make_video(card / "a.mp4", duration_s=6, fps=10, objects=[Box(RED, BIRD, 1.0, 4.0)])
    make_video(card / "b.mp4", duration_s=6, fps=10, objects=[Box(BLUE, BIRD, 2.0, 5.0)])
    software = classify("--model", str(planted), "-q", str(card))
    hardware = classify("--model", str(planted), "-q", "--hwaccel", "cuda", "--hwaccel-device", "0", str(card))
    assert software.returncode == 0 and hardware.returncode == 0, hardware.stderr
    found = [(e["stream"], e["species"], e["event"], e["media_start_s"]) for e in json_lines(hardware.stdout)]
    assert found == [(e["stream"], e["species"], e["event"], e["media_start_s"]) for e in json_lines(software.stdout)]
    assert {(s, sp) for s, sp, _, _ in found} == {("a.mp4", "Scarlet Tanager"), ("b.mp4", "Indian Roller")}
    lines = hardware.stderr.strip().splitlines()
    assert len(lines) == 1 and "hardware decoding (cuda) not used" in lines[0], hardware.stderr
    assert software.stderr == ""


def test_a_misspelt_hwaccel_is_a_usage_error_with_a_suggestion(tmp_path: Path, planted: Path) -> None:
    video = make_video(tmp_path / "v.mp4", duration_s=1, fps=10)
    result = classify("--model", str(planted), "--hwaccel", "cudaa", str(video))
    assert result.returncode == 2 and result.stdout == ""
    assert "--hwaccel" in result.stderr and "did you mean 'cuda'" in result.stderr


def test_keyframes_only_classifies_only_key_frames_and_still_sees_the_visit(tmp_path: Path, planted: Path) -> None:
    # One key frame per second (gop 10 at 10 fps); sampling at 4 fps sees 4 frames a second, key frames 1.
    video = make_video(tmp_path / "trap.mp4", duration_s=10, fps=10, gop=10, objects=[Box(RED, BIRD, 2.0, 8.0)])
    frames = {}
    for mode, extra in (("all", ()), ("keyframes", ("--keyframes-only",))):
        summary = tmp_path / f"{mode}.csv"
        result = classify("--model", str(planted), "-q", "--sample-fps", "4", "--summary", str(summary),
                          *extra, str(video))
        assert result.returncode == 0, result.stderr
        rows = list(csv.DictReader(summary.open()))
        assert [r["species"] for r in rows] == ["Scarlet Tanager"], rows
        frames[mode] = int(rows[0]["frames"])
    assert frames["keyframes"] <= 7 < frames["all"], frames
