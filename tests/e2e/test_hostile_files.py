"""Files a card or an uploader can hold: an absurd EXIF date, control characters and spreadsheet
formulas in names. Each is read; the log stays one line per record; the summary stays data."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from PIL import Image

from tests.e2e.conftest import BLUE, json_lines
from tests.support.cli import run_cli

MTIME = 1_750_000_000  # 2025-06-15T15:06:40Z


def bird_still(path: Path, exif_date: str | None = None) -> Path:
    image = Image.new("RGB", (320, 240), (128, 128, 128))
    image.paste(BLUE, (110, 70, 210, 160))
    exif = Image.Exif()
    if exif_date is not None:
        exif.get_ifd(0x8769)[0x9003] = exif_date
    image.save(path, format="JPEG", exif=exif)
    os.utime(path, (MTIME, MTIME))
    return path


def test_an_exif_date_in_year_9999_falls_back_to_the_file_time_with_one_warning(tmp_path: Path,
                                                                                planted: Path) -> None:
    card = tmp_path / "card"
    card.mkdir()
    bird_still(card / "IMG_0001.JPG", "9999:12:31 23:59:59")
    result = run_cli("classify", "--model", str(planted), str(card), timeout=240)
    assert result.returncode == 0, result.stderr
    events = json_lines(result.stdout)
    assert [e["event"] for e in events] == ["start", "end"]
    assert events[0]["started_at"] == "2025-06-15T15:06:40.000Z"
    warnings = [line for line in result.stderr.splitlines() if "EXIF date" in line]
    assert len(warnings) == 1 and "9999:12:31 23:59:59 is not plausible; using the file time" in warnings[0]
    assert "Traceback" not in result.stderr


def test_control_characters_in_a_file_name_are_escaped_in_every_line(tmp_path: Path, planted: Path) -> None:
    card = tmp_path / "card"
    card.mkdir()
    bird_still(card / "IMG\x1b[2J\nFAKE: all good.JPG", "9999:01:01 00:00:00")
    broken = card / "cut\rshort.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 40)
    result = run_cli("classify", "--model", str(planted), str(card), timeout=240)
    assert result.returncode == 1, result.stderr  # the broken clip
    assert "\x1b" not in result.stderr and "\r" not in result.stderr
    assert not any(line.startswith("FAKE") for line in result.stderr.splitlines()), result.stderr
    assert "IMG\\x1b[2J\\nFAKE: all good.JPG: EXIF date" in result.stderr
    assert "cut\\rshort.mp4" in result.stderr


def test_summary_cells_that_a_spreadsheet_would_run_are_neutralised(tmp_path: Path, planted: Path) -> None:
    card = tmp_path / "=HYPERLINK(1)"
    card.mkdir()
    bird_still(card / "+SUM(A1).jpg", "2025:06:15 06:00:00")
    summary = tmp_path / "summary.csv"
    result = run_cli("classify", "--model", str(planted), "--summary", str(summary), card.name, cwd=tmp_path,
                     timeout=240)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(summary.open(encoding="utf-8")))
    assert len(rows) == 1
    assert rows[0]["file"] == "'=HYPERLINK(1)"
    assert rows[0]["stream"] == "'+SUM(A1).jpg"
    assert rows[0]["species"] == "Indian Roller"
    assert not any(cell and cell[0] in "=+-@" for row in rows for cell in row.values())
