"""One daemon per ``state_dir``: an exclusive ``flock`` on ``state_dir/birdstream.lock`` for the process's life.

Two daemons on one state folder would share the outbox, the sightings log and the MQTT client id (the
broker then kicks one off whenever the other connects). The lock is taken before anything else
touches the folder; the kernel drops it when the process dies, so a killed daemon never leaves a
stale lock behind. The holder's pid is written into the file so that the refused one can name it.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from birdstream.errors import BirdstreamError

log = logging.getLogger(__name__)

LOCK_FILE = "birdstream.lock"


class StateDirBusy(BirdstreamError):
    """Another daemon holds the state folder."""


class StateLock:
    """Held from ``acquire()`` until ``release()`` or the end of the process."""

    def __init__(self, state_dir: Path | str) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> StateLock:
        """Take the lock or raise StateDirBusy (naming the folder and the holder's pid) / BirdstreamError."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as err:
            raise BirdstreamError(f"state_dir {self.state_dir}: cannot create {LOCK_FILE} "
                                  f"({err.strerror or err})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "another process"
            raise StateDirBusy(f"state_dir {self.state_dir} is in use by another birdstream daemon ({who}); "
                               f"one daemon per state_dir") from None
        except OSError as err:  # e.g. a file system without locks: say so rather than run unprotected
            os.close(fd)
            raise BirdstreamError(f"state_dir {self.state_dir}: cannot lock {LOCK_FILE} "
                                  f"({err.strerror or err})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing drops the flock; the file stays (unlinking it would race a new holder)

    def __enter__(self) -> StateLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None
