"""The files of a folder stream already classified: a durable, bounded record in state_dir.

A restart (by systemd, after a power cut, after an update) must not classify an upload folder
again and publish its old pictures under new sighting ids. A file is known by its path, size and
modification time, so a card that starts its numbering again (IMG_0001.JPG once more) is read.
One JSON line per file, appended and fsynced; rewritten without the files that are gone when the
record grows well past what the folder holds.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

MAX_ENTRIES = 1_000_000  # about 100 MB of record; beyond it the oldest entries are forgotten
Key = tuple[str, int, int]


def file_key(path: Path) -> Key | None:
    """(path, size, mtime_ns) of a file, or None when it cannot be read."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (str(path), st.st_size, st.st_mtime_ns)


class SeenFiles:
    """Which files of a folder were classified before; `add` is durable when it returns."""

    def __init__(self, path: Path, max_entries: int = MAX_ENTRIES) -> None:
        self.path = path
        self.max_entries = max_entries
        self._keys: dict[Key, None] = {}  # insertion-ordered: the oldest first
        self._lines = 0
        self._load()

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, path: Path) -> bool:
        key = file_key(path)
        return key is not None and key in self._keys

    def add(self, paths: Iterable[Path]) -> None:
        """Remember these files (fsynced); a failing disk is one warning, the files stay unrecorded."""
        keys = [k for k in map(file_key, paths) if k is not None and k not in self._keys]
        if not keys:
            return
        for key in keys:
            self._keys[key] = None
        while len(self._keys) > self.max_entries:
            del self._keys[next(iter(self._keys))]
        try:
            if self._lines > 2 * len(self._keys) + 1000:
                self._rewrite()
            else:
                self._append(keys)
        except OSError as exc:
            log.warning("cannot record classified files in %s: %s (they may be classified again after a restart)",
                        self.path, exc)

    def forget_missing(self) -> None:
        """Drop entries of files that are gone (rewrites the record)."""
        self._keys = {k: None for k in self._keys if file_key(Path(k[0])) == k}
        try:
            self._rewrite()
        except OSError as exc:
            log.warning("cannot rewrite %s: %s", self.path, exc)

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("cannot read %s: %s; the folder is read again from the start", self.path, exc)
            return
        bad = 0
        for line in text.splitlines():
            try:
                p, size, mtime = json.loads(line)
                self._keys[(str(p), int(size), int(mtime))] = None
            except (ValueError, TypeError):
                bad += 1  # a line cut by a power cut, or damage: that file is read again
        self._lines = len(text.splitlines())
        if bad:
            log.warning("%s: %d damaged line(s) skipped", self.path, bad)

    def _append(self, keys: list[Key]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(json.dumps(list(k)) + "\n" for k in keys).encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._lines += len(keys)

    def _rewrite(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, "".join(json.dumps(list(k)) + "\n" for k in self._keys).encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self._lines = len(self._keys)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
