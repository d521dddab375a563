"""`birdstream health` on fresh, stale, unhealthy, dead and missing status files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from birdstream.service.supervisor import HealthSnapshot, write_health_file
from tests.support.cli import run_cli


def write(path: Path, *, pid: int | None = None, age: float = 0.0, healthy: bool = True) -> None:
    snap = HealthSnapshot(pid or os.getpid(), time.time() - age, "running", healthy,
                          "1/1 streams running" if healthy else "UNHEALTHY",
                          () if healthy else ("engine: no heartbeat for 90 s",))
    write_health_file(path, snap)


def test_fresh_healthy(tmp_path: Path) -> None:
    write(tmp_path / "h.json")
    result = run_cli("health", "--file", str(tmp_path / "h.json"))
    assert (result.returncode, result.stdout) == (0, "healthy: 1/1 streams running\n")


def test_stale(tmp_path: Path) -> None:
    write(tmp_path / "h.json", age=120)
    result = run_cli("health", "--file", str(tmp_path / "h.json"))
    assert result.returncode == 1 and "health file is 120 s old" in result.stdout
    assert run_cli("health", "--file", str(tmp_path / "h.json"), "--max-age", "300").returncode == 0


def test_unhealthy(tmp_path: Path) -> None:
    write(tmp_path / "h.json", healthy=False)
    result = run_cli("health", "--file", str(tmp_path / "h.json"))
    assert result.returncode == 1 and "engine: no heartbeat for 90 s" in result.stdout


def test_dead_pid(tmp_path: Path) -> None:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    write(tmp_path / "h.json", pid=int(child.stdout))
    result = run_cli("health", "--file", str(tmp_path / "h.json"))
    assert result.returncode == 1 and "is not running" in result.stdout


def test_missing_and_garbage(tmp_path: Path) -> None:
    result = run_cli("health", "--file", str(tmp_path / "absent.json"))
    assert result.returncode == 1 and "no health file" in result.stdout
    (tmp_path / "bad.json").write_text("{not json")
    assert run_cli("health", "--file", str(tmp_path / "bad.json")).returncode == 1
    (tmp_path / "list.json").write_text(json.dumps([1, 2]))
    assert "not a birdstream health file" in run_cli("health", "--file", str(tmp_path / "list.json")).stdout


def test_health_file_from_config(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "state_dir: st\nstreams:\n  - {id: a, url: rtsp://cam/s}\n")
    write(tmp_path / "st" / "health.json")
    assert run_cli("health", "-c", str(tmp_path / "config.yaml")).returncode == 0
    assert run_cli("health", cwd=tmp_path).returncode == 0  # ./config.yaml
    bad = run_cli("health", "-c", str(tmp_path / "nope.yaml"))
    assert bad.returncode == 1 and bad.stderr.startswith("birdstream: error: ")
