"""notify:, digest:, timezone and sightings.priors in the config: checked at load, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.planted import make_planted_checkpoint

STREAM = "streams:\n  - id: feeder\n    url: rtsp://cam.local/stream1\n"
SECRET = "Zq9tokenXYZ"


@pytest.mark.parametrize(("text", "expected"), [
    (f"notify:\n  - url: foo://{SECRET}@host/x\n", ":5: notify[0].url: Apprise does not know the scheme 'foo'"),
    (f"notify:\n  - url: {SECRET}\n", ":5: notify[0].url: not an Apprise URL"),
    (f"notify:\n  - url: mailto://\n", ":5: notify[0].url: Apprise cannot use this mailto:// URL"),
    (f"notify:\n  - url: tgram://{SECRET}/1\n    when: [sometimes]\n", ":6: notify[0].when[0]: must be 'start'"),
    (f"notify:\n  - url: tgram://1234567:{SECRET}/1\n    when: []\n", "notify[0].when: needs at least one"),
    (f"notify:\n  - url: tgram://1234567:{SECRET}/1\n    quiet_hours: 22-6\n",
     "notify[0].quiet_hours: must be HH:MM-HH:MM"),
    (f"digest:\n  url: json://{SECRET}:x@127.0.0.1/\n  at: '25:00'\n", "digest.at: must be a time of day HH:MM"),
    (f"digest:\n  url: nope://{SECRET}\n", "digest.url: Apprise does not know the scheme 'nope'"),
    ("timezone: Europe/Atlantis\n", ":4: timezone: unknown time zone 'Europe/Atlantis'"),
    ("sightings:\n  priors_default: 2\n", "sightings.priors_default: must be less than or equal to 1"),
])
def test_bad_notify_and_prior_keys_are_one_line_without_the_secret(tmp_path: Path, text: str, expected: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(STREAM + text)
    result = run_cli("check-config", "-c", str(config))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_check_config_shows_notify_urls_redacted_and_checks_the_priors_file(tmp_path: Path) -> None:
    model = make_planted_checkpoint(tmp_path / "planted.pt")
    header = "species,jan,feb,mar,apr,may,jun,jul,aug,sep,oct,nov,dec\n"
    (tmp_path / "priors.csv").write_text(header + "Scarlet Tanager" + ",0.5" * 12 + "\n")
    config = tmp_path / "config.yaml"
    base = (STREAM + f"model:\n  weights: {model}\ntimezone: Asia/Muscat\nsightings:\n  priors: priors.csv\n"
            f"notify:\n  - url: tgram://1234567:{SECRET}/42\n    quiet_hours: 22:00-06:00\n"
            f"digest:\n  url: json://u:{SECRET}@127.0.0.1:9/\n  at: 20:00\n")
    config.write_text(base)
    result = run_cli("check-config", "-c", str(config), timeout=120)
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert "priors.csv" in result.stdout and "quiet_hours: 22:00-06:00" in result.stdout
    assert "at: '20:00'" in result.stdout  # an unquoted 20:00 (YAML 1.1 reads 1200) is read as meant
    # A species the model does not know is named with its line.
    (tmp_path / "priors.csv").write_text(header + "Scarlet Tanager" + ",0.5" * 12 + "\nDodo" + ",1" * 12 + "\n")
    result = run_cli("check-config", "-c", str(config), timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "priors.csv:3: unknown species 'Dodo'" in lines[0], result.stderr
    (tmp_path / "priors.csv").write_text(header + "Scarlet Tanager,1,1\n")
    result = run_cli("check-config", "-c", str(config), timeout=120)
    assert result.returncode == 2 and "priors.csv:2: needs 13 fields" in result.stderr


def test_a_notify_url_can_come_from_a_file(tmp_path: Path) -> None:
    from birdstream.config import load_config
    from birdstream.station.wiring import notify_options

    (tmp_path / "ntfy.url").write_text(f"ntfy://user:{SECRET}@ntfy.example/birds\n")
    config = tmp_path / "config.yaml"
    config.write_text(STREAM + "notify:\n  - url_file: ntfy.url\n    when: [start]\ndigest:\n  url_file: ntfy.url\n")
    options = notify_options(load_config(config))
    assert options is not None and options.targets[0].url == f"ntfy://user:{SECRET}@ntfy.example/birds"
    assert options.digest is not None and options.digest.url == options.targets[0].url
    assert SECRET not in repr(options)
    shown = run_cli("check-config", "-c", str(config))
    assert shown.returncode == 0 and SECRET not in shown.stdout + shown.stderr


@pytest.mark.parametrize(("text", "expected"), [
    ("notify:\n  - url_file: nope.url\n", ":5: notify[0].url_file: cannot read"),
    ("notify:\n  - when: [start]\n", ":5: notify[0].url: missing"),
    (f"notify:\n  - url: ntfy://x/{SECRET}\n    url_file: a.url\n", "notify[0].url_file: give url or url_file, not both"),
])
def test_url_file_mistakes_are_one_line(tmp_path: Path, text: str, expected: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(STREAM + text)
    result = run_cli("check-config", "-c", str(config))
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert SECRET not in result.stderr
