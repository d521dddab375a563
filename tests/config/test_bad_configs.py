"""Every bad config is one line on stderr naming the file and key, exit 2, never a traceback."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.support.cli import run_cli

GOOD_STREAM = "streams:\n  - id: feeder\n    url: rtsp://cam.local/stream1\n"

CASES = {
    "unknown-top-level": (GOOD_STREAM + "sightngs:\n  enter_score: 0.7\n",
                          ":4: sightngs: unknown key (did you mean 'sightings'?)"),
    "misspelt-stream-key": (GOOD_STREAM + "    sampel_fps: 3\n",
                            ":4: streams[0].sampel_fps: unknown key (did you mean 'sample_fps'?)"),
    "misspelt-nested-key": (GOOD_STREAM + "    motion:\n      treshold: 0.1\n",
                            ":5: streams[0].motion.treshold: unknown key (did you mean 'threshold'?)"),
    "wrong-type": (GOOD_STREAM + "    sample_fps: fast\n", ":4: streams[0].sample_fps: must be a valid number"),
    "out-of-range": (GOOD_STREAM + "    sample_fps: 0\n", ":4: streams[0].sample_fps: must be greater than 0"),
    "port-out-of-range": (GOOD_STREAM + "mqtt:\n  port: 70000\n", ":5: mqtt.port: must be less than or equal"),
    "bad-literal": (GOOD_STREAM + "    rtsp_transport: http\n", ":4: streams[0].rtsp_transport: must be 'tcp' or 'udp'"),
    "bad-protocol": (GOOD_STREAM + "mqtt:\n  protocol: 4\n", ":5: mqtt.protocol: must be '5' or '3.1.1'"),
    "duplicate-ids": (GOOD_STREAM + "  - id: feeder\n    url: /dev/video0\n",
                      ":4: streams[1].id: duplicate stream id 'feeder' (also streams[0])"),
    "invalid-id": ("streams:\n  - id: Front Door\n    url: x.mp4\n", ":2: streams[0].id: may hold only"),
    "yaml-boolean-id": ("streams:\n  - id: off\n    url: x.mp4\n",
                        ":2: streams[0].id: must be a valid string (got False: YAML reads yes/no/on/off"),
    "streams-not-a-list": ("streams:\n  id: a\n  url: x.mp4\n", ":1: streams: must be a list (got a mapping)"),
    "stream-without-url": ("streams:\n  - id: a\n", ":2: streams[0].url: missing (this key is required)"),
    "invalid-station": ("station: My Garden\n" + GOOD_STREAM, ":1: station: may hold only"),
    "no-streams": ("station: garden\n", "streams: at least one stream is needed"),
    "empty-stream-list": ("streams: []\n", ":1: streams: at least one stream is needed"),
    "exit-above-enter": (GOOD_STREAM + "sightings:\n  enter_score: 0.5\n  exit_score: 0.5\n",
                         ":6: sightings.exit_score: must be lower than enter_score (0.5)"),
    "yaml-syntax": (GOOD_STREAM + "   broken: [1, 2\n", ":4: invalid YAML"),
    "yaml-duplicate-key": (GOOD_STREAM + "    url: rtsp://other/\n", ":4: invalid YAML: duplicate key 'url'"),
    "empty-file": ("", "the file is empty"),
    "comments-only": ("# nothing here\n", "the file is empty"),
    "top-level-list": ("- id: a\n", ":1: the top level must be a mapping"),
    "inline-mqtt-password": (GOOD_STREAM + "mqtt:\n  password: hunter2\n",
                             ":5: mqtt.password: secrets are not written in the config"),
    "missing-password-file": (GOOD_STREAM + "    password_file: nope.txt\n",
                              ":4: streams[0].password_file: cannot read"),
    "roi-shape": (GOOD_STREAM + "    roi: [1, 2, 3]\n", ":4: streams[0].roi: must be [x, y, w, h]"),
    "regions-out-of-range": (GOOD_STREAM + "regions:\n  max_regions: 0\n",
                             ":5: regions.max_regions: must be greater than or equal to 1"),
    "stream-regions-out-of-range": (GOOD_STREAM + "    regions:\n      context: 0.5\n",
                                    ":5: streams[0].regions.context: must be greater than or equal to 1"),
    "missing-tls-file": (GOOD_STREAM + "mqtt:\n  tls:\n    ca_file: ca.pem\n", ":6: mqtt.tls.ca_file: no such file"),
    "unsupported-scheme": ("streams:\n  - id: a\n    url: ftp://cam:s3cret@cam.local/x\n",
                           ":3: streams[0].url: unsupported URL scheme 'ftp': use one of rtsp, rtsps, http, "
                           "https, rtmp, rtmps, file, a file, a folder or /dev/videoN (got 'ftp://***@cam.local/x')"),
    "password-in-url": (GOOD_STREAM.replace("rtsp://cam.local", "rtsp://admin:hunter2@cam.local"),
                        ":3: streams[0].url: a password is written in the URL; passwords are not written in the "
                        "config: keep only the user name before the @ and put the password in a file named by "
                        "password_file (got 'rtsp://***@cam.local/stream1')"),
    "password-with-a-space-in-url": (GOOD_STREAM.replace("rtsp://cam.local", "'rtsp://admin:my secret@cam.local")
                                     .replace("stream1\n", "stream1'\n"), "(got 'rtsp://***@cam.local/stream1')"),
    "missing-weights": ("model:\n  weights: ./models/bird.pt\n" + GOOD_STREAM, ": model.weights: "),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_config_is_one_line_exit_2(tmp_path: Path, name: str) -> None:
    text, expected = CASES[name]
    config = tmp_path / "config.yaml"
    config.write_text(text)
    result = run_cli("check-config", "-c", str(config))
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"birdstream: error: {config}"), lines[0]
    assert expected in lines[0], lines[0]
    assert result.stdout == ""
    assert "hunter2" not in result.stderr and "my secret" not in result.stderr


def test_a_user_without_password_in_the_url_is_fine(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(GOOD_STREAM.replace("rtsp://cam.local", "rtsp://viewer@cam.local"))
    assert run_cli("check-config", "-c", str(config)).returncode == 0


def test_missing_file(tmp_path: Path) -> None:
    result = run_cli("check-config", "-c", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2
    assert result.stderr == f"birdstream: error: {tmp_path / 'absent.yaml'}: no such config file\n"


def test_no_config_anywhere(tmp_path: Path) -> None:
    result = run_cli("check-config", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("birdstream: error: no config file: give -c FILE")


def test_weights_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    fake = tmp_path / "fake.pt"
    with zipfile.ZipFile(fake, "w") as archive:  # a zip, but without a pickle
        archive.writestr("fake/version", "3")
    for weights, expected in (("notes.pt", "not a zip-format torch checkpoint"), ("fake.pt", "not a torch checkpoint (no data.pkl)")):
        config = tmp_path / "config.yaml"
        config.write_text(f"model:\n  weights: {weights}\n" + GOOD_STREAM)
        result = run_cli("check-config", "-c", str(config))
        assert result.returncode == 2
        assert result.stderr.splitlines() == [
            f"birdstream: error: {config}: model.weights: {tmp_path / weights}: {expected}"]


def test_the_config_knows_the_url_schemes_ingest_reads() -> None:
    from birdstream.config.base import SOURCE_SCHEMES
    from birdstream.ingest.spec import _SCHEMES

    assert set(SOURCE_SCHEMES) == {*_SCHEMES, "file"}
