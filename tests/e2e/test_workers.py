"""`classify --workers N`: decoding in N processes gives the outputs of one, whatever N."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from tests.e2e.conftest import BLUE, RED, json_lines
from tests.support.cli import run_cli
from tests.support.video import Box, make_still, make_video

BIRD = (110, 70, 100, 90)


def deterministic(events: list[dict]) -> list[dict]:
    """Events with each random sighting id replaced by its rank of appearance."""
    ids: dict[str, int] = {}
    return [{**e, "id": ids.setdefault(e["id"], len(ids))} for e in events]


def test_two_workers_give_the_outputs_of_one_and_name_the_broken_file(tmp_path: Path, planted: Path) -> None:
    card = tmp_path / "card"
    (card / "cam1").mkdir(parents=True)
    (card / "cam2").mkdir()
    t0 = datetime(2024, 5, 1, 6, 0, 0)
    for i in range(5):  # a burst on cam1, lone stills on cam2 (an empty one among them)
        make_still(card / "cam1" / f"IMG_{i}.jpg", objects=[Box(RED, BIRD)], taken_at=t0 + timedelta(seconds=i), seed=i)
        make_still(card / "cam2" / f"IMG_{i}.jpg", objects=[Box(BLUE, BIRD)] if i != 2 else [],
                   taken_at=t0 + timedelta(hours=i), seed=10 + i)
    for i in range(3):
        make_video(card / "cam1" / f"CLIP_{i}.mp4", duration_s=6, fps=10,
                   objects=[Box(RED if i % 2 else BLUE, BIRD, 1.0 + i, 4.0 + i)])
    (card / "cam2" / "BROKEN.mp4").write_bytes(os.urandom(4096))
    lone = make_video(tmp_path / "lone.mp4", duration_s=6, fps=10, objects=[Box(RED, BIRD, 2.0, 5.0)])
    results = {}
    for workers in ("0", "1", "2"):
        out, summary = tmp_path / f"w{workers}.jsonl", tmp_path / f"w{workers}.csv"
        result = run_cli("classify", "-q", "--workers", workers, "--model", str(planted), "--out", str(out),
                         "--summary", str(summary), str(card), str(tmp_path / "missing"), str(lone), timeout=300)
        assert result.returncode == 1, result.stderr
        results[workers] = (deterministic(json_lines(out.read_text())), result.stderr,
                            [line.rsplit(",", 1)[0] for line in summary.read_text().splitlines()])
    assert results["2"] == results["1"] == results["0"]
    events, stderr, _ = results["2"]
    assert stderr.splitlines() == [
        f"birdstream: error: {card / 'cam2' / 'BROKEN.mp4'}: not a readable video or image - "
        + stderr.splitlines()[0].split(" - ", 1)[1],
        f"birdstream: error: {tmp_path / 'missing'}: no such file or folder",
    ]
    assert {(e["stream"], e["species"]) for e in events} == {
        ("cam1/IMG_0.jpg", "Scarlet Tanager"), ("cam1/CLIP_0.mp4", "Indian Roller"),
        ("cam1/CLIP_1.mp4", "Scarlet Tanager"), ("cam1/CLIP_2.mp4", "Indian Roller"),
        ("cam2/IMG_0.jpg", "Indian Roller"), ("cam2/IMG_1.jpg", "Indian Roller"),
        ("cam2/IMG_3.jpg", "Indian Roller"), ("cam2/IMG_4.jpg", "Indian Roller"), ("lone.mp4", "Scarlet Tanager")}


def test_a_negative_worker_count_is_a_usage_error(tmp_path: Path, planted: Path) -> None:
    result = run_cli("classify", "--workers", "-1", "--model", str(planted), str(tmp_path))
    assert result.returncode == 2 and "--workers" in result.stderr and "Traceback" not in result.stderr
