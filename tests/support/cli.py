"""Run the birdstream command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def birdstream_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process environment with the repository importable and no systemd/birdstream variables."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "BIRDSTREAM_CONFIG",
                        "STATE_DIRECTORY", "CACHE_DIRECTORY", "CREDENTIALS_DIRECTORY")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def run_cli(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m birdstream ARGS`` with captured text output."""
    return subprocess.run([sys.executable, "-m", "birdstream", *args], cwd=cwd or REPO, env=birdstream_env(env),
                          capture_output=True, text=True, timeout=timeout, check=False)
