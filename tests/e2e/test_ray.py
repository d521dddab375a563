"""`classify --ray` on a local Ray (2 CPUs): the outputs of a local run, resume included."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.conftest import BLUE, RED, json_lines
from tests.support.cli import run_cli
from tests.support.video import Box, make_still, make_video

pytest.importorskip("ray.data", reason="the ray extra is not installed (pip install -e '.[ray]')")
pytestmark = pytest.mark.slow

BIRD = (110, 70, 100, 90)


def deterministic(events: list[dict]) -> list[dict]:
    ids: dict[str, int] = {}
    return [{**e, "id": ids.setdefault(e["id"], len(ids))} for e in events]


def ours(stderr: str) -> list[str]:
    """birdstream's own lines (Ray's core workers may add a warning of their own)."""
    return [line for line in stderr.splitlines() if line.startswith("birdstream:")]


def test_ray_gives_the_outputs_of_a_local_run_and_resumes(tmp_path: Path, planted: Path) -> None:
    card = tmp_path / "card"
    (card / "cam1").mkdir(parents=True)
    t0 = datetime(2024, 5, 1, 6, 0, 0)
    for i in range(3):
        make_still(card / "cam1" / f"IMG_{i}.jpg", objects=[Box(RED, BIRD)], taken_at=t0 + timedelta(seconds=i), seed=i)
    make_video(card / "cam1" / "CLIP_0.mp4", duration_s=6, fps=10, objects=[Box(BLUE, BIRD, 1.0, 4.0)])
    (card / "BROKEN.mp4").write_bytes(os.urandom(4096))
    lone = make_video(tmp_path / "lone.mp4", duration_s=6, fps=10, objects=[Box(RED, BIRD, 2.0, 5.0)])
    runs = {}
    for mode, extra in (("local", ["--workers", "0"]), ("ray", ["--ray"])):
        out, summary = tmp_path / f"{mode}.jsonl", tmp_path / f"{mode}.csv"
        result = run_cli("classify", "-q", *extra, "--model", str(planted), "--out", str(out), "--summary",
                         str(summary), str(card), str(lone), timeout=280)
        assert result.returncode == 1, result.stderr
        runs[mode] = (deterministic(json_lines(out.read_text())), ours(result.stderr),
                      [line.rsplit(",", 1)[0] for line in summary.read_text().splitlines()])
    assert runs["ray"] == runs["local"]
    events, errors, _ = runs["ray"]
    assert len(errors) == 1 and "BROKEN.mp4" in errors[0] and "Traceback" not in errors[0]
    assert {(e["stream"], e["species"]) for e in events} == {
        ("cam1/IMG_0.jpg", "Scarlet Tanager"), ("cam1/CLIP_0.mp4", "Indian Roller"), ("lone.mp4", "Scarlet Tanager")}

    # Killed just before the second input was recorded: its events are in --out beyond the record.
    out, summary = tmp_path / "ray.jsonl", tmp_path / "ray.csv"
    manifest = out.with_name(out.name + ".manifest.jsonl")
    manifest.write_text("\n".join(manifest.read_text().splitlines()[:2]) + "\n")
    assert json.loads(manifest.read_text().splitlines()[1])["out_bytes"] < out.stat().st_size
    result = run_cli("classify", "-q", "--ray", "--model", str(planted), "--out", str(out), "--summary",
                     str(summary), str(card), str(lone), "--resume", timeout=280)
    assert result.returncode == 1, result.stderr
    assert ours(result.stderr) == errors  # the first input's error is named again
    assert deterministic(json_lines(out.read_text())) == runs["local"][0]
    assert [line.rsplit(",", 1)[0] for line in summary.read_text().splitlines()] == runs["local"][2]
