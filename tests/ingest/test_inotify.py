"""The inotify folder watcher on real files: new files once complete, new subfolders, deletions."""

from __future__ import annotations

import os
import time
from pathlib import Path

from birdstream.ingest.inotify import InotifyWatcher, make_watcher
from tests.support.daemon import wait_until


def settle(path: Path) -> Path:
    """Backdate a file so the 'unchanged for 0.5 s' rule does not make the test wait."""
    os.utime(path, (time.time() - 5, time.time() - 5))
    return path


def test_new_files_are_reported_once_complete_and_once_only(tmp_path: Path) -> None:
    old = tmp_path / "old.jpg"
    old.write_bytes(b"x")
    settle(old)
    watcher = make_watcher(tmp_path, {old})
    assert isinstance(watcher, InotifyWatcher)
    try:
        assert watcher.poll() == []
        growing = tmp_path / "IMG_0001.JPG"
        with open(growing, "wb") as out:
            out.write(b"half")
            out.flush()
            assert watcher.poll() == []  # still open and changing: not yet
        settle(growing)
        sub = tmp_path / "cam2"
        sub.mkdir()
        (sub / "IMG_0002.JPG").write_bytes(b"y")
        settle(sub / "IMG_0002.JPG")
        (tmp_path / ".IMG_0003.JPG.part").write_bytes(b"z")  # an upload in progress, hidden
        (tmp_path / "notes.txt").write_bytes(b"not media")
        got: list[Path] = []
        wait_until(lambda: got.extend(watcher.poll()) or len(got) >= 2, 10, "both new files")
        assert sorted(got) == [growing, sub / "IMG_0002.JPG"]
        os.rename(tmp_path / ".IMG_0003.JPG.part", tmp_path / "IMG_0003.JPG")  # as an uploader finishes
        settle(tmp_path / "IMG_0003.JPG")
        wait_until(lambda: got.extend(watcher.poll()) or len(got) >= 3, 10, "the renamed upload")
        assert got[2:] == [tmp_path / "IMG_0003.JPG"] and watcher.poll() == []
        growing.unlink()  # a deleted name that comes back is a new file
        growing.write_bytes(b"again")
        settle(growing)
        wait_until(lambda: got.extend(watcher.poll()) or len(got) >= 4, 10, "the file written again")
        assert got[3:] == [growing]
    finally:
        watcher.close()
