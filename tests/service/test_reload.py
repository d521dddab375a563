"""Config reload: which streams to add, remove or restart, and what needs a daemon restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from birdstream.config import Config, ConfigError, load_config
from birdstream.service.reload import ConfigDiff, diff_configs, make_reloader

BASE = """
streams:
  - {id: feeder, url: rtsp://cam1/s}
  - {id: pond, url: rtsp://cam2/s}
  - {id: gate, url: rtsp://cam3/s}
  - {id: spare, url: rtsp://cam4/s, enabled: false}
"""


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_config(path)


def test_diff(tmp_path: Path) -> None:
    old = load(tmp_path, BASE)
    new = load(tmp_path, """
log_level: DEBUG
mqtt: {host: broker.lan}
streams:
  - {id: feeder, url: rtsp://cam1/s}
  - {id: pond, url: rtsp://cam2/s, sample_fps: 4}
  - {id: spare, url: rtsp://cam4/s}
  - {id: new, url: /dev/video0}
""")
    diff = diff_configs(old, new)
    assert diff == ConfigDiff(added=("spare", "new"), removed=("gate",), changed=("pond",),
                              restart_needed=("mqtt",), log_level_changed=True)
    assert diff.summary() == ("added spare, new; removed gate; restarted pond; log level changed; "
                              "needs a restart to apply: mqtt")
    assert diff_configs(old, old).summary() == "no changes"


def test_changed_password_restarts_the_stream(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("one")
    text = "streams:\n  - {id: a, url: 'rtsp://u@cam/s', password_file: pw}\n"
    old = load(tmp_path, text)
    (tmp_path / "pw").write_text("two")
    assert diff_configs(old, load(tmp_path, text)).changed == ("a",)


def test_reloader_applies_or_keeps(tmp_path: Path) -> None:
    current = [load(tmp_path, BASE)]
    applied: list[ConfigDiff] = []

    def apply(new: Config, diff: ConfigDiff) -> None:
        current[0] = new
        applied.append(diff)

    reload = make_reloader(tmp_path / "config.yaml", lambda: current[0], apply)
    (tmp_path / "config.yaml").write_text(BASE.replace("rtsp://cam3/s", "rtsp://cam9/s"))
    assert reload() == "restarted gate"
    (tmp_path / "config.yaml").write_text(BASE + "  - {id: x, url: y.mp4, bogus: 1}\n")
    with pytest.raises(ConfigError, match=r"streams\[4\]\.bogus: unknown key"):
        reload()
    assert len(applied) == 1 and current[0].stream("gate").url == "rtsp://cam9/s"
