"""The command line as a user runs it: output, exit codes, one-line errors."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support.cli import REPO, run_cli

CONFIG = """station: garden
streams:
  - id: feeder
    url: rtsp://viewer@10.0.0.5/stream1
    password_file: feeder.pw
  - id: gate
    url: rtsp://admin:inlinepw@10.0.0.6/s
    enabled: false
mqtt:
  username: garden
  password_file: mqtt.pw
"""


def make_config(tmp_path: Path) -> Path:
    (tmp_path / "feeder.pw").write_text("camsecret\n")
    (tmp_path / "mqtt.pw").write_text("brokersecret\n")
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    return path


def test_check_config_prints_resolved_config_with_secrets_redacted(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    result = run_cli("check-config", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith(f"# {config}: valid (1 of 2 streams enabled)\n")
    for secret in ("camsecret", "brokersecret", "inlinepw", "viewer", "admin"):
        assert secret not in result.stdout
    data = yaml.safe_load(result.stdout)
    assert data["streams"][0]["url"] == "rtsp://***@10.0.0.5/stream1"
    assert data["streams"][0]["password"] == "***" and data["mqtt"]["password"] == "***"
    assert data["state_dir"] == str(tmp_path / "state")
    assert data["mqtt"]["password_file"] == str(tmp_path / "mqtt.pw")


def test_config_found_by_env_then_cwd(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    assert run_cli("check-config", env={"BIRDSTREAM_CONFIG": str(config)}).returncode == 0
    assert run_cli("check-config", cwd=tmp_path).returncode == 0


def test_schema_is_the_committed_file() -> None:
    result = run_cli("check-config", "--schema")
    assert result.returncode == 0
    assert result.stdout == (REPO / "birdstream" / "schemas" / "config.schema.json").read_text()


def test_run_with_bad_config_exits_2(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("streams:\n  - {id: a, url: x.mp4, sample_fps: -2}\n")
    result = run_cli("run", "-c", str(tmp_path / "config.yaml"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"birdstream: error: {tmp_path / 'config.yaml'}:2: streams[0].sample_fps: must be greater than 0 (got -2)"]


def test_classify_bad_model_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"")
    result = run_cli("classify", "--model", "missing.pt", "clip.mp4", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"birdstream: error: --model: {tmp_path / 'missing.pt'}: no such file"]
    (tmp_path / "junk.pt").write_text("junk")
    result = run_cli("classify", "--model", "junk.pt", "clip.mp4", cwd=tmp_path)
    assert result.returncode == 2 and "not a zip-format torch checkpoint" in result.stderr
    result = run_cli("classify", "--device", "gpu", "clip.mp4", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("birdstream: error: --device: ")


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run_cli().returncode == 2
    result = run_cli("classify", "--sample-fps", "0", "x.mp4")
    assert result.returncode == 2 and "must be greater than 0" in result.stderr
    assert run_cli("classify").returncode == 2  # no INPUT
    assert run_cli("bench", "--batch-sizes", "0").returncode == 2


def test_version_and_help() -> None:
    assert run_cli("--version").stdout.startswith("birdstream ")
    help_text = run_cli("--help").stdout
    for command in ("run", "check-config", "classify", "fetch-model", "bench", "health"):
        assert command in help_text


def test_service_modules_import_no_torch_and_read_no_env() -> None:
    import subprocess
    import sys

    from tests.support.cli import birdstream_env

    code = ("import sys, logging\n"
            "import birdstream.cli, birdstream.config, birdstream.service.supervisor, birdstream.service.http\n"
            "import birdstream.service.health, birdstream.service.reload, birdstream.service.weights\n"
            "import birdstream.service.logging, birdstream.service.sdnotify\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "assert not logging.getLogger().handlers, 'logging configured on import'\n")
    result = subprocess.run([sys.executable, "-c", code], env=birdstream_env(), capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_bench_prints_images_per_second_per_batch_size(tmp_path: Path) -> None:
    result = run_cli("bench", "--device", "cpu", "--precision", "fp32", "--batch-sizes", "1,2",
                     "--iterations", "1", "--size", "64", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.strip().splitlines()[1:]]
    assert [row[0] for row in rows] == ["1", "2"]
    assert all(float(row[1]) > 0 and float(row[2]) > 0 for row in rows)
