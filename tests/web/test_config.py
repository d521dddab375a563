"""http.auth, http caps and the store section of config.yaml: read, checked, the password never shown."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import run_cli


def write(tmp_path: Path, http: str) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(f"streams:\n  - id: cam\n    url: {tmp_path / 'x.mp4'}\nhttp:\n{http}\n"
                      "store:\n  max_age_days: 30\n")
    return config


def test_the_review_password_is_read_from_its_file_and_never_printed(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("hunter2-secret\n")
    config = write(tmp_path, "  host: 0.0.0.0\n  auth:\n    username: owner\n    password_file: pw\n"
                             "  max_connections: 8")
    result = run_cli("check-config", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert "owner" in result.stdout and "max_connections: 8" in result.stdout and "max_age_days: 30" in result.stdout
    assert "hunter2" not in result.stdout + result.stderr


def test_bad_http_and_store_keys_are_one_line_naming_them(tmp_path: Path) -> None:
    cases = [
        ("  auth:\n    username: owner\n    password_file: missing-pw", "http.auth.password_file"),
        ("  auth:\n    username: owner", "http.auth.password_file"),
        ("  max_connections: 0", "http.max_connections"),
        ("  max_body_bytes: 10", "http.max_body_bytes"),
        ("  auth:\n    username: 'a:b'\n    password_file: pw", "http.auth.username"),
    ]
    (tmp_path / "pw").write_text("x\n")
    for http, key in cases:
        result = run_cli("check-config", "-c", str(write(tmp_path, http)))
        assert result.returncode == 2 and key in result.stderr, (http, result.stderr)
        assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
