"""`classify --resume`: a run SIGKILLed anywhere finishes with exactly the outputs of an uninterrupted one."""

from __future__ import annotations

import csv
import json
import signal
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import BLUE, RED, birdstream_cmd, json_lines
from tests.support.planted import make_planted_checkpoint
from tests.support.cli import birdstream_env, run_cli
from tests.support.daemon import wait_until
from tests.support.video import Box, make_video

BIRD = (110, 70, 100, 90)


def deterministic(events: list[dict]) -> list[dict]:
    """Events without their sighting id (a random uuid); each id still maps to one sighting."""
    ids: dict[str, int] = {}
    return [{**e, "id": ids.setdefault(e["id"], len(ids))} for e in events]


def summary_rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return [{**row, "id": ""} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("media")
    clips = []
    for i in range(4):
        colour = RED if i % 2 == 0 else BLUE
        # Two visits per clip: the first visit's events reach --out while the clip is half read.
        clips.append(make_video(folder / f"clip{i}.mp4", duration_s=40, fps=5, size=(160, 120), objects=[
            Box(colour, (55, 35, 50, 45), 1.0, 4.0), Box(colour, (55, 35, 50, 45), 30.0, 34.0)]))
    return clips


def classify_args(planted: Path, out: Path, summary: Path, inputs: list[Path]) -> list[str]:
    return ["classify", "-q", "--workers", "2", "--model", str(planted), "--out", str(out), "--summary", str(summary),
            *map(str, inputs)]


def manifest_done(out: Path) -> int:
    manifest = out.with_name(out.name + ".manifest.jsonl")
    return max(0, len(manifest.read_text().splitlines()) - 1) if manifest.exists() else 0


def recorded_out_bytes(out: Path) -> int:
    lines = out.with_name(out.name + ".manifest.jsonl").read_text().splitlines()[1:]
    return json.loads(lines[-1])["out_bytes"] if lines else 0


def kill_when(args: list[str], condition) -> None:
    proc = subprocess.Popen(birdstream_cmd(*args), env=birdstream_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: condition() or proc.poll() is not None, timeout=240, what="the kill point",
                   interval=0.02)
        assert proc.poll() is None, "the run ended before the kill point"
        workers = children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert workers  # the decoding processes (--workers defaults to the cores, 2 at least here: see args)
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), timeout=30,
               what="the orphaned workers to exit")


def children(pid: int) -> list[int]:
    """Processes whose parent is pid (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_resume_after_sigkill_at_several_points_equals_an_uninterrupted_run(
        tmp_path: Path, planted: Path, inputs: list[Path]) -> None:
    ref_out, ref_summary = tmp_path / "ref.jsonl", tmp_path / "ref.csv"
    result = run_cli(*classify_args(planted, ref_out, ref_summary, inputs), timeout=300)
    assert result.returncode == 0, result.stderr
    reference = deterministic(json_lines(ref_out.read_text()))
    assert len({e["id"] for e in reference}) == 8  # two visits in each of four clips
    out, summary = tmp_path / "out.jsonl", tmp_path / "out.csv"
    args = classify_args(planted, out, summary, inputs)

    def half_done_input() -> bool:  # events of an input after the last finished one are in --out
        return manifest_done(out) >= 1 and out.stat().st_size > recorded_out_bytes(out)

    kill_when(args, lambda: manifest_done(out) >= 1)  # between inputs (or just after)
    kill_when([*args, "--resume"], half_done_input)  # in the middle of an input, with its partial events out
    assert manifest_done(out) < len(inputs) and out.stat().st_size > recorded_out_bytes(out)  # partial events
    result = run_cli(*args, "--resume", timeout=300)
    assert result.returncode == 0, result.stderr
    assert deterministic(json_lines(out.read_text())) == reference
    assert summary_rows(summary) == summary_rows(ref_summary)
    rows = list(csv.DictReader(summary.open(newline="")))
    assert [r["id"] for r in rows] == [e["id"] for e in json_lines(out.read_text()) if e["event"] == "end"]


def test_resume_of_a_finished_run_classifies_nothing_again(tmp_path: Path, planted: Path,
                                                            inputs: list[Path]) -> None:
    out, summary = tmp_path / "out.jsonl", tmp_path / "out.csv"
    args = classify_args(planted, out, summary, inputs[:1])
    assert run_cli(*args, timeout=300).returncode == 0
    before = out.read_bytes(), summary.read_bytes()
    manifest = out.with_name(out.name + ".manifest.jsonl")
    with manifest.open("a") as f:
        f.write('{"input": "torn by a power cu')  # a line cut short must not stop the resume
    result = run_cli(*args, "--resume", timeout=300)
    assert result.returncode == 0, result.stderr
    assert (out.read_bytes(), summary.read_bytes()) == before


def test_resume_with_other_arguments_or_model_is_a_usage_error(tmp_path: Path, planted: Path,
                                                                inputs: list[Path]) -> None:
    out, summary = tmp_path / "out.jsonl", tmp_path / "out.csv"
    args = classify_args(planted, out, summary, inputs[:1])
    assert run_cli(*args, timeout=300).returncode == 0
    shutil.copy(planted, tmp_path / "same.pt")
    cases = [
        (classify_args(planted, out, summary, inputs[:2]), "inputs"),
        ([*args, "--sample-fps", "3"], "options"),
    ]
    for bad, differ in cases:
        result = run_cli(*bad, "--resume", timeout=120)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("birdstream: error: --resume:") and differ in lines[0], lines
    swapped = [a if a != str(planted) else str(tmp_path / "same.pt") for a in args]
    assert run_cli(*swapped, "--resume", timeout=120).returncode == 0  # the same model under another path
    make_planted_checkpoint(tmp_path / "same.pt", size=(112, 112))  # other weights under that path
    result = run_cli(*swapped, "--resume", timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"birdstream: error: --resume: {out}.manifest.jsonl was written by a run with a different model "
        "(resume with the same inputs, options, model and config, or run without --resume)"]
    no_out = run_cli("classify", "-q", "--model", str(planted), "--resume", str(inputs[0]))
    assert no_out.returncode == 2 and no_out.stdout == ""
    assert no_out.stderr.splitlines() == [
        "birdstream: error: --resume: needs --out FILE (the manifest of finished inputs lives next to it)"]
