"""Media paths in a Camtrap DP package: relative inside it, a URL outside (the standard forbids '..')."""

from __future__ import annotations

import re
from pathlib import Path

from birdstream.export.camtrap_dp import media_path

FILE_PATH_PATTERN = r"^(?=^[^./~])(^((?!\.{2}).)*$).*$"  # media.filePath's pattern in the 1.0.2 table schema


def test_inside_the_package_a_relative_path_outside_a_file_url(tmp_path: Path) -> None:
    package = tmp_path / "card"
    inside = media_path(package, str(package / "cam1" / "IMG 1.jpg"))
    outside = media_path(package / "export", str(package / "cam1" / "IMG_1.jpg"))
    assert inside == "cam1/IMG 1.jpg"
    assert outside == (package / "cam1" / "IMG_1.jpg").as_uri()
    assert media_path(package, "https://example.org/a.jpg") == "https://example.org/a.jpg"
    assert all(re.match(FILE_PATH_PATTERN, p) for p in (inside, outside))
    assert not re.match(FILE_PATH_PATTERN, "../cam1/IMG_1.jpg")  # what a naive relative path would be
