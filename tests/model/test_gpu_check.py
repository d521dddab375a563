"""bench/gpu_check.sh, the one script a GPU machine runs, in its CPU mode: it cannot rot unseen."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_runs_on_cpu_and_fills_its_folder(tmp_path):
    out = tmp_path / "check"
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    proc = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), str(out), "--cpu"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "cpu"
    assert {name: step["rc"] for name, step in summary["steps"].items()} == {"tests": 0, "bench": 0}
    result = json.loads((out / "gpu.json").read_text())
    variants = {r["variant"] for r in result["rows"]}
    assert {"fp32", "bf16", "bf16 engine"} <= variants
    assert "torch" in (out / "env.txt").read_text()
    assert (out / "tests.xml").read_text().count("<testcase") >= 3  # the GPU tests ran (skipped on a CPU)
    assert "bf16 engine" in proc.stdout  # the table is shown at the end


def test_gpu_check_writes_to_out_when_no_folder_is_given(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "from-env")}
    script = REPO / "bench" / "gpu_check.sh"
    # Only the folder choice is checked: the run itself is the test above, so this one stops early.
    proc = subprocess.run(["bash", "-c", f'sed -n "1,/^cd \\"\\$root\\"/p" "{script}" > s.sh && bash s.sh --cpu'],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "from-env").is_dir()
