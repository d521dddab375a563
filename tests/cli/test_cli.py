"""The command line as a user runs it: output, exit codes, one-line errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.cli import REPO, birdstream_env, run_cli

CONFIG = """station: garden
streams:
  - id: feeder
    url: rtsp://viewer@10.0.0.5/stream1
    password_file: feeder.pw
  - id: gate
    url: rtsp://admin@10.0.0.6/s
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


def python(code: str, *args: str, prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -c code args...`` in a fresh interpreter with the test environment."""
    return subprocess.run([*(prefix or []), sys.executable, "-c", code, *args], env=birdstream_env(),
                          capture_output=True, text=True, timeout=60, check=False)


def test_service_modules_import_no_torch_and_read_no_env() -> None:
    code = ("import sys, logging\n"
            "import birdstream.cli, birdstream.config, birdstream.service.supervisor, birdstream.service.http\n"
            "import birdstream.service.health, birdstream.service.reload, birdstream.model.weights\n"
            "import birdstream.service.logsetup, birdstream.service.sdnotify\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "assert not logging.getLogger().handlers, 'logging configured on import'\n")
    result = python(code)
    assert result.returncode == 0, result.stderr


def test_bench_prints_images_per_second_per_batch_size(tmp_path: Path) -> None:
    result = run_cli("bench", "--device", "cpu", "--precision", "fp32", "--batch-sizes", "1,2",
                     "--iterations", "1", "--size", "64", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.strip().splitlines()[1:]]
    assert [row[0] for row in rows] == ["1", "2"]
    assert all(float(row[1]) > 0 and float(row[2]) > 0 for row in rows)


def test_check_config_refuses_weights_that_are_neither_a_name_nor_a_checkpoint(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("station: g\nmodel:\n  weights: vit_parallel_typo\nstreams:\n  - {id: a, url: a.mp4}\n")
    result = run_cli("check-config", "-c", str(config))
    assert result.returncode == 2, result.stdout
    assert result.stderr.splitlines() == [
        f"birdstream: error: {config}: model.weights: 'vit_parallel_typo' is not a known weights name "
        "(vit_parallel_s16_18x2_ls_avg_data2vec-intermediate-arabian-peninsula, "
        "vit_parallel_s16_18x2_ls_avg_data2vec-intermediate-eu-common, "
        "vit_parallel_s16_18x2_ls_avg_data2vec-intermediate-il-all) nor a path to a .pt file"]
    config.write_text("station: g\nmodel:\n  weights: vit_parallel_s16_18x2_ls_avg_data2vec-intermediate-eu-common\n"
                      "streams:\n  - {id: a, url: a.mp4}\n")
    assert run_cli("check-config", "-c", str(config)).returncode == 0


def test_an_unreadable_weights_file_says_so(tmp_path: Path) -> None:
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    weights = tmp_path / "w.pt"
    shutil.copy(REPO / "tests/model/fixtures/tiny_vit_parallel.pt", weights)
    weights.chmod(0)
    code = ("import sys; from pathlib import Path; from birdstream.model.weights import check_checkpoint_file\n"
            "try:\n    check_checkpoint_file(Path(sys.argv[1]))\nexcept Exception as e:\n    print(e)\n")
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    result = python(code, str(weights), prefix=prefix)
    assert result.stdout.strip() == f"model.weights: {weights}: cannot read: Permission denied", result.stderr


def test_a_one_shot_command_leaves_the_sigterm_handler_as_it_found_it() -> None:
    code = ("import io, signal, sys\n"
            "from birdstream.cli import main\n"
            "before = signal.getsignal(signal.SIGTERM)\n"
            "sys.stdout = io.StringIO()\n"
            "assert main(['check-config', '--schema']) == 0\n"
            "assert signal.getsignal(signal.SIGTERM) is before\n")
    result = python(code)
    assert result.returncode == 0, result.stderr


def test_a_signal_inside_a_held_block_is_raised_at_its_end() -> None:
    """classify writes each event whole: SIGTERM during the write is raised after it, not inside it."""
    code = ("import os, signal\n"
            "from birdstream.cli import Terminated, _Stopper\n"
            "stop = _Stopper()\n"
            "signal.signal(signal.SIGTERM, stop)\n"
            "done = []\n"
            "try:\n"
            "    with stop.hold():\n"
            "        os.kill(os.getpid(), signal.SIGTERM)\n"
            "        done.append('written')\n"
            "except Terminated:\n"
            "    print('raised after', done, stop.event.is_set())\n"
            "try:\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "except Terminated:\n"
            "    print('raised at once')\n")
    result = python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["raised after ['written'] True", "raised at once"]
