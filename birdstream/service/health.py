"""`birdstream health`: is the daemon that writes this status file alive, recent and healthy?"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MAX_AGE_S = 30.0


@dataclass(frozen=True)
class HealthVerdict:
    healthy: bool
    message: str  # one line


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user (e.g. checked from another account)
        return True
    return True


def check_health_file(path: Path, *, max_age_s: float = DEFAULT_MAX_AGE_S, now: float | None = None) -> HealthVerdict:
    """Judge a health status file written by the supervisor."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return HealthVerdict(False, f"{path}: no health file (is birdstream running with this config?)")
    except (OSError, ValueError) as exc:
        return HealthVerdict(False, f"{path}: unreadable health file: {exc}")
    if not isinstance(data, dict) or not isinstance(data.get("pid"), int) or not isinstance(
            data.get("time"), (int, float)):
        return HealthVerdict(False, f"{path}: not a birdstream health file")
    now = time.time() if now is None else now
    age = now - float(data["time"])
    if not _pid_alive(data["pid"]):
        return HealthVerdict(False, f"unhealthy: daemon (pid {data['pid']}) is not running")
    if age > max_age_s:
        return HealthVerdict(False, f"unhealthy: health file is {age:.0f} s old (daemon wedged?)")
    if not data.get("healthy"):
        reasons = "; ".join(str(r) for r in data.get("reasons") or []) or str(data.get("state"))
        return HealthVerdict(False, f"unhealthy: {reasons}")
    return HealthVerdict(True, f"healthy: {data.get('status', 'running')}")
