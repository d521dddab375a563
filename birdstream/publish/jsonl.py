"""``state_dir/sightings.jsonl``: one JSON line per event, flushed per line, rotated by size."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import BinaryIO

from birdstream.errors import PublishError
from birdstream.publish import metrics
from birdstream.publish.options import JsonlOptions

log = logging.getLogger(__name__)

FILE_NAME = "sightings.jsonl"


class JsonlLog:
    """Appends lines to ``sightings.jsonl``; keeps ``backups`` rotated files ``.1`` (newest) .. ``.N``."""

    def __init__(self, state_dir: Path, options: JsonlOptions) -> None:
        self.path = Path(state_dir) / FILE_NAME
        self.options = options
        self._fh: BinaryIO | None = None
        self._size = 0
        self._open()

    def _open(self) -> None:
        try:
            self._fh = open(self.path, "ab")  # noqa: SIM115 - kept open for the daemon's life
            self._size = self._fh.tell()
            if self._size and not self._ends_with_newline():
                # A line cut by a power cut: end it, so the next event is a line of its own.
                self._fh.write(b"\n")
                self._fh.flush()
                self._size += 1
        except OSError as err:
            raise PublishError(f"sightings log {self.path}: cannot open for writing ({err.strerror or err})") from None

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    def write(self, line: bytes) -> None:
        """Append one line (without its newline). OSError propagates to the sink, which counts it."""
        data = line + b"\n"
        if self._fh is None:
            self._open()
        elif self._size > 0 and self._size + len(data) > self.options.max_bytes:
            self._rotate()
        assert self._fh is not None
        try:
            self._fh.write(data)
            self._fh.flush()
            if self.options.fsync:
                os.fsync(self._fh.fileno())
        except OSError as err:  # name the file: "File too large" alone does not say which
            raise OSError(err.errno, err.strerror or str(err), str(self.path)) from None
        self._size += len(data)
        metrics.JSONL_LINES.inc()

    def _rotate(self) -> None:
        assert self._fh is not None
        self._fh.close()
        self._fh = None
        keep = max(self.options.backups, 0)
        if keep == 0:
            self.path.unlink(missing_ok=True)
        else:
            self.path.with_name(f"{FILE_NAME}.{keep}").unlink(missing_ok=True)
            for n in range(keep - 1, 0, -1):
                src = self.path.with_name(f"{FILE_NAME}.{n}")
                if src.exists():
                    src.replace(self.path.with_name(f"{FILE_NAME}.{n + 1}"))
            self.path.replace(self.path.with_name(f"{FILE_NAME}.1"))
        metrics.JSONL_ROTATIONS.inc()
        self._open()

    def close(self) -> None:
        """Close the file; lines that still cannot be written (disk full) are reported, not raised."""
        fh, self._fh = self._fh, None
        if fh is None:
            return
        try:
            fh.close()
        except OSError as err:
            metrics.SINK_ERRORS.labels(sink="jsonl").inc()
            log.error("sightings log %s: the last lines could not be written (%s)", self.path, err.strerror or err)
